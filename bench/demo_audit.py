"""The audit on the generated demo catalog, end to end through the app, scored against its planted labels.

    SEMID_HOME=/tmp/semid-e2e .venv/bin/python manage.py demo_setup
    SEMID_HOME=/tmp/semid-e2e .venv/bin/python manage.py pipeline --flavor precision
    SEMID_HOME=/tmp/semid-e2e .venv/bin/python manage.py export_audit /tmp/audit.csv
    .venv/bin/python bench/demo_audit.py /tmp/audit.csv

Prints the average precision of the confidence against the planted wrong labels, how many products
were flagged and how many planted among them, and how often the suggested category is the true one.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.catalog_audit import export_metrics  # noqa: E402
from catalog.demo import generate_demo_catalog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path, help="the file export_audit wrote")
    args = parser.parse_args()
    if not args.csv.exists():
        raise SystemExit(f"{args.csv} not found: run the three manage.py commands of this script's help first")
    demo = generate_demo_catalog()
    m = export_metrics(args.csv, set(demo.planted), demo.true_paths)
    print(f"products scored {m['products']}, planted {m['moved']}")
    print(f"average precision of the confidence {m['AP']:.3f}")
    print(f"flagged {m['flagged']}, planted among them {m['moved_among_flagged']}")
    print(f"suggested category right for {m['right_suggestions']} of {m['moved']} planted ({m['top1']:.1%})")


if __name__ == "__main__":
    main()
