"""Which near-duplicate pairs the codes split at level 1, by how the taxonomy relates them.

    SEMID_DATA_DIR=../shared/data .venv/bin/python bench/studies/same_l1_split.py [--limit 13777 --sample-seed 100]
        [--seed 100] [--lambdas 0 0.3] [--device cpu]

For every pair of products with cosine >= 0.9 (the pairs of the same-level-1 goal), the share whose
level-1 codes differ, split by the pair's relation in the tree: identical text, same leaf, siblings
(same parent), same top-level department, different departments. Trains one RQ-VAE per lambda with
the recipe's other settings; default: the dev split of docs/semantic-ids.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, first
import common  # noqa: E402

from quantizer.core import RQVAEConfig, encode, train_rqvae  # noqa: E402
from quantizer.core.metrics import HIGH_SIM, _neighbours  # noqa: E402

RELATIONS = ("identical text", "same leaf", "siblings", "same department", "different departments")


def relation(tax: np.ndarray, x: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Index into RELATIONS per pair (both ends categorized). Column t of `tax` is the id of the
    row's depth-(t+1) path prefix, so equal ids in one column mean the same node."""
    rows = np.arange(len(tax))
    depth = (tax >= 0).sum(1)
    leaf = depth * 1_000_003 + tax[rows, depth - 1]  # node ids of different columns kept apart
    parent = np.where(depth > 1, (depth - 1) * 1_000_003 + tax[rows, np.maximum(depth - 2, 0)], -1 - rows)
    out = np.full(len(i), 4)
    out[tax[i, 0] == tax[j, 0]] = 3
    out[parent[i] == parent[j]] = 2
    out[leaf[i] == leaf[j]] = 1
    out[(x[i] == x[j]).all(1)] = 0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="bigbasket")
    p.add_argument("--limit", type=int, default=13777)
    p.add_argument("--sample-seed", type=int, default=100)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.3])
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    ds = common.load_dataset(args.dataset, limit=args.limit, sample_seed=args.sample_seed)
    x = common.embed_dataset(ds, "precision", device=args.device)
    tax = ds.taxonomy
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    _, hi_i, hi_j = _neighbours(xn, np.arange(len(x)), 1)
    i, j = np.concatenate(hi_i), np.concatenate(hi_j)
    both = (tax[i, 0] >= 0) & (tax[j, 0] >= 0)
    i, j = i[both], j[both]
    rel = relation(tax, x, i, j)
    print(f"{args.dataset}: {len(x)} products, {len(i)} categorized pairs with cosine >= {HIGH_SIM}")
    print("| relation | pairs | " + " | ".join(f"split at L1, λ={lam:g}" for lam in args.lambdas) + " |")
    print("|---|---|" + "---|" * len(args.lambdas))
    splits = []
    for lam in args.lambdas:
        # the model's own level 1: nearest codewords, near-duplicate groups off
        config = RQVAEConfig.from_dict({"input_dim": x.shape[1], "seed": args.seed, "contrastive_weight": lam,
                                        "near_duplicate_threshold": 0.0})
        torch.manual_seed(args.seed)
        codes = encode(train_rqvae(x, tax, config, device=args.device).model, x, device=args.device).codes
        splits.append(codes[i, 0] != codes[j, 0])
    for r, name in enumerate(RELATIONS):
        m = rel == r
        cells = [f"{s[m].mean():.3f} ({s[m].sum()})" if m.any() else "—" for s in splits]
        print(f"| {name} | {m.sum()} | " + " | ".join(cells) + " |")
    cells = [f"{s.mean():.3f} ({s.sum()})" for s in splits]
    print("| all | " + f"{len(i)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
