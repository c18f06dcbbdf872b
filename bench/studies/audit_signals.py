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
    python bench/studies/audit_signals.py offsets /tmp/signals    # the shipped score at each brand offset
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
    from bench.common import embed_dataset, load_dataset, product_texts

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
    if "ft" in args.extras.split(","):  # the encoder fine-tuned out of fold (issue 21's "frontier" candidate)
        p = finetuned_probs(product_texts(ds, "precision"), labels, n_leaves, seed=seed, device=args.device,
                            n_folds=args.ft_folds, epochs=args.ft_epochs)[labelled]
        out["f:ft:self"], out["f:ft:margin"], top3 = _columns(p, lab)
        out["hits:ft"] = top_hits(top3)
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


def finetuned_probs(texts, labels, n_leaves, *, seed: int, device: str, n_folds: int = 5, epochs: int = 3,
                    batch: int = 32, lr: float = 1e-4, head_lr: float = 1e-2) -> np.ndarray:
    """(N, K) out-of-fold probabilities of the sentence encoder fine-tuned with a linear head on the mean of
    its token states: per fold, the catalog's encoder trained on the other folds' given labels (AdamW, one
    cycle), then predicting the fold. Unlabelled rows: the fold models' mean. About 7 minutes a fold of
    4,800 products on this 2-core CPU (3 epochs), seconds on a GPU: a study, not in the app."""
    import torch
    import torch.nn.functional as F

    from audit.core.signals import stratified_folds
    from bench.common import _load_model

    device = torch.device(device)
    encoder = _load_model(str(device))
    model, tokenizer = encoder[0].auto_model.float(), encoder.tokenizer  # fine-tuned in fp32 (the carried folder is fp16)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    tokens = tokenizer(list(texts), padding=True, truncation=True, max_length=48, return_tensors="pt")
    ids, mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
    labelled = np.flatnonzero(labels >= 0)
    folds = stratified_folds(labels[labelled], n_folds, np.random.default_rng(seed))
    y = torch.as_tensor(labels, device=device)
    out = np.zeros((len(labels), n_leaves), np.float32)
    unlabelled = np.flatnonzero(labels < 0)

    def forward(head, rows):
        width = int(mask[rows].sum(1).max())
        states = model(input_ids=ids[rows, :width], attention_mask=mask[rows, :width]).last_hidden_state
        m = mask[rows, :width].unsqueeze(-1).to(states.dtype)
        return head((states * m).sum(1) / m.sum(1))

    def predict(head, rows):
        model.eval()
        with torch.no_grad():
            return np.concatenate([torch.softmax(forward(head, rows[s:s + 512]), 1).float().cpu().numpy()
                                   for s in range(0, len(rows), 512)]) if len(rows) else np.zeros((0, n_leaves))

    for f in range(n_folds):
        model.load_state_dict(start)
        torch.manual_seed(seed * 1000 + f)
        head = torch.nn.Linear(model.config.hidden_size, n_leaves).to(device)
        train = labelled[folds != f]
        opt = torch.optim.AdamW([{"params": model.parameters(), "lr": lr}, {"params": head.parameters(), "lr": head_lr}],
                                weight_decay=0.01)
        steps = epochs * -(-len(train) // batch)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[lr, head_lr], total_steps=steps, pct_start=0.1)
        rng = np.random.default_rng(seed * 1000 + f)
        model.train()
        for _ in range(epochs):
            order = rng.permutation(train)
            for s in range(0, len(order), batch):
                rows = torch.as_tensor(order[s:s + batch], device=device)
                loss = F.cross_entropy(forward(head, rows), y[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
        test = labelled[folds == f]
        out[test] = predict(head, torch.as_tensor(test, device=device))
        if len(unlabelled):
            out[unlabelled] += predict(head, torch.as_tensor(unlabelled, device=device)) / n_folds
    model.load_state_dict(start)
    return out


def ft_inputs(args) -> None:
    """Here: each collected job's fine-tuning inputs (the products' texts and the labels after the same noise,
    rebuilt from the cached embeddings), small enough to carry to the GPU machine, where ``ft`` fine-tunes."""
    from audit.core import inject_noise, leaf_classes
    from audit.core.scoring import leaf_ids_of
    from bench.common import embed_dataset, load_dataset, product_texts

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(args.folder).glob("*.npz")):
        catalog, regime, seed = path.stem.rsplit("-", 2)
        ds = load_dataset(catalog, limit=args.limit or None)
        emb = embed_dataset(ds, "precision", "cpu")
        brands = ds.brands if (ds.brands != "").any() else None
        noisy, injected = inject_noise(ds.taxonomy, regime, args.rate, int(seed), embeddings=emb, brands=brands)
        leaf_paths, labels = leaf_classes(noisy)
        labelled = np.flatnonzero(labels >= 0)
        if not np.array_equal(injected[labelled], np.load(path)["injected"]):
            sys.exit(f"{path.name}: the rebuilt noise differs from the collected one")
        np.savez_compressed(out / path.name, texts=np.array(product_texts(ds, "precision")), labels=labels,
                            n_leaves=len(leaf_paths), seed=int(seed), leaf_ids=leaf_ids_of(leaf_paths),
                            true=ds.leaf[labelled])
        print(f"{path.name}: {len(labelled)} labelled, {len(leaf_paths)} classes", flush=True)


def ft(args) -> None:
    """On the GPU machine: the fine-tuned encoder's out-of-fold p over the labelled products of each input."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in args.inputs:
        d = np.load(path)
        started = time.time()
        p = finetuned_probs(list(d["texts"]), d["labels"], int(d["n_leaves"]), seed=int(d["seed"]),
                            device=args.device, n_folds=args.ft_folds, epochs=args.ft_epochs)
        np.savez_compressed(out / Path(path).name, probs=p[d["labels"] >= 0].astype(np.float16))
        print(f"{Path(path).name}: fine-tuned {args.ft_folds} folds in {time.time() - started:.0f} s", flush=True)


def ft_merge(args) -> None:
    """Here: the fine-tuned columns (``ft:self``, ``ft:margin``, ``hits:ft``) into the collected jobs."""
    for path in sorted(Path(args.ft).glob("*.npz")):
        name = path.name.replace("_", "+")  # bench/gpu/audit_ft.sh's names: the device tool returns no "+"
        inputs = np.load(Path(args.inputs) / name)
        target = Path(args.folder) / name
        data = dict(np.load(target))
        labels = inputs["labels"]
        lab = labels[labels >= 0]
        data["f:ft:self"], data["f:ft:margin"], top3 = _columns(np.load(path)["probs"].astype(np.float32), lab)
        data["hits:ft"] = inputs["leaf_ids"][top3] == inputs["true"][:, None]
        np.savez_compressed(target, **data)
        print(f"{name}: ft top-1 {data['hits:ft'][:, 0][data['injected']].mean():.3f} on moved products")


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
    # Ensembles that average instead of multiplying: a member that is confidently wrong on one catalog (the
    # words on names-only Instacart) moves an arithmetic mean of probabilities, or of ranks, less than a sum
    # of -log p. "mean p:" scores -log of the members' mean p(label); "mean rank:" the members' mean rank.
    "mean p: pooled, 10-fold": ("mean p", "pooled:self", "both10:self"),
    "mean p: pooled, 10-fold, emb": ("mean p", "pooled:self", "both10:self", "emb:self"),
    "mean p: pooled, 10-fold, cleanlab": ("mean p", "pooled:self", "both10:self", "cleanlab:self"),
    "mean p: 10-fold, emb": ("mean p", "both10:self", "emb:self"),
    "mean p: pooled, emb, txt": ("mean p", "pooled:self", "emb:self", "txt:self"),
    "mean rank: pooled, 10-fold": ("mean rank", "pooled:self", "both10:self"),
    "mean rank: pooled, 10-fold, emb": ("mean rank", "pooled:self", "both10:self", "emb:self"),
    "mean rank: pooled, 10-fold, cleanlab": ("mean rank", "pooled:self", "both10:self", "cleanlab:self"),
    "pooled self + 10-fold self + emb self": ("pooled:self", "both10:self", "emb:self"),
    # the fine-tuned encoder (``--extras ft``): alone, and beside the app's columns
    # the mean of the columns instead of their sum: the same order, but the brand score (``BRAND_OFFSET``)
    # meets it on one column's scale, however many columns there are
    "mean: pooled self, 10-fold self": ("mean", "pooled:self", "both10:self"),
    "ft self": ("ft:self",),
    "pooled self + classifier self + ft self": ("pooled:self", "classifier:self", "ft:self"),
    "mean p: pooled, classifier, ft": ("mean p", "pooled:self", "classifier:self", "ft:self"),
}
MODES = ("mean p", "mean rank", "mean")
BASELINE = "cleanlab self"


def load(folder: Path) -> list:
    jobs = []
    for path in sorted(folder.glob("*.npz")):
        catalog, regime, seed = path.stem.rsplit("-", 2)
        jobs.append((catalog, regime, int(seed), dict(np.load(path, allow_pickle=True))))
    return jobs


def candidate_ap(data: dict, columns, brand_offset: float) -> float | None:
    from scipy.stats import rankdata
    from sklearn.metrics import average_precision_score

    mode = columns[0] if columns[0] in MODES else "sum"
    columns = columns[1:] if mode != "sum" else columns
    if any(f"f:{c}" not in data for c in columns):
        return None
    if mode == "mean p":  # the columns are -log(p + EPS)
        score = -np.log(np.mean([np.exp(-data[f"f:{c}"]) for c in columns], axis=0) + EPS)
    elif mode == "mean rank":  # no brand score: a rank has no scale to compare it with
        return float(average_precision_score(data["injected"],
                                             np.mean([rankdata(data[f"f:{c}"]) for c in columns], axis=0)))
    elif mode == "mean":
        score = np.mean([data[f"f:{c}"] for c in columns], axis=0)
    else:
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


def offsets(args) -> None:
    """AP per cell of the shipped raw score (``POOLED_SCORE``'s mean probability) at each brand offset, beside
    cleanlab's and the score before it (the sum of the pool's and the classifier's -log p, offset 1), with the
    leave-one-catalog-out choice of the offset among the branded catalogs (the rule of ``evaluate``)."""
    from audit.core.combine import POOLED_SCORE

    grid = [float(o) for o in args.grid.split(",")]
    shipped, before = ("mean p", *POOLED_SCORE), ("pooled:self", "both10:self")
    rows = []
    for catalog, regime, seed, data in load(Path(args.folder)):
        aps = [candidate_ap(data, shipped, o) for o in grid]
        if aps[0] is not None:
            rows.append((catalog, regime, seed, candidate_ap(data, CANDIDATES[BASELINE], 0.0),
                         candidate_ap(data, before, 1.0), aps, "f:brand_out:group" in data))
    print("| catalog | regime | seed | cleanlab | before (sum, offset 1) | " +
          " | ".join(f"offset {o:g}" if o < 1e9 else "no brand score" for o in grid) + " |")
    print("|---" * (5 + len(grid)) + "|")
    for catalog, regime, seed, cl, old, aps, _ in rows:
        before_ap = "—" if old is None else f"{old:.3f}"  # a job collected without the 10-fold column
        print(f"| {catalog} | {regime} | {seed} | {cl:.3f} | {before_ap} | " + " | ".join(f"{a:.3f}" for a in aps) + " |")
    branded = sorted({r[0] for r in rows if r[6]})

    def choose(catalogs):
        cells = [r for r in rows if r[0] in catalogs]
        keys = [(round(min(r[5][i] - r[3] for r in cells), 3), float(np.mean([r[5][i] - r[3] for r in cells])))
                for i in range(len(grid))]
        return grid[max(range(len(grid)), key=keys.__getitem__)]

    if not branded:  # e.g. Instacart alone: no brand score to place
        return
    print(f"\nchosen on every branded catalog ({', '.join(branded)}): offset {choose(branded):g} (1e9: none)")
    for left in branded if len(branded) > 1 else []:  # one catalog alone: nothing is left to choose for it
        print(f"  {left} left out: the others choose offset {choose([c for c in branded if c != left]):g}")


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
    c.add_argument("--extras", default="emb,txt,both10", help="which extra classifiers to fit (ft: the encoder "
                   "fine-tuned out of fold, --ft-folds, --ft-epochs; minutes on a GPU, hours on this CPU)")
    c.add_argument("--ft-folds", type=int, default=5)
    c.add_argument("--ft-epochs", type=int, default=3)
    c.add_argument("--out", required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("folder")
    e.add_argument("--brand-offset", type=float, default=None, help="the brand score's offset (default: BRAND_OFFSET)")
    o = sub.add_parser("offsets")
    o.add_argument("folder")
    o.add_argument("--grid", default="0,1,2,3,4,1e9", help="brand offsets (1e9: no brand score)")
    i = sub.add_parser("inputs")
    i.add_argument("--catalogs", required=True)
    i.add_argument("--limit", type=int, default=6000)
    i.add_argument("--regime", default="uniform")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--device", default="cpu")
    fi = sub.add_parser("ft-inputs", help="here: the fine-tuning inputs of each collected job, to carry")
    fi.add_argument("folder")
    fi.add_argument("--out", required=True)
    fi.add_argument("--limit", type=int, default=6000)
    fi.add_argument("--rate", type=float, default=0.03)
    f = sub.add_parser("ft", help="GPU machine: fine-tune out of fold on ft-inputs' files")
    f.add_argument("inputs", nargs="+")
    f.add_argument("--out", required=True)
    f.add_argument("--device", default="cuda")
    f.add_argument("--ft-folds", type=int, default=5)
    f.add_argument("--ft-epochs", type=int, default=3)
    fm = sub.add_parser("ft-merge", help="here: ft's columns into the collected jobs")
    fm.add_argument("folder")
    fm.add_argument("--inputs", required=True)
    fm.add_argument("--ft", required=True)
    args = p.parse_args()
    {"collect": collect, "evaluate": evaluate, "offsets": offsets, "inputs": inputs, "ft-inputs": ft_inputs,
     "ft": ft, "ft-merge": ft_merge}[args.command](args)


if __name__ == "__main__":
    main()
