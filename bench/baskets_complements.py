"""Do the codes capture how people shop? Top co-purchased partners reached by the category tree, the
semantic-ID prefixes, the embedding's nearest neighbours, at equal candidate-set sizes (issue 20).

    .venv/bin/python bench/baskets_complements.py [--flavors precision discovery]
        [--methods rqvae rqvae_l0 rkmeans rqvae_cp] [--seeds 0 1 2] [--device cpu|cuda]
        [--config '{"epochs": 20}'] [--json-out F] [--merge F...]

Orders are split as the next-item benchmark splits them (baskets.core.evaluation.split_orders, seed 0):
"rqvae_cp" reads the co-purchase embedding of the training 80% beside the text
(baskets.core.copurchase.copurchase_embedding), and every method is scored on the other 20%. Anchors:
catalog products in at least --min-baskets of those orders (20) with a categorized leaf and at least one
partner; their partners: the --partners (10) of highest lift above 1 among pairs of at least
MIN_PAIR_SUPPORT (the application's) shared orders, lift = together·N/(n_a·n_b) (the issue's definition); with
--partners-by above-chance, those surely above chance with the orders' sizes kept, the surest first (the product
page's panel: baskets.core.copurchase.above_chance_matrix).

Every method ranks the other 49,687 catalog products for an anchor:
- the tree: same aisle (leaf) first, then same department, then the rest;
- a semantic ID: longest shared prefix first (4 levels, then 3, ...);
- the embedding: cosine, nearest first; with "rqvae_cp", the co-purchase embedding of the training orders too
  (what the baskets alone reach; a product never bought with another is a zero row, after every positive cosine).
"Reach at k" = the share of an anchor's partners among its first k candidates, averaged over anchors. Ties
(every product of one aisle, of one shared prefix) are broken at random, in expectation: a group cut by k
counts for its partners times the part of it that fits. k is the anchor's own aisle size (the tree's
"same aisle" set: the tree's reach there is exactly "same aisle"), its department's size ("same
department"), or fixed. The second table is the sets themselves: "shares level l" with its mean size.

The partners that clear the support in the scored orders are mostly the most bought products (bananas, milk,
avocados): a row "most bought in the training orders" ranks every product by that count alone. So each method
also gets a same-popularity AUC (`SamePopularity`): each partner against DECOYS draws (with replacement) of the
products bought about as often in the training orders (its DECOY_WINDOW neighbours on each side in that count's
order, neither the anchor nor one of its partners), the share of draws the method ranks below the partner (ties
count half; random and popularity alone about 0.5), averaged over anchors like the reach. Partners among the
DECOY_WINDOW most bought have no neighbours above them and are left out of it. The tree and the IDs rank by the
levels shared, the embeddings by cosine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baskets_data as bd  # noqa: E402
import common  # noqa: E402

from baskets.core.copurchase import (  # noqa: E402
    MIN_PAIR_SUPPORT,
    above_chance_matrix,
    copurchase_embedding,
    orders_lift,
    top_partners,
)

FIXED_K = (10, 100, 250, 1000)
DECOYS = 20
DECOY_WINDOW = 10


def top_lift_anchors(ds, lift, bought: np.ndarray, min_baskets: int, top: int):
    """(candidates: categorized products in >= `min_baskets` of the orders `lift` counts, the anchors among them
    with a partner, each anchor's up to `top` partners by lift above 1)."""
    candidates = np.flatnonzero((bought >= min_baskets) & (ds.leaf >= 0))
    partners = top_partners(lift, candidates, top)
    keep = np.array([len(p) > 0 for p in partners], bool)
    return candidates, candidates[keep], [p for p, k in zip(partners, keep) if k]


def group_ids(columns: np.ndarray) -> np.ndarray:
    """(N, L) -> (N, L) id of each row's prefix of length l+1 (unique per column); -1 stays -1 (absent)."""
    out = np.full(columns.shape, -1, dtype=np.int64)
    for level in range(columns.shape[1]):
        present = columns[:, level] >= 0
        _, inverse = np.unique(columns[present, : level + 1], axis=0, return_inverse=True)
        out[present, level] = inverse.reshape(-1)
    return out


class Anchors:
    def __init__(self, anchors, partners, dept):
        self.ids = anchors  # (A,)
        self.count = np.array([len(p) for p in partners])  # (A,) partners per anchor
        self.pair_anchor = np.repeat(np.arange(len(anchors)), self.count)  # flattened (anchor row, partner)
        self.pair_partner = np.concatenate(partners)
        self.other_dept = dept[self.pair_partner] != dept[anchors[self.pair_anchor]]

    def mean_share(self, hits: np.ndarray, subset: np.ndarray | None = None) -> float:
        """hits: (pairs,) 0..1 expected hit of each partner -> mean over anchors of the partners' share
        (``subset``: only those partners; anchors without any are left out)."""
        keep = np.ones(len(hits), bool) if subset is None else subset
        num = np.bincount(self.pair_anchor[keep], weights=hits[keep], minlength=len(self.ids))
        den = np.bincount(self.pair_anchor[keep], minlength=len(self.ids))
        return float((num[den > 0] / den[den > 0]).mean())


def graded_hits(groups: np.ndarray, an: Anchors, k: np.ndarray) -> np.ndarray:
    """Expected hit (0..1) of each (anchor, partner) when the anchor's candidates are ranked by the number
    of leading levels of ``groups`` they share with it (ties at random) and cut at ``k[anchor]``."""
    n, levels = groups.shape
    a = an.ids
    sizes = np.zeros((len(a), levels + 2))  # S_l: other products sharing >= l levels; S_0 = all others
    sizes[:, 0] = n - 1
    for level in range(levels):
        g = groups[:, level]
        counts = np.bincount(g[g >= 0], minlength=1)
        ga = g[a]
        sizes[:, level + 1] = np.where(ga >= 0, counts[np.maximum(ga, 0)] - 1, 0)
    pa, pp = a[an.pair_anchor], an.pair_partner
    same = (groups[pa] == groups[pp]) & (groups[pa] >= 0)
    grade = np.cumprod(same, axis=1).sum(1)  # (pairs,) leading levels shared
    kk = k[an.pair_anchor].astype(float)
    s = sizes[an.pair_anchor]  # (pairs, L+2)
    # the deepest level whose set still holds k candidates: everything deeper is in, this level partly
    cut = (s[:, : levels + 1] >= kk[:, None]).sum(1) - 1  # sizes shrink with depth; S_0 = N - 1 >= k
    deeper = s[np.arange(len(kk)), cut + 1]  # S_{cut+1} < k
    at_cut = s[np.arange(len(kk)), cut] - deeper
    fraction = np.where(at_cut > 0, (kk - deeper) / np.maximum(at_cut, 1), 0.0)
    return np.where(grade > cut, 1.0, np.where(grade == cut, np.clip(fraction, 0, 1), 0.0))


def set_figures(groups: np.ndarray, an: Anchors) -> list[tuple[float, float]]:
    """Per level l: (mean size of 'shares >= l levels with the anchor' (other products), mean reach)."""
    a = an.ids
    pa, pp = a[an.pair_anchor], an.pair_partner
    same = (groups[pa] == groups[pp]) & (groups[pa] >= 0)
    grade = np.cumprod(same, axis=1).sum(1)
    out = []
    for level in range(groups.shape[1]):
        g = groups[:, level]
        counts = np.bincount(g[g >= 0], minlength=1)
        size = np.where(g[a] >= 0, counts[np.maximum(g[a], 0)] - 1, 0)
        out.append((float(size.mean()), an.mean_share((grade > level).astype(float))))
    return out


class SamePopularity:
    """Each (anchor, partner) pair against DECOYS products of about the partner's popularity (module docstring)."""

    def __init__(self, an: Anchors, bought: np.ndarray, decoys: int = DECOYS, window: int = DECOY_WINDOW,
                 seed: int = 0):
        order = np.argsort(-bought, kind="stable")
        rank = np.empty(len(bought), np.int64)
        rank[order] = np.arange(len(bought))
        self.an, self.rank = an, rank  # rank: each product's place, most bought first (ties: lower index)
        self.keep = rank[an.pair_partner] >= window  # (pairs,) those with neighbours on both sides
        self.pairs = np.flatnonzero(self.keep)
        starts = np.r_[0, np.cumsum(an.count)]
        rng = np.random.default_rng(seed)
        self.decoys = np.empty((len(self.pairs), decoys), np.int64)
        for i, pair in enumerate(self.pairs):
            row = an.pair_anchor[pair]
            taken = np.r_[an.ids[row], an.pair_partner[starts[row]:starts[row + 1]]]
            r = rank[an.pair_partner[pair]]
            near = order[r - window: r + window + 1]
            self.decoys[i] = rng.choice(near[~np.isin(near, taken)], decoys)

    def auc(self, score) -> float:
        """score(anchors, candidates) -> (M,) higher = nearer; the mean over anchors of each kept partner's share
        of its decoys ranked below it (ties half)."""
        an, d = self.an, self.decoys.shape[1]
        anchors = an.ids[an.pair_anchor[self.pairs]]
        own = score(anchors, an.pair_partner[self.pairs])
        other = score(np.repeat(anchors, d), self.decoys.ravel()).reshape(-1, d)
        hits = np.zeros(len(self.keep))
        hits[self.pairs] = ((own[:, None] > other) + 0.5 * (own[:, None] == other)).mean(1)
        return an.mean_share(hits, self.keep)


def shared_levels(groups: np.ndarray):
    """Score: the number of leading levels of ``groups`` a candidate shares with its anchor."""
    return lambda a, c: np.cumprod((groups[a] == groups[c]) & (groups[a] >= 0), axis=1).sum(1)


def cosine(x: np.ndarray):
    """Score: the cosine of a candidate's row of ``x`` with its anchor's (rows of unit length)."""
    return lambda a, c: np.einsum("ij,ij->i", x[a], x[c])


def prefix_then_codeword(groups: np.ndarray, z: np.ndarray):
    """Score: the leading levels shared, then the codeword sums' cosine (`prefix_then_codeword_ranks`'s key)."""
    levels, near = shared_levels(groups), cosine(z)
    return lambda a, c: levels(a, c) * 3.0 + near(a, c)


def cosine_ranks(x: np.ndarray, an: Anchors, chunk: int = 64) -> np.ndarray:
    """Rank (0 = nearest) of each partner among all other products by cosine to its anchor."""
    ranks = np.zeros(len(an.pair_partner), dtype=np.int64)
    starts = np.r_[0, np.cumsum(an.count)]
    for lo in range(0, len(an.ids), chunk):
        rows = np.arange(lo, min(lo + chunk, len(an.ids)))
        sims = x[an.ids[rows]] @ x.T  # (c, N)
        sims[np.arange(len(rows)), an.ids[rows]] = -np.inf
        for r, row in enumerate(rows):
            pairs = slice(starts[row], starts[row + 1])
            psims = sims[r, an.pair_partner[pairs]]
            ranks[pairs] = (sims[r][None, :] > psims[:, None]).sum(1)
    return ranks


def prefix_then_codeword_ranks(groups: np.ndarray, z: np.ndarray, an: Anchors, chunk: int = 64):
    """Each partner's place among all other products ranked by the leading levels they share with the anchor,
    then, within a level, by the cosine of their codeword sums (`bd.codeword_sums`): (products ranked above it,
    products tied with it, itself included). A hit at k is then (k - above) / tied, clipped to 0..1."""
    above = np.zeros(len(an.pair_partner), dtype=np.int64)
    tied = np.zeros(len(an.pair_partner), dtype=np.int64)
    starts = np.r_[0, np.cumsum(an.count)]
    for lo in range(0, len(an.ids), chunk):
        rows = np.arange(lo, min(lo + chunk, len(an.ids)))
        a = an.ids[rows]
        same = (groups[a][:, None, :] == groups[None, :, :]) & (groups[a][:, None, :] >= 0)  # (c, N, L)
        key = np.cumprod(same, axis=2).sum(2) * 3.0 + z[a] @ z.T  # a grade's cosines lie in its [3g - 1, 3g + 1]
        key[np.arange(len(rows)), a] = -np.inf
        for r, row in enumerate(rows):
            pairs = slice(starts[row], starts[row + 1])
            pkey = key[r, an.pair_partner[pairs]]
            above[pairs] = (key[r][None, :] > pkey[:, None]).sum(1)
            tied[pairs] = (key[r][None, :] == pkey[:, None]).sum(1)
    return above, tied


def reach_row(hits_at, an: Anchors) -> dict:
    """hits_at(k per anchor) -> the table's figures."""
    out = {}
    for name, k in an.ks.items():
        hits = hits_at(k)
        out[f"reach_{name}"] = an.mean_share(hits)
        if name in ("aisle", "department"):
            out[f"reach_{name}_other_dept"] = an.mean_share(hits, an.other_dept)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="instacart")
    parser.add_argument("--flavors", nargs="+", default=["precision", "discovery"])
    parser.add_argument("--methods", nargs="+", default=list(bd.METHODS), choices=bd.METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-baskets", type=int, default=20)
    parser.add_argument("--partners", type=int, default=10)
    parser.add_argument("--partners-by", default="lift", choices=["lift", "above-chance"],
                        help="an anchor's partners: the highest lift above 1 (the issue's definition), or those surely "
                             "above chance with the orders' sizes kept, the surest first (the product page's panel)")
    parser.add_argument("--config", default="{}", help="JSON overrides of RQVAEConfig (e.g. fewer epochs on a CPU)")
    parser.add_argument("--copurchase-weight", type=float, default=bd.COPURCHASE_WEIGHT,
                        help="rqvae_cp: the co-purchase half's weight beside the text's (default: the application's "
                             "baskets.core.copurchase.COPURCHASE_WEIGHT; 1 weighs them alike)")
    parser.add_argument("--scored", default="all", choices=["all", "validation", "test"],
                        help="the orders whose lift names the partners: the 20%% not learned from, or one tenth")
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="train nothing: the table from --json-out files of earlier runs")
    args = parser.parse_args()
    overrides = json.loads(args.config)
    started = time.time()

    if args.merge:
        payloads = [json.loads(Path(p).read_text()) for p in args.merge]
        info, results, seen = payloads[0]["info"], [], set()
        for r in (r for p in payloads for r in p["results"]):
            if (r["flavor"], r["method"], r["seed"]) not in seen:  # the tree, random and cosine rows come once
                seen.add((r["flavor"], r["method"], r["seed"]))
                results.append(r)
    else:
        import torch

        torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "1")))
        ds = common.load_dataset(args.dataset)
        train_orders, scored_orders = bd.split(bd.load_baskets(ds), scored=args.scored)
        lift, bought = orders_lift(scored_orders, len(ds))
        if args.partners_by == "above-chance":
            lift = above_chance_matrix(lift, bought, [len(order) for order in scored_orders])
        learned = copurchase_embedding(train_orders, len(ds)) if "rqvae_cp" in args.methods else None
        candidates, anchors, partners = top_lift_anchors(ds, lift, bought, args.min_baskets, args.partners)
        tree = group_ids(ds.taxonomy)
        an = Anchors(anchors, partners, tree[:, 0])
        aisle = np.bincount(tree[:, -1][tree[:, -1] >= 0])[tree[anchors, -1]] - 1
        dept = np.bincount(tree[:, 0][tree[:, 0] >= 0])[tree[anchors, 0]] - 1
        an.ks = {"aisle": aisle, "department": dept, **{str(k): np.full(len(anchors), k) for k in FIXED_K}}
        info = {
            "anchors": int(len(anchors)), "in_min_baskets": int(len(candidates)), "partners": int(an.count.sum()),
            "other_dept_share": float(an.other_dept.mean()), "mean_aisle": float(aisle.mean()),
            "mean_department": float(dept.mean()), "catalog": len(ds), "min_support": MIN_PAIR_SUPPORT,
            "min_baskets": args.min_baskets, "top": args.partners, "device": bd.device_name(args.device),
            "orders_scored": len(scored_orders), "orders_learned": len(train_orders),
            "config": overrides, "copurchase_weight": args.copurchase_weight, "scored": args.scored,
            "partners_by": args.partners_by,
        }
        print(json.dumps(info), flush=True)
        _, popularity = orders_lift(train_orders, len(ds))  # each product's orders among those learned from
        same = SamePopularity(an, popularity)
        info["same_popularity_pairs"] = int(same.keep.sum())
        results = []
        row = {"flavor": "–", "method": "tree", "seed": None,
               **reach_row(lambda k: graded_hits(tree, an, k), an), "sets": set_figures(tree, an),
               "same_popularity_auc": same.auc(shared_levels(tree))}
        results.append(row)
        rnd = {"flavor": "–", "method": "random", "seed": None, "same_popularity_auc": 0.5}
        for name, k in an.ks.items():
            rnd[f"reach_{name}"] = float((k / (len(ds) - 1)).mean())
        results.append(rnd)
        place = same.rank[an.pair_partner]
        ranks = place - (same.rank[an.ids[an.pair_anchor]] < place)  # among the other products
        results.append({"flavor": "–", "method": "popularity", "seed": None,
                        **reach_row(lambda k: (ranks < k[an.pair_anchor]).astype(float), an),
                        "same_popularity_auc": same.auc(lambda a, c: popularity[c].astype(float))})
        print(json.dumps(results[-1]), flush=True)
        if learned is not None:  # what the baskets alone reach: the co-purchase half of "rqvae_cp"'s input
            ranks = cosine_ranks(learned, an)
            results.append({"flavor": "–", "method": "copurchase", "seed": None,
                            **reach_row(lambda k: (ranks < k[an.pair_anchor]).astype(float), an),
                            "same_popularity_auc": same.auc(cosine(learned))})
            print(json.dumps(results[-1]), flush=True)
        for flavor in args.flavors:
            x = common.embed_dataset(ds, flavor, device=args.device)
            ranks = cosine_ranks(x, an)
            results.append({"flavor": flavor, "method": "embedding", "seed": None,
                            **reach_row(lambda k: (ranks < k[an.pair_anchor]).astype(float), an),
                            "same_popularity_auc": same.auc(cosine(x))})
            print(json.dumps(results[-1]), flush=True)
            for method in args.methods:
                for seed in args.seeds:
                    codes, z = bd.semantic_codes(ds, x, flavor, method, seed, device=args.device,
                                                 overrides=overrides, copurchase=learned, vectors=True,
                                                 copurchase_weight=args.copurchase_weight)
                    groups = group_ids(codes)
                    results.append({"flavor": flavor, "method": method, "seed": seed,
                                    **reach_row(lambda k: graded_hits(groups, an, k), an),
                                    "sets": set_figures(groups, an),
                                    "same_popularity_auc": same.auc(shared_levels(groups))})
                    print(json.dumps(results[-1]), flush=True)
                    if z is not None:  # the same IDs, a prefix's products ranked by their codewords
                        above, tied = prefix_then_codeword_ranks(groups, z, an)
                        results.append({"flavor": flavor, "method": f"{method}+codewords", "seed": seed,
                                        **reach_row(lambda k: np.clip((k[an.pair_anchor] - above) / tied, 0, 1),
                                                    an),
                                        "same_popularity_auc": same.auc(prefix_then_codeword(groups, z))})
                        print(json.dumps(results[-1]), flush=True)
        info["seconds"] = round(time.time() - started)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"info": info, "results": results}, indent=1))
    print(tables(info, results))


