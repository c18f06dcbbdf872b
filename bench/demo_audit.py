"""The audit on the generated demo catalog, end to end through the app, scored against its planted labels.

    SEMID_HOME=/tmp/semid-e2e .venv/bin/python manage.py demo_setup
    SEMID_HOME=/tmp/semid-e2e .venv/bin/python manage.py pipeline --flavor precision
    SEMID_HOME=/tmp/semid-e2e .venv/bin/python manage.py export_audit /tmp/audit.csv
    .venv/bin/python bench/demo_audit.py /tmp/audit.csv

Prints the average precision of the confidence against the planted wrong labels, how many products
were flagged and how many planted among them, and how often the suggested category is the true one.
"""

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import average_precision_score  # noqa: E402

from catalog.demo import generate_demo_catalog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path, help="the file export_audit wrote")
    args = parser.parse_args()
    if not args.csv.exists():
        raise SystemExit(f"{args.csv} not found: run the three manage.py commands of this script's help first")
    demo = generate_demo_catalog()
    with args.csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label_path"]]
    if not rows:
        raise SystemExit(f"{args.csv} holds no scored product: did the pipeline's audit run?")
    planted = [r["external_id"] in demo.planted for r in rows]
    confidence = [float(r["confidence"]) for r in rows]
    flagged = [r for r in rows if r["flagged"] == "1"]
    found = [r for r in flagged if r["external_id"] in demo.planted]
    right = [r for r in rows if r["external_id"] in demo.planted
             and r["suggested_path"] == demo.true_paths[r["external_id"]]]
    print(f"products scored {len(rows)}, planted {sum(planted)}")
    print(f"average precision of the confidence {average_precision_score(planted, confidence):.3f}")
    print(f"flagged {len(flagged)}, planted among them {len(found)}")
    print(f"suggested category right for {len(right)} of {sum(planted)} planted ({len(right) / max(sum(planted), 1):.1%})")


if __name__ == "__main__":
    main()
