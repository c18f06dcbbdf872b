"""The audit through the application on a shared catalog with labels moved on purpose, as a user with their
own catalog would run it (issue 21's check of catalogs the scorer was not tuned on).

    .venv/bin/python bench/catalog_audit.py make bigbasket+2level+nodesc /tmp/cat.csv /tmp/truth.csv \\
        --limit 6000 --regime uniform --seed 0
    SEMID_HOME=/tmp/semid-cat .venv/bin/python manage.py import_catalog /tmp/cat.csv --allow-new-categories
    SEMID_HOME=/tmp/semid-cat .venv/bin/python manage.py pipeline --flavor precision
    SEMID_HOME=/tmp/semid-cat .venv/bin/python manage.py export_audit /tmp/audit.csv
    .venv/bin/python bench/catalog_audit.py score /tmp/audit.csv /tmp/truth.csv

``make`` writes the catalog (a ``bench.common`` dataset, variants included, names of ``--limit`` products
sampled as ``bench/audit.py`` samples them, labels moved by ``audit.core.inject_noise``) and the truth
(external_id, true_path, moved). ``score`` reads what ``export_audit`` wrote: average precision and
precision at k (k = the moved labels) of the confidence, distinct confidences, ECE against the moved labels,
the flags and the moved labels among them, and how often the suggestion is the true category. With ``make
--cleanlab`` the truth also holds cleanlab's 1 - p(label) (bench/audit.py's baseline on the same labels and
embeddings), and ``score`` prints its AP and P@k on the same products beside semid's.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from audit.core.calibration import expected_calibration_error  # noqa: E402


def export_metrics(path: Path, wrong: set, true_paths: dict) -> dict:
    """Figures of an ``export_audit`` file against the external ids of the ``wrong`` labels and the true
    category path of (at least) each of them."""
    if not path.exists():
        raise SystemExit(f"{path} not found: run export_audit first")
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label_path"]]
    if not rows:
        raise SystemExit(f"{path} holds no scored product: did the pipeline's audit run?")
    moved = np.array([r["external_id"] in wrong for r in rows])
    confidence = np.array([float(r["confidence"]) for r in rows])
    flagged = np.array([r["flagged"] == "1" for r in rows])
    right = [r["suggested_path"] == true_paths[r["external_id"]] for r in rows if r["external_id"] in wrong]
    return {"products": len(rows), "moved": int(moved.sum()), **ranking_metrics(moved, confidence),
            "distinct_confidences": int(len(np.unique(confidence))),
            "ECE": float(expected_calibration_error(confidence, moved)),
            "flagged": int(flagged.sum()), "moved_among_flagged": int((flagged & moved).sum()),
            "right_suggestions": int(sum(right)), "top1": float(np.mean(right)) if right else float("nan")}


def ranking_metrics(moved: np.ndarray, suspicion: np.ndarray) -> dict:
    """Average precision of `suspicion` at finding the `moved` labels, and precision at k = the moved count."""
    from sklearn.metrics import average_precision_score

    if not moved.any():
        return {"AP": float("nan"), "P@k": float("nan")}
    top = np.argsort(-suspicion, kind="stable")[:int(moved.sum())]
    return {"AP": float(average_precision_score(moved, suspicion)), "P@k": float(moved[top].mean())}


def make(args) -> None:
    from audit.core import inject_noise
    from bench.common import PATH_SEPARATOR, embed_dataset, load_dataset

    ds = load_dataset(args.catalog, limit=args.limit or None)
    brands = ds.brands if (ds.brands != "").any() else None
    embeddings = embed_dataset(ds, "precision", "cpu") if args.regime == "lookalike" or args.cleanlab else None
    noisy, injected = inject_noise(ds.taxonomy, args.regime, args.rate, args.seed, embeddings=embeddings,
                                   brands=brands)
    cleanlab = cleanlab_suspicion(embeddings, noisy, args.seed) if args.cleanlab else None
    path_of = {tuple(row): PATH_SEPARATOR.join(p) for row, p in zip(ds.taxonomy.tolist(), ds.paths)}
    with open(args.catalog_csv, "w", newline="") as f, open(args.truth_csv, "w", newline="") as t:
        out, truth = csv.writer(f), csv.writer(t)
        out.writerow(["external_id", "name", "brand", "description", "category_path"])
        truth.writerow(["external_id", "true_path", "moved"] + (["cleanlab"] if args.cleanlab else []))
        left_out = 0
        for i, (record, row, path, moved) in enumerate(zip(ds.records, noisy.tolist(), ds.paths, injected)):
            if not path:  # left out, as in docs/audit.md's tables (import_catalog --allow-uncategorized takes them now)
                left_out += 1
                continue
            out.writerow([record["external_id"], record["name"], record["brand"], record["description"],
                          path_of[tuple(row)]])
            truth.writerow([record["external_id"], PATH_SEPARATOR.join(path), int(moved)]
                           + ([repr(float(cleanlab[i]))] if args.cleanlab else []))
    print(f"{len(ds) - left_out} products ({left_out} without a category left out), {int(injected.sum())} labels "
          f"moved ({args.regime}, seed {args.seed}): {args.catalog_csv}, truth in {args.truth_csv}")


def cleanlab_suspicion(embeddings: np.ndarray, noisy: np.ndarray, seed: int) -> np.ndarray:
    """(N,) 1 - p(given label) of cleanlab's baseline as bench/audit.py and the study fit it (5-fold logistic
    regression on the embeddings, C by out-of-fold log-loss of the given labels), NaN where unlabelled."""
    from audit.core import leaf_classes
    from bench.audit import cv_logistic_probs

    leaf_paths, labels = leaf_classes(noisy)
    labelled = np.flatnonzero(labels >= 0)
    probs, _ = cv_logistic_probs(embeddings[labelled], labels[labelled], len(leaf_paths), seed, "cpu")
    out = np.full(len(labels), np.nan)
    out[labelled] = 1.0 - probs[np.arange(len(labelled)), labels[labelled]]
    return out


def score(args) -> None:
    with open(args.truth_csv, newline="") as f:
        truth = list(csv.DictReader(f))
    m = export_metrics(Path(args.export_csv), {r["external_id"] for r in truth if r["moved"] == "1"},
                       {r["external_id"]: r["true_path"] for r in truth})
    print(f"products scored {m['products']}, moved {m['moved']}")
    print(f"average precision of the confidence {m['AP']:.3f}, precision at k {m['P@k']:.3f}, "
          f"{m['distinct_confidences']} distinct confidences, ECE {m['ECE']:.3f}")
    print(f"flagged {m['flagged']}, moved among them {m['moved_among_flagged']}")
    print(f"suggested category right for {m['right_suggestions']} of {m['moved']} moved ({m['top1']:.1%})")
    if truth and "cleanlab" in truth[0]:
        c = cleanlab_metrics(Path(args.export_csv), truth)
        print(f"cleanlab on the same products: average precision {c['AP']:.3f}, precision at k {c['P@k']:.3f}")


def cleanlab_metrics(export: Path, truth: list[dict]) -> dict:
    """AP and P@k of the truth file's cleanlab column over the products ``export`` scored."""
    with export.open(newline="") as f:
        scored = {r["external_id"] for r in csv.DictReader(f) if r["label_path"]}
    rows = [r for r in truth if r["external_id"] in scored]
    return ranking_metrics(np.array([r["moved"] == "1" for r in rows]), np.array([float(r["cleanlab"]) for r in rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="write a catalog with moved labels and its truth")
    m.add_argument("catalog", help='a bench.common dataset, e.g. "bigbasket+2level+nodesc"')
    m.add_argument("catalog_csv")
    m.add_argument("truth_csv")
    m.add_argument("--limit", type=int, default=6000, help="products sampled; 0: the whole catalog")
    m.add_argument("--regime", default="uniform", choices=("uniform", "sibling", "lookalike", "brand"))
    m.add_argument("--rate", type=float, default=0.03)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--cleanlab", action="store_true",
                   help="also fit cleanlab's baseline on the same labels and embeddings (a truth column score reads)")
    s = sub.add_parser("score", help="score what export_audit wrote against the truth")
    s.add_argument("export_csv")
    s.add_argument("truth_csv")
    args = parser.parse_args()
    {"make": make, "score": score}[args.command](args)


if __name__ == "__main__":
    main()
