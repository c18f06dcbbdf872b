"""Which raw score holds on catalogs it was not tuned on (issue 21)?

Two steps, so the expensive one runs once (on the GPU machine) and the choices are made anywhere:

1. ``collect``: for each catalog x regime x seed, inject the noise, train the codes, run
   ``audit.core.score_products`` as the app does, and also fit the extra signals the choice is between
   (a classifier on the embeddings alone, on the words alone, ten folds instead of five, and the cleanlab
   baseline's tuned logistic regression); save, over the labelled products, every signal's
   -log p(label) and log-margin of the best other leaf, the injected indicator and the suggestions'
   top-1 hits, as one ``.npz`` a job.
2. ``evaluate``: the AP of every candidate raw score (a sum of those columns) on every catalog, next to
   cleanlab's, and the leave-one-catalog-out choice: the candidate chosen on all catalogs but one,
   reported on the one left out.

    python bench/studies/audit_signals.py collect --catalogs instacart,bigbasket+2level+nodesc --limit 6000 \
        --regimes uniform --seeds 0 --device cpu --out /tmp/signals
    python bench/studies/audit_signals.py evaluate /tmp/signals
    python bench/studies/audit_signals.py inputs --catalogs instacart   # can the labels choose the inputs?
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() not in (REPO / "bench", REPO / "bench" / "studies")]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

EPS = 1e-6


def _columns(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(-log p(label), log-margin of the best other leaf, top-3 other leaves) of (N, K) ``probs``."""
    rows = np.arange(len(labels))
    own = probs[rows, labels]
    other = probs.copy()
    other[rows, labels] = -1.0
    top3 = np.argsort(-other, axis=1, kind="stable")[:, :3]
    best = other[rows, top3[:, 0]]
    return -np.log(own + EPS), np.log(np.maximum(best, 0) + EPS) - np.log(own + EPS), top3


def collect_one(catalog: str, regime: str, seed: int, args) -> dict:
    from audit.core import inject_noise, leaf_classes, product_words, score_products
    from audit.core.signals import FoldClassifiers, choose_weight_decay
    from bench.audit import cv_logistic_probs, train_codes
    from bench.common import embed_dataset, load_dataset

    ds = load_dataset(catalog, limit=args.limit or None)  # 0: the whole catalog
    emb = embed_dataset(ds, "precision", args.device)
    brands = ds.brands if (ds.brands != "").any() else None
    texts = [product_words(r["name"], r["brand"]) for r in ds.records]
    noisy, injected = inject_noise(ds.taxonomy, regime, args.rate, seed, embeddings=emb, brands=brands)
    leaf_paths, labels = leaf_classes(noisy)
    labelled = np.flatnonzero(labels >= 0)
    t0 = time.time()
    codes, _ = train_codes(emb, noisy, args.quantizer, seed, args.device, None)
    t1 = time.time()
    scores = score_products(embeddings=emb, taxonomy=noisy, codes=codes, seed=seed, brands=brands, texts=texts,
                            device=args.device)
    t2 = time.time()
    out = {"feature_names": np.array(scores.combiner.score), "injected": injected[labelled]}
    names = scores.combiner.feature_names
    for j, name in enumerate(names):
        out[f"f:{name}"] = scores.features[labelled, j]
    leaf_ids = scores.leaf_ids
    true = ds.leaf[labelled]
    lab = labels[labelled]

    def top_hits(top3):
        return (leaf_ids[top3] == true[:, None])

    out["hits:pooled"] = top_hits(scores.probs.rows(labelled).best_others(lab, 3)[0])
    n_leaves = len(leaf_paths)
    wd = scores.combiner.classifier_weight_decay
    lexical = scores.lexical
    extra = {"emb": (emb, None, 5)}
    if lexical is not None:
        extra["txt"] = (lexical, None, 5)
        extra["both10"] = (np.hstack([emb, lexical]), wd, 10)
    extra = {k: v for k, v in extra.items() if k in args.extras.split(",")}
    for name, (x, decay, folds) in extra.items():
        if decay is None:
            decay = choose_weight_decay(x, labels, n_leaves, seed=seed, device=args.device)
        p = FoldClassifiers(x, labels, n_leaves, n_folds=folds, seed=seed, device=args.device,
                            weight_decay=decay).probs(labelled)
        out[f"f:{name}:self"], out[f"f:{name}:margin"], top3 = _columns(p, lab)
        out[f"hits:{name}"] = top_hits(top3)
        out[f"decay:{name}"] = decay
    p, c = cv_logistic_probs(emb[labelled], lab, n_leaves, seed, args.device)  # the baseline, always
    out["f:cleanlab:self"], out["f:cleanlab:margin"], top3 = _columns(p, lab)
    out["hits:cleanlab"] = top_hits(top3)
    out["decay:cleanlab_C"] = c
    out["decay:classifier"] = wd
    out["classes"] = n_leaves
    out["seconds"] = np.array([t1 - t0, t2 - t1, time.time() - t2])
    return out


