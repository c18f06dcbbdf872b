"""Baskets and semantic IDs for the baskets benchmarks (bench/baskets_complements.py,
bench/baskets_retrieval.py). No Django: numpy, scipy and torch only, so they run on the GPU box.

The catalog comes from bench/common.py (``load_dataset("instacart")``, embeddings cached there); the
orders from ``DATA_DIR/instacart_baskets.csv`` (``$SEMID_DATA_DIR`` or ../shared/data), read once and
cached as .npz under ``$SEMID_HOME/cache/baskets/`` beside the codes of every (flavor, method, seed).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from baskets.core.copurchase import COPURCHASE_WEIGHT  # noqa: E402

BASKETS_FILE = "instacart_baskets.csv"
METHODS = ("rqvae", "rqvae_l0", "rkmeans", "rqvae_cp")
LABELS = {"rqvae": "RQ-VAE (default λ)", "rqvae_l0": "RQ-VAE λ=0", "rkmeans": "residual k-means",
          "rqvae_cp": "RQ-VAE on text + co-purchase embedding (training orders)"}
# The orders the co-purchase embedding may read: the training part of `split_orders(orders, SPLIT_SEED)` (80%);
# the complements and the next-item benchmarks score on the other 20%.
SPLIT_SEED = 0


def cache_dir() -> Path:
    path = common.semid_home() / "cache" / "baskets"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Baskets:
    """Basket lines sorted by order then cart position; products are row numbers of the dataset."""

    order: np.ndarray  # (M,) int64 order ids
    product: np.ndarray  # (M,) int64 dataset rows
    position: np.ndarray  # (M,) int64 add_to_cart_order

    def orders(self) -> list[np.ndarray]:
        """Each order's products in cart order."""
        starts = np.flatnonzero(np.r_[True, self.order[1:] != self.order[:-1]])
        return np.split(self.product, starts[1:])

    def order_ids(self) -> np.ndarray:
        return self.order[np.flatnonzero(np.r_[True, self.order[1:] != self.order[:-1]])]


def baskets_path() -> Path:
    """DATA_DIR/instacart_baskets.csv, or the same compressed (.csv.xz, .csv.gz: what the GPU box carries)."""
    for suffix in ("", ".xz", ".gz"):
        path = common.DATA_DIR / (BASKETS_FILE + suffix)
        if path.exists():
            return path
    path = common.DATA_DIR / BASKETS_FILE
    shown = os.path.relpath(path, Path.cwd()) if path.is_absolute() else str(path)
    raise SystemExit(f"{shown} not found: the baskets benchmarks read the shared data by path; set "
                     f"SEMID_DATA_DIR to the folder that holds {BASKETS_FILE} (or {BASKETS_FILE}.xz) and instacart.csv")


def _open_text(path: Path):
    if path.suffix == ".xz":
        import lzma

        return lzma.open(path, "rt", newline="", encoding="utf-8-sig")
    if path.suffix == ".gz":
        import gzip

        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return path.open(newline="", encoding="utf-8-sig")


def load_baskets(ds: common.Dataset) -> Baskets:
    """The orders of instacart_baskets.csv over ``ds``'s products (lines of unknown products dropped,
    counted on stderr)."""
    path = baskets_path()
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}:{ds.name}:{len(ds)}".encode()
                         ).hexdigest()[:16]
    cache = cache_dir() / f"lines-{key}.npz"
    if cache.exists():
        z = np.load(cache)
        return Baskets(z["order"], z["product"], z["position"])
    started = time.time()
    index = {r["external_id"]: i for i, r in enumerate(ds.records)}
    orders, products, positions, unknown = [], [], [], 0
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader)
        at_o, at_p, at_c = (header.index(c) for c in ("order_id", "external_id", "add_to_cart_order"))
        for row in reader:
            i = index.get(row[at_p])
            if i is None:
                unknown += 1
                continue
            orders.append(int(row[at_o]))
            products.append(i)
            positions.append(int(row[at_c]))
    order, product, position = (np.asarray(v, dtype=np.int64) for v in (orders, products, positions))
    sort = np.lexsort((position, order))
    out = Baskets(order[sort], product[sort], position[sort])
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # several processes may read the orders at once
    np.savez(tmp, order=out.order, product=out.product, position=out.position)
    tmp.replace(cache)
    print(f"read {len(order):,} basket lines in {time.time() - started:.0f}s"
          + (f" ({unknown} of unknown products dropped)" if unknown else ""), file=sys.stderr)
    return out


