"""How high can the suggestion's top-1 go on these catalogs (issue 21's goal: top-1 >= 0.85 on moved products)?

The suggestion is the most probable category other than the given one, from the audit's pool of signals
(classifiers, neighbours, code votes) fitted on the given (noisy) labels. Its ceiling with the same inputs:
the same pool (`score_products`, residual k-means codes) and the classifier alone (the app's inputs,
embeddings and words; the app's weight-decay choice; 5 folds, out of fold) fitted on the **true** labels,
every moved product's true category against the best leaf other than the given one. Every signal is out of
fold or leaves the product out, so the true labels do not leak the answer; a suggestion from these inputs
cannot be expected above it: the true labels are the most any relabelling could learn from.

    python bench/studies/top1_ceiling.py --catalogs instacart,bigbasket+2level+nodesc --seeds 0,1,2

Prints, per catalog and seed, the top-1 of the pool and of the classifier alone fitted on the given labels
(what the app sees) and on the true labels (the ceiling), on the moved products; and the AP of -log p(given
label) of the pool, the classifier and their mean (the shipped raw score's form, without the brand score),
fitted either way, beside cleanlab's (`bench.audit.cv_logistic_probs`) on the same labels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() not in (REPO / "bench", REPO / "bench" / "studies")]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

EPS = 1e-12


def top_k(probs: np.ndarray, given: np.ndarray, true: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the k most probable classes other than the given one."""
    other = probs.copy()
    other[np.arange(len(given)), given] = -1.0
    best = np.argsort(-other, axis=1, kind="stable")[:, :k]
    return float((best == true[:, None]).any(1).mean())


def ap(injected: np.ndarray, p_given: np.ndarray) -> float:
    """Average precision of -log p(given label) at finding the moved labels."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(injected, -np.log(p_given + EPS)))


def joint_to_own(joint: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Joint class ids -> a score's own ids (the inverse of ``joint``; -1 where it has no such class)."""
    own = np.full(max(int(joint.max()), int(labels.max())) + 1, -1)
    own[joint[joint >= 0]] = np.flatnonzero(joint >= 0)
    return own[labels]


def one(catalog: str, seed: int, args) -> dict:
    from audit.core import inject_noise, leaf_classes, product_words, score_products
    from audit.core.signals import FoldClassifiers, choose_weight_decay, text_features
    from bench.audit import cv_logistic_probs, train_codes
    from bench.common import embed_dataset, load_dataset

    ds = load_dataset(catalog, limit=args.limit or None)
    emb = embed_dataset(ds, "precision", args.device)
    brands = ds.brands if (ds.brands != "").any() else None
    texts = [product_words(r["name"], r["brand"]) for r in ds.records]
    inputs = np.hstack([emb, text_features(texts, seed=seed)])
    noisy, injected = inject_noise(ds.taxonomy, "uniform", args.rate, seed, embeddings=emb, brands=brands)
    _, both = leaf_classes(np.vstack([ds.taxonomy, noisy]))  # one class numbering for both label sets
    true, given = both[: len(emb)], both[len(emb):]
    n_leaves = int(both.max()) + 1
    moved = np.flatnonzero(injected & (true >= 0) & (given >= 0))
    labelled = np.flatnonzero((true >= 0) & (given >= 0))
    out = {"catalog": catalog, "seed": seed, "moved": len(moved), "leaves": n_leaves}
    probs, _ = cv_logistic_probs(emb[labelled], given[labelled], n_leaves, seed, args.device)  # cleanlab's
    own = probs[np.arange(len(labelled)), given[labelled]]
    out["cleanlab AP"] = ap(injected[labelled], own)
    for name, taxonomy, labels in (("noisy", noisy, given), ("true", ds.taxonomy, true)):
        codes, _ = train_codes(emb, taxonomy, "kmeans", seed, args.device, None)
        scores = score_products(embeddings=emb, taxonomy=taxonomy, codes=codes, seed=seed, brands=brands,
                                texts=texts, device=args.device)
        _, own = leaf_classes(taxonomy)  # the scores' class numbering -> the joint one, through the leaf rows
        joint = np.full(int(own.max()) + 1, -1)
        joint[own[own >= 0]] = labels[own >= 0]
        best = joint[scores.probs.rows(moved).best_others(joint_to_own(joint, given[moved]), 3)[0]]
        out[f"{name} pool top-1"] = float((best[:, 0] == true[moved]).mean())
        out[f"{name} pool top-3"] = float((best == true[moved][:, None]).any(1).mean())
        # AP of the pool's -log p(given label) over the labelled products; fitted on the true labels, a moved
        # product's given label is seldom among the TOP_LEAVES kept: the least kept probability stands in for
        # it, an upper bound, so that AP is a lower bound of the true-label pool's
        top = scores.probs.rows(labelled)
        own_given = joint_to_own(joint, given[labelled])
        hit = top.leaves == own_given[:, None]
        pool = np.where(hit.any(1), np.where(hit, top.probs, 0).sum(1), top.probs[:, -1])
        out[f"{name} pool AP"] = ap(injected[labelled], pool)
        decay = choose_weight_decay(inputs, labels, n_leaves, seed=seed, device=args.device)
        probs = FoldClassifiers(inputs, labels, n_leaves, n_folds=5, seed=seed, device=args.device,
                                weight_decay=decay).probs(labelled)
        classifier = probs[np.arange(len(labelled)), given[labelled]]
        out[f"{name} classifier AP"] = ap(injected[labelled], classifier)
        out[f"{name} mean AP"] = ap(injected[labelled], (pool + classifier) / 2)  # the shipped raw score's form
        in_moved = np.searchsorted(labelled, moved)
        out[f"{name} top-1"] = top_k(probs[in_moved], given[moved], true[moved], 1)
        out[f"{name} top-3"] = top_k(probs[in_moved], given[moved], true[moved], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalogs", required=True)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--limit", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=0.03)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print("| catalog | seed | leaves | moved | pool top-1, given labels | pool top-1, true labels (ceiling) "
          "| pool top-3, given / true | classifier top-1, given / true | AP of the mean of pool and classifier p, given / "
          "true (lower bound) | pool AP, given / true | classifier AP, given / true | cleanlab AP |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for catalog in args.catalogs.split(","):
        for seed in map(int, args.seeds.split(",")):
            r = one(catalog, seed, args)
            print(f"| {catalog} | {seed} | {r['leaves']} | {r['moved']} | {r['noisy pool top-1']:.3f} | "
                  f"{r['true pool top-1']:.3f} | {r['noisy pool top-3']:.3f} / {r['true pool top-3']:.3f} | "
                  f"{r['noisy top-1']:.3f} / {r['true top-1']:.3f} | {r['noisy mean AP']:.3f} / "
                  f"{r['true mean AP']:.3f} | {r['noisy pool AP']:.3f} / {r['true pool AP']:.3f} | "
                  f"{r['noisy classifier AP']:.3f} / {r['true classifier AP']:.3f} | {r['cleanlab AP']:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