def collect(args) -> None:
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    for catalog, regime, seed in itertools.product(args.catalogs.split(","), args.regimes.split(","),
                                                   [int(s) for s in args.seeds.split(",")]):
        path = outdir / f"{catalog}-{regime}-{seed}.npz"
        if path.exists():
            continue
        started = time.time()
        data = collect_one(catalog, regime, seed, args)
        np.savez_compressed(path, **data)
        print(f"{path.name}: {time.time() - started:.0f} s, {int(data['injected'].sum())} moved of "
              f"{len(data['injected'])}, {int(data['classes'])} classes", flush=True)


# ---------------------------------------------------------------------------------------------

CANDIDATES = {
    "shipped: pooled + classifier margins": ("pooled:margin", "classifier:margin"),
    "classifier margin": ("classifier:margin",),
    "classifier self": ("classifier:self",),
    "pooled margin": ("pooled:margin",),
    "pooled self": ("pooled:self",),
    "emb + txt margins": ("emb:margin", "txt:margin"),
    "emb + txt + classifier margins": ("emb:margin", "txt:margin", "classifier:margin"),
    "10-fold classifier margin": ("both10:margin",),
    "pooled + 10-fold margins": ("pooled:margin", "both10:margin"),
    "classifier + knn margins": ("classifier:margin", "knn:margin"),
    "classifier + codes margins": ("classifier:margin", "codes:margin"),
    "classifier + cleanlab margins": ("classifier:margin", "cleanlab:margin"),
    "cleanlab self": ("cleanlab:self",),
    "cleanlab margin": ("cleanlab:margin",),
    "emb self": ("emb:self",),
    "txt self": ("txt:self",),
    "10-fold self": ("both10:self",),
    "pooled self + classifier self": ("pooled:self", "classifier:self"),
    "pooled self + 10-fold self": ("pooled:self", "both10:self"),
    "pooled self + 10-fold self + cleanlab self": ("pooled:self", "both10:self", "cleanlab:self"),
    "10-fold self + cleanlab self": ("both10:self", "cleanlab:self"),
    "pooled self + emb self + txt self": ("pooled:self", "emb:self", "txt:self"),
    "pooled margin + 10-fold self": ("pooled:margin", "both10:self"),
    "pooled self + 10-fold margin": ("pooled:self", "both10:margin"),
    "pooled + 10-fold margins and selves": ("pooled:margin", "both10:margin", "pooled:self", "both10:self"),
    "knn self": ("knn:self",),
    "codes self": ("codes:self",),
}
BASELINE = "cleanlab self"


def load(folder: Path) -> list:
    jobs = []
    for path in sorted(folder.glob("*.npz")):
        catalog, regime, seed = path.stem.rsplit("-", 2)
        jobs.append((catalog, regime, int(seed), dict(np.load(path, allow_pickle=True))))
    return jobs


def candidate_ap(data: dict, columns, brand_offset: float) -> float | None:
    from sklearn.metrics import average_precision_score

    if any(f"f:{c}" not in data for c in columns):
        return None
    score = sum(data[f"f:{c}"] for c in columns)
    if "f:brand_out:group" in data and not columns[0].startswith("cleanlab"):  # the baseline has no brand score
        score = np.maximum(score, data["f:brand_out:group"] - brand_offset)
    return float(average_precision_score(data["injected"], score))