def split(lines: Baskets, seed: int = SPLIT_SEED, scored: str = "all") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The orders (each its product rows in cart order) cut by `split_orders`: (training 80%, the orders scored:
    the other 20% ("all"), or its validation or test tenth alone, to choose a setting on one and report the
    other)."""
    from baskets.core.evaluation import split_orders

    orders = lines.orders()
    train, validation, test = split_orders(len(orders), seed)
    rest = {"all": np.sort(np.r_[validation, test]), "validation": validation, "test": test}[scored]
    return [orders[i] for i in train], [orders[i] for i in rest]


def semantic_codes(ds: common.Dataset, x: np.ndarray, flavor: str, method: str, seed: int, *,
                   device: str = "cpu", overrides: dict | None = None, copurchase: np.ndarray | None = None,
                   vectors: bool = False, copurchase_weight: float = COPURCHASE_WEIGHT):
    """(N, L) semantic IDs of every product: the RQ-VAE (default config, the taxonomy contrastive weight
    as configured), the RQ-VAE with λ = 0, residual k-means, as bench/semantic_ids.py trains them, or
    ("rqvae_cp") the RQ-VAE on each product's text embedding beside its `copurchase` row
    (baskets.core.copurchase.copurchase_embedding of the training orders), the co-purchase half weighed
    `copurchase_weight` beside the text (quantizer.core.inputs.side_by_side; the application's by default).
    Cached by dataset, flavor, method, seed, config and a digest of the input; an RQ-VAE's codebooks beside.
    With `vectors`: (codes, each product's codeword sum: its ID as a point of the model's latent space, unit
    length; None for residual k-means)."""
    import torch

    from quantizer.core import RQVAEConfig, encode, residual_kmeans, train_rqvae

    overrides = dict(overrides or {})
    if method == "rqvae_l0":
        overrides["contrastive_weight"] = 0.0
    if method == "rqvae_cp":
        if copurchase is None:
            raise ValueError("rqvae_cp needs the co-purchase embedding of the training orders")
        from quantizer.core.inputs import side_by_side

        x = side_by_side(x, copurchase, copurchase_weight)
    # the flat stored form (to_dict / from_dict): the same names whether or not the recipe is grouped
    config = RQVAEConfig.from_dict({**RQVAEConfig().to_dict(), "input_dim": x.shape[1], "seed": seed, **overrides})
    flat = config.to_dict()
    digest = hashlib.sha256(np.ascontiguousarray(x[:: max(1, len(x) // 512)]).tobytes()
                            + json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:12]  # the defaults are the recipe
    cache = cache_dir() / f"codes-{ds.name}-{flavor}-{method}-s{seed}-{len(x)}-{digest}.npy"
    books = cache.with_suffix(".codebooks.npz")
    if cache.exists() and (not vectors or method == "rkmeans" or books.exists()):
        codes = np.load(cache)
        return (codes, codeword_sums(codes, books)) if vectors else codes
    started = time.time()
    torch.manual_seed(seed)
    if method == "rkmeans":
        codes = residual_kmeans(x, tuple(flat["codebook_sizes"]), seed=seed, device=device,
                                spread=flat["spread_last_level"],
                                near_duplicate_threshold=flat["near_duplicate_threshold"],
                                near_duplicate_max_group=flat["near_duplicate_max_group"])
    elif method in ("rqvae", "rqvae_l0", "rqvae_cp"):
        result = train_rqvae(x, ds.taxonomy, config, device=device)
        codes = encode(result.model, x, device=device).codes
        np.savez(books, *[book.detach().cpu().numpy() for book in result.model.quantizer.codebooks])
    else:
        raise ValueError(f"unknown method {method!r}: one of {METHODS}")
    codes = np.asarray(codes, dtype=np.int64)
    np.save(cache, codes)
    print(f"codes {ds.name} {flavor} {method} seed {seed}: {time.time() - started:.0f}s -> {cache.name}",
          file=sys.stderr)
    return (codes, codeword_sums(codes, books)) if vectors else codes


def codeword_sums(codes: np.ndarray, books: Path) -> np.ndarray | None:
    """(N, d) unit rows: each product's codewords summed over its levels (the model's quantized latent), from
    the codebooks `semantic_codes` saved; None where there are none (residual k-means)."""
    if not books.exists():
        return None
    with np.load(books) as saved:
        levels = [saved[f"arr_{level}"] for level in range(len(saved.files))]
    total = sum(book[codes[:, level]] for level, book in enumerate(levels)).astype(np.float32)
    return total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)


def device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine() or "cpu"


def mean_spread(values) -> str:
    """'mean ± std' over seeds (std with n-1; a single value alone)."""
    import statistics

    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean = statistics.fmean(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {statistics.stdev(values):.3f}"


def main():
    """``python bench/baskets_data.py --flavor F --method M --seed S [--device cuda]``: compute and cache one
    set of codes (the GPU script runs one process per set side by side, then the benchmarks read them)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--dataset", default="instacart")
    parser.add_argument("--flavor", default="precision")
    parser.add_argument("--method", default="rqvae", choices=METHODS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--config", default="{}", help="JSON overrides of RQVAEConfig")
    parser.add_argument("--copurchase-weight", type=float, default=COPURCHASE_WEIGHT,
                        help="rqvae_cp: the co-purchase half's weight beside the text's (default: the application's "
                             "baskets.core.copurchase.COPURCHASE_WEIGHT; 1 weighs them alike)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
    ds = common.load_dataset(args.dataset)
    x = common.embed_dataset(ds, args.flavor, device=args.device)
    copurchase = None
    if args.method == "rqvae_cp":
        from baskets.core.copurchase import copurchase_embedding

        copurchase = copurchase_embedding(split(load_baskets(ds))[0], len(ds))
    codes = semantic_codes(ds, x, args.flavor, args.method, args.seed, device=args.device,
                           overrides=json.loads(args.config), copurchase=copurchase,
                           copurchase_weight=args.copurchase_weight)
    print(f"{args.flavor} {args.method} seed {args.seed}: {len(np.unique(codes, axis=0))} distinct codes of {len(codes)}")


if __name__ == "__main__":
    main()