def tables(info: dict, results: list[dict]) -> str:
    label = {"tree": "category tree (aisle, then department)", "random": "random", "embedding": "embedding cosine",
             "copurchase": "co-purchase embedding cosine (training orders; no text)",
             "popularity": "most bought in the training orders", **bd.LABELS}
    keys = [("reach_aisle", "k = own aisle"), ("reach_aisle_other_dept", "other-dept partners, k = aisle"),
            ("reach_department", "k = own department"), ("reach_department_other_dept", "other-dept, k = dept"),
            *[(f"reach_{k}", f"k = {k}") for k in FIXED_K], ("same_popularity_auc", "same-popularity AUC")]

    def name(method: str) -> str:  # "rqvae_cp+codewords": those IDs, a prefix's products by their codewords
        base, _, codewords = method.partition("+")
        return label[base] + (", then codeword distance within a prefix" if codewords else "")
    groups: dict = {}
    for r in results:
        groups.setdefault((r["flavor"], r["method"]), []).append(r)
    out = ["| flavor | method | seeds | " + " | ".join(t for _, t in keys) + " |", "|" + "---|" * (len(keys) + 3)]
    for (flavor, method), rows in groups.items():
        seeds = ", ".join(str(r["seed"]) for r in rows if r["seed"] is not None) or "–"
        cells = [bd.mean_spread([r.get(key) for r in rows]) for key, _ in keys]
        out.append(f"| {flavor} | {name(method)} | {seeds} | " + " | ".join(cells) + " |")
    out += ["", "| flavor | method | " + " | ".join(f"level {lv} (size / reach)" for lv in range(1, 5)) + " |",
            "|---|---|---|---|---|---|"]
    for (flavor, method), rows in groups.items():
        if "sets" not in rows[0]:
            continue
        cells = []
        for level in range(4):
            got = [r["sets"][level] for r in rows if level < len(r["sets"])]
            if not got:
                cells.append("")
                continue
            size = np.mean([g[0] for g in got])
            cells.append(f"{size:,.0f} / {bd.mean_spread([g[1] for g in got])}")
        out.append(f"| {flavor} | {name(method)} | " + " | ".join(cells) + " |")
    above = info.get("partners_by") == "above-chance"
    rule = "surely above chance with the orders' sizes kept" if above else "lift > 1"
    head = (f"{info['anchors']:,} anchors (of {info['in_min_baskets']:,} categorized products in >= "
            f"{info['min_baskets']} of the {info.get('orders_scored', 0):,} scored orders; those with a partner "
            f"{rule} at support >= {info['min_support']}), {info['partners']:,} partners (top {info['top']} by "
            f"{'the surest' if above else 'lift'}), {info['other_dept_share']:.1%} of them in "
            f"another department; mean aisle {info['mean_aisle']:,.0f} and department {info['mean_department']:,.0f}"
            f" other products of {info['catalog']:,}"
            + (f"; same-popularity AUC over {info['same_popularity_pairs']:,} partners" if "same_popularity_pairs"
               in info else ""))
    return head + "\n\n" + "\n".join(out)


if __name__ == "__main__":
    main()
