"""Generative retrieval over semantic IDs (TIGER-style) against popularity, co-occurrence, SASRec and
content nearest neighbours: the next product of a basket (issue 20).

    .venv/bin/python bench/baskets_retrieval.py [--device cpu|cuda] [--seeds 0 1 2] [--quick]
        [--flavor precision] [--codes rqvae] [--hold-out SHARE] [--orders N] [--epochs E] [--sasrec-epochs E]
        [--config '{"d_model": 128}'] [--codes-config '{"epochs": 20}'] [--json-out F] [--merge F...]

Orders of instacart_baskets.csv, split by order 80/10/10 (--split-seed, 0); in every test order of two
products or more the last one in cart order (add_to_cart_order) is the target and the ones before it the
basket so far (leave-last-out). Every method proposes 10 products not already in the basket:
- popularity: the most bought products of the training orders;
- co-occurrence: the sum, over the basket's products, of the training orders each product shares with
  a candidate (ties: popularity);
- content: the nearest products to the basket's last product by embedding cosine (the flavor's text);
- SASRec: a causal transformer over item ids, full softmax over the products of the training orders;
- TIGER: baskets.core.nextitem, a causal transformer over the products' semantic IDs that decodes the
  next ID level by level, beam search constrained to the codes that exist; its cold-start rules (tiger_cold*)
  give the last 2 places to never-bought products, under the decoded prefixes or (tiger_cold_aisle) in the
  basket's last product's aisle.
Warm targets were bought in some training order, cold ones never. --hold-out 0.05 adds a split by product, as
TIGER's cold-start experiment did: 5% of the products bought are left out of every training order (their
lines dropped, the rest of each order kept), so their test targets are cold too. Tail: the products outside the most
bought ones that make half of the training lines (every product never bought included); tail coverage
= the share of them that some test basket is shown, tail share = the share of shown products in it.
The semantic IDs are the benchmark's own (bench/baskets_data.semantic_codes, seed = the run's seed,
cached: bench/baskets_complements.py trains the same ones).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baskets_data as bd  # noqa: E402
import common  # noqa: E402

from baskets.core.copurchase import copurchase_embedding, order_matrix  # noqa: E402
from baskets.core.evaluation import hit_metrics, leave_last_out, split_orders  # noqa: E402

K = 10
# TIGER's cold-start rule, its 2 places: the depth of the decoded prefixes the never-bought products are taken
# under (None: all levels but the last; "aisle": the basket's last product's category leaf instead of a prefix),
# and whether they go by text to the basket's last product
COLD_RULES = {"tiger_cold": (None, False), "tiger_cold2": (2, False), "tiger_cold2_text": (2, True),
              "tiger_cold1_text": (1, True), "tiger_cold_aisle": ("aisle", True)}
METHODS = ("popularity", "cooccurrence", "content", "sasrec", "tiger", *COLD_RULES)
LABELS = {"popularity": "popularity", "cooccurrence": "item-to-item co-occurrence",
          "content": "content nearest neighbours of the last product", "sasrec": "SASRec (item ids)",
          "tiger": "TIGER over semantic IDs (this)",
          "tiger_cold": "TIGER, last 2 of 10 places to never-bought products under its decoded prefixes",
          "tiger_cold2": "TIGER, the same 2 places under its decoded 2-codeword prefixes",
          "tiger_cold2_text": "TIGER, the same 2 places under its 2-codeword prefixes, by text to the last product",
          "tiger_cold1_text": "TIGER, the same 2 places under its 1-codeword prefixes, by text to the last product",
          "tiger_cold_aisle": "TIGER, the same 2 places in the last product's aisle, by text to it"}
COLD_SLOTS = 2
QUICK = {"orders": 12000, "max_test": 1000, "epochs": 3, "sasrec_epochs": 3,
         "config": {"d_model": 64, "heads": 2, "layers": 2, "batch_size": 128, "beam": 30}}


def top_k_excluding(scores: np.ndarray, histories: list[np.ndarray], k: int = K) -> np.ndarray:
    """(B, N) scores -> (B, k) best product rows, the history left out."""
    scores = scores.copy()
    for i, h in enumerate(histories):
        scores[i, h] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    return np.take_along_axis(top, order, 1)


def held_out_products(baskets: list[np.ndarray], n: int, share: float, seed: int) -> np.ndarray:
    """(n,) bool: ``share`` of the products bought in ``baskets``, drawn at random (seeded), none for 0."""
    held = np.zeros(n, bool)
    if share > 0:
        bought = np.unique(np.concatenate(baskets))
        held[np.random.default_rng(seed + 2000).choice(bought, int(round(share * len(bought))), replace=False)] = True
    return held


def popularity_recs(pop: np.ndarray, histories, k=K) -> np.ndarray:
    ranked = np.argsort(-pop, kind="stable")[: k + 64]
    out = np.empty((len(histories), k), dtype=np.int64)
    for i, h in enumerate(histories):
        hs = set(h.tolist())
        out[i] = [p for p in ranked if p not in hs][:k]
    return out


def cooccurrence_recs(train: list[np.ndarray], n: int, pop: np.ndarray, histories, k=K, chunk=256) -> np.ndarray:
    from scipy import sparse

    rows = np.repeat(np.arange(len(train)), [len(b) for b in train])
    m = order_matrix(rows, np.concatenate(train), n)
    together = (m.T @ m).tocsr()
    together.setdiag(0)
    together.eliminate_zeros()
    tie = pop / (pop.max() + 1) * 1e-3  # below one shared order
    out = np.empty((len(histories), k), dtype=np.int64)
    for lo in range(0, len(histories), chunk):
        hs = histories[lo: lo + chunk]
        h = sparse.csr_matrix((np.ones(sum(len(x) for x in hs), np.float32),
                               (np.repeat(np.arange(len(hs)), [len(x) for x in hs]), np.concatenate(hs))),
                              shape=(len(hs), n))
        scores = np.asarray((h @ together).todense()) + tie[None]
        out[lo: lo + len(hs)] = top_k_excluding(scores, hs, k)
    return out


def content_recs(x: np.ndarray, histories, k=K, chunk=256) -> np.ndarray:
    out = np.empty((len(histories), k), dtype=np.int64)
    for lo in range(0, len(histories), chunk):
        hs = histories[lo: lo + chunk]
        scores = x[[h[-1] for h in hs]] @ x.T
        out[lo: lo + len(hs)] = top_k_excluding(scores, hs, k)
    return out


def metrics(recs: np.ndarray, target: np.ndarray, warm: np.ndarray, tail: np.ndarray) -> dict:
    out = hit_metrics(recs, target, warm)
    shown = recs[recs >= 0]
    out["tail_coverage"] = float(np.isin(np.flatnonzero(tail), shown).mean())
    out["tail_share"] = float(tail[shown].mean())
    out["distinct_shown"] = int(len(np.unique(shown)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--hold-out", type=float, default=0.0, metavar="SHARE",
                        help="a split by product beside the split by order: this share of the products bought in "
                             "the orders (seeded by --split-seed) left out of every training order, so that their "
                             "test targets are cold (TIGER's cold-start protocol held out 5%%)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a small run that checks it learns: {QUICK['orders']} orders, {QUICK['max_test']} test "
                             f"baskets, {QUICK['epochs']} epochs, a smaller model")
    parser.add_argument("--flavor", default="precision")
    parser.add_argument("--codes", default="rqvae", choices=bd.METHODS, help="which semantic IDs TIGER reads")
    parser.add_argument("--orders", type=int, default=None, help="a random sample of this many orders")
    parser.add_argument("--max-test", type=int, default=None, help="at most this many test baskets")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--sasrec-epochs", type=int, default=None)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--config", default="{}", help="JSON overrides of baskets.core.nextitem.NextItemConfig")
    parser.add_argument("--codes-config", default="{}", help="JSON overrides of RQVAEConfig for the codes")
    parser.add_argument("--copurchase-weight", type=float, default=bd.COPURCHASE_WEIGHT,
                        help="--codes rqvae_cp: the co-purchase half's weight beside the text's (default: the "
                             "application's baskets.core.copurchase.COPURCHASE_WEIGHT; 1 weighs them alike)")
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="run nothing: the table from --json-out files of earlier runs (one per seed)")
    args = parser.parse_args()
    if args.merge:
        payloads = [json.loads(Path(p).read_text()) for p in args.merge]
        info = payloads[0]["info"]
        seen, results = set(), []
        for p in payloads:
            for r in p["results"]:
                key = (r["method"], r["seed"])
                if key not in seen:  # the deterministic baselines come once
                    seen.add(key)
                    results.append(r)
        print(table(info, results))
        return

    import torch

    from baskets.core.nextitem import NextItemConfig, cold_group_index, cold_index, recommend, train_next_item
    from baskets.core.sasrec import sasrec_recommend, train_sasrec

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
    started = time.time()
    quick = QUICK if args.quick else {}
    orders_n = args.orders or quick.get("orders")
    max_test = args.max_test or quick.get("max_test")
    epochs = args.epochs or quick.get("epochs") or NextItemConfig().epochs
    sasrec_epochs = args.sasrec_epochs or quick.get("sasrec_epochs") or 10
    overrides = {**quick.get("config", {}), **json.loads(args.config), "epochs": epochs}
    codes_overrides = json.loads(args.codes_config)

    ds = common.load_dataset("instacart")
    lines = bd.load_baskets(ds)
    baskets = lines.orders()
    if orders_n and orders_n < len(baskets):
        keep = np.sort(np.random.default_rng(args.split_seed + 1000).choice(len(baskets), orders_n, replace=False))
        baskets = [baskets[i] for i in keep]
    tr, va, te = split_orders(len(baskets), args.split_seed)
    n = len(ds)
    train = [baskets[i] for i in tr]
    held = held_out_products(baskets, n, args.hold_out, args.split_seed)
    if held.any():
        train = [b for b in (b[~held[b]] for b in train) if len(b)]
    histories, target = leave_last_out([baskets[i] for i in te])
    if max_test and max_test < len(target):
        pick = np.sort(np.random.default_rng(args.split_seed).choice(len(target), max_test, replace=False))
        histories, target = [histories[i] for i in pick], target[pick]
    pop = np.bincount(np.concatenate(train), minlength=n).astype(np.float64)
    warm = pop[target] > 0
    by_pop = np.argsort(-pop, kind="stable")
    head_n = int(np.searchsorted(np.cumsum(pop[by_pop]), pop.sum() / 2)) + 1
    tail = np.ones(n, bool)
    tail[by_pop[:head_n]] = False
    x = common.embed_dataset(ds, args.flavor, device=args.device) if {"content", "tiger"} & set(args.methods) else None
    # Codes that read the baskets read the training orders only.
    learned = copurchase_embedding(train, n) if args.codes == "rqvae_cp" else None
    info = {"orders": len(baskets), "train_orders": len(tr), "val_orders": len(va), "test_orders": len(te),
            "test_cases": int(len(target)), "warm_cases": int(warm.sum()), "cold_cases": int((~warm).sum()),
            "train_products": int((pop > 0).sum()), "head_products": head_n, "tail_products": int(tail.sum()),
            "catalog": n, "flavor": args.flavor, "codes": args.codes, "config": overrides,
            "codes_config": codes_overrides, "copurchase_weight": args.copurchase_weight,
            "sasrec_epochs": sasrec_epochs, "device": bd.device_name(args.device),
            "split_seed": args.split_seed, "hold_out": args.hold_out, "held_out_products": int(held.sum()),
            "held_out_cases": int(held[target].sum())}
    print(json.dumps(info), flush=True)
    results = []

    def record(method, seed, recs, **extra):
        results.append({"method": method, "seed": seed, **metrics(recs, target, warm, tail), **extra})
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in results[-1].items()}), flush=True)

    if "popularity" in args.methods:
        record("popularity", None, popularity_recs(pop, histories))
    if "cooccurrence" in args.methods:
        record("cooccurrence", None, cooccurrence_recs(train, n, pop, histories))
    if "content" in args.methods:
        record("content", None, content_recs(x, histories))
    for seed in args.seeds:
        if "sasrec" in args.methods:
            t = time.time()
            model = train_sasrec(train, n, epochs=sasrec_epochs, seed=seed, device=args.device,
                                 batch_size=overrides.get("batch_size", 256))
            record("sasrec", seed, sasrec_recommend(model, histories, device=args.device),
                   train_seconds=model.seconds, seconds=time.time() - t)
        if "tiger" in args.methods:
            t = time.time()
            codes = bd.semantic_codes(ds, x, args.flavor, args.codes, seed, device=args.device,
                                      overrides=codes_overrides, copurchase=learned,
                                      copurchase_weight=args.copurchase_weight)
            config = NextItemConfig.from_dict({**NextItemConfig().to_dict(), **overrides, "seed": seed})
            model = train_next_item(train, codes, config, device=args.device,
                                    on_epoch=lambda e, E, row: print(f"  tiger epoch {e}/{E} loss {row['loss']:.3f}",
                                                                      file=sys.stderr, flush=True))
            recs = np.concatenate([recommend(model, histories[lo: lo + 256], K, device=args.device, popularity=pop)
                                   for lo in range(0, len(histories), 256)])
            record("tiger", seed, recs, train_seconds=model.seconds, seconds=time.time() - t,
                   loss=[round(h["loss"], 4) for h in model.history])
            for method, (depth, by_text) in COLD_RULES.items():
                if method in args.methods:  # the same model, TIGER's cold-start rule
                    groups = ds.leaf if depth == "aisle" else None
                    cold = (cold_group_index(groups, pop == 0) if groups is not None
                            else cold_index(model.trie, pop == 0, depth))
                    recs = np.concatenate([recommend(model, histories[lo: lo + 256], K, device=args.device,
                                                     popularity=pop, cold=cold, cold_slots=COLD_SLOTS,
                                                     cold_vectors=x if by_text else None, cold_groups=groups)
                                           for lo in range(0, len(histories), 256)])
                    record(method, seed, recs)
    info["seconds"] = round(time.time() - started)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"info": info, "results": results}, indent=1))
    print(table(info, results))


def table(info: dict, results: list[dict]) -> str:
    cols = [f"{part}_{m}@{k}" for part in ("warm", "cold") for m in ("recall", "ndcg") for k in (5, 10)]
    names = {c: c.replace("_recall", " R").replace("_ndcg", " NDCG") for c in cols}
    head = ["method", "seeds", *[names[c] for c in cols], "tail coverage", "tail share"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in METHODS:
        rows = [r for r in results if r["method"] == method]
        if not rows:
            continue
        seeds = ", ".join(str(r["seed"]) for r in rows if r["seed"] is not None) or "–"
        cells = [bd.mean_spread([r.get(c) for r in rows]) for c in (*cols, "tail_coverage", "tail_share")]
        out.append(f"| {LABELS[method]} | {seeds} | " + " | ".join(cells) + " |")
    held = (f"; {info['held_out_products']:,} products ({info['hold_out']:.0%} of those bought) left out of the "
            f"training orders, {info['held_out_cases']:,} of the cold targets" if info.get("hold_out") else "")
    return (f"{info['test_cases']:,} test baskets ({info['warm_cases']:,} warm targets, {info['cold_cases']:,} "
            f"cold{held}) "
            f"of {info['orders']:,} orders ({info['train_orders']:,} train / {info['val_orders']:,} val / "
            f"{info['test_orders']:,} test); {info['train_products']:,} products in the training orders, tail "
            f"{info['tail_products']:,} of {info['catalog']:,}; codes {info['codes']} {info['flavor']}; device "
            f"{info['device']}\n\n" + "\n".join(out))


if __name__ == "__main__":
    main()