def evaluate(args) -> None:
    from audit.core.combine import BRAND_OFFSET

    brand_offset = BRAND_OFFSET if args.brand_offset is None else args.brand_offset
    jobs = load(Path(args.folder))
    cells = sorted({(c, r) for c, r, _, _ in jobs})
    table = {}  # (catalog, regime) -> candidate -> [AP per seed]
    for catalog, regime, seed, data in jobs:
        for name, columns in CANDIDATES.items():
            ap = candidate_ap(data, columns, brand_offset)
            if ap is not None:
                table.setdefault((catalog, regime), {}).setdefault(name, []).append(ap)
    width = max(len(n) for n in CANDIDATES)
    print(f"{'candidate':<{width}} " + " ".join(f"{c[:22]:>22}/{r[:4]}" for c, r in cells))
    for name in CANDIDATES:
        row = [np.mean(table[cell].get(name, [np.nan])) for cell in cells]
        print(f"{name:<{width}} " + " ".join(f"{v:27.3f}" for v in row))
    print("\nleave one catalog out: the candidate with the best worst-case gain over cleanlab on the other "
          "catalogs' cells (then the best mean), reported on the catalog left out:")
    catalogs = sorted({c for c, _ in cells})
    complete = [n for n in CANDIDATES if all(n in table[cell] for cell in cells)]
    for left in catalogs:
        gains = {}
        for name in complete:
            g = [np.mean(table[cell][name]) - np.mean(table[cell][BASELINE]) for cell in cells if cell[0] != left]
            gains[name] = (round(min(g), 3), float(np.mean(g))) if g else None
        gains = {k: v for k, v in gains.items() if v is not None}
        if not gains:
            continue
        pick = max(gains, key=gains.get)
        held = [f"{r}: {np.mean(table[(left, r)][pick]) - np.mean(table[(left, r)][BASELINE]):+.3f}"
                for c, r in cells if c == left]
        print(f"  {left}: chose '{pick}' -> {', '.join(held)}")
    hits = {}
    for catalog, regime, seed, data in jobs:
        inj = data["injected"].astype(bool)
        for key in [k for k in data if k.startswith("hits:")]:
            hits.setdefault((catalog, regime), {}).setdefault(key[5:], []).append(float(data[key][inj, 0].mean()))
    print("\ntop-1 of the suggestion on moved products:")
    for cell, h in sorted(hits.items()):
        print(f"  {cell[0]}/{cell[1]}: " + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in h.items()))


def inputs(args) -> None:
    """Can the catalog's own labels choose the classifier's inputs? The held-out log-loss of the given
    labels (one stratified fold, the best of the L2 grid) of the embeddings, the words, and both."""
    import torch
    import torch.nn.functional as F

    from audit.core import inject_noise, leaf_classes, product_words
    from audit.core.signals import WEIGHT_DECAY_GRID, fit_softmax_regression, stratified_folds, text_features
    from bench.common import embed_dataset, load_dataset

    def heldout(x, labels, n_leaves):
        labelled = np.flatnonzero(labels >= 0)
        folds = stratified_folds(labels[labelled], 5, np.random.default_rng(args.seed))
        train, test = labelled[folds != 0], labelled[folds == 0]
        x = torch.as_tensor(np.asarray(x, np.float32))
        mean, std = x[train].mean(0), x[train].std(0) + 1e-6
        losses = []
        for decay in WEIGHT_DECAY_GRID:
            w, b = fit_softmax_regression((x[train] - mean) / std, torch.as_tensor(labels[train]), n_leaves, decay)
            losses.append(float(F.cross_entropy(((x[test] - mean) / std) @ w + b, torch.as_tensor(labels[test]))))
        return min(losses)

    for catalog in args.catalogs.split(","):
        ds = load_dataset(catalog, limit=args.limit or None)  # 0: the whole catalog
        emb = embed_dataset(ds, "precision", args.device)
        noisy, _ = inject_noise(ds.taxonomy, args.regime, 0.03, args.seed, embeddings=emb)
        leaf_paths, labels = leaf_classes(noisy)
        words = text_features([product_words(r["name"], r["brand"]) for r in ds.records], seed=args.seed)
        k = len(leaf_paths)
        print(f"{catalog}: held-out log-loss, embeddings {heldout(emb, labels, k):.4f}, words "
              f"{heldout(words, labels, k):.4f}, both {heldout(np.hstack([emb, words]), labels, k):.4f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--catalogs", required=True)
    c.add_argument("--limit", type=int, default=6000, help="products sampled; 0: the whole catalog")
    c.add_argument("--regimes", default="uniform")
    c.add_argument("--seeds", default="0")
    c.add_argument("--rate", type=float, default=0.03)
    c.add_argument("--quantizer", default="rqvae")
    c.add_argument("--device", default="cpu")
    c.add_argument("--extras", default="emb,txt,both10", help="which extra classifiers to fit")
    c.add_argument("--out", required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("folder")
    e.add_argument("--brand-offset", type=float, default=None, help="the brand score's offset (default: BRAND_OFFSET)")
    i = sub.add_parser("inputs")
    i.add_argument("--catalogs", required=True)
    i.add_argument("--limit", type=int, default=6000)
    i.add_argument("--regime", default="uniform")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--device", default="cpu")
    args = p.parse_args()
    {"collect": collect, "evaluate": evaluate, "inputs": inputs}[args.command](args)


if __name__ == "__main__":
    main()
