"""Train and assign semantic IDs for a synthetic catalog of N products (default a million).

    .venv/bin/python bench/scale.py [--n 1000000] [--device cuda] [--epochs 60] [--max-train N]
                                    [--stages recall,train,encode] [--json PATH]
    .venv/bin/python bench/scale.py --catalog bigbasket:precision --stages recall [--probes 3]
    .venv/bin/python bench/scale.py --n 200000 --epochs 5 --stages train,encode,audit

The shared catalogs have 27k and 50k products; a grocery catalog has millions. The products here are
synthetic 384-d unit vectors with a three-level tree (12 departments x 8 subcategories x 10 leaves;
a product is its leaf's centre plus noise, so cosine within a leaf ~0.6, within a department ~0.35)
and 10% near-duplicates of other products (cosine ~0.95). Pure quantizer core, no Django: runs on the
GPU machine. Prints each stage's time (training: also the median time a step, from the epochs after the
first), the peak memory (RSS; CUDA max allocated), a hash of the codes (same seed and data, same hash: a
run-to-run check), and the codes' intrinsic metrics (`encode` includes them). The recall stage measures the approximate neighbours
(`probed_neighbours`, used above 100,000 rows) against exact search; with `--catalog` it runs on a real
catalog's embeddings, where the approximate search is otherwise not used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # after the repo: bench/audit.py must not hide the audit app

from quantizer.core import RQVAEConfig, encode, intrinsic_metrics, train_rqvae  # noqa: E402
from quantizer.core.neighbours import EXACT_LIMIT, probed_neighbours  # noqa: E402
from quantizer.core.metrics import collision_rates  # noqa: E402

import common  # noqa: E402


def synthetic_catalog(n: int, *, dim: int = 384, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, dim) float32 unit vectors and (N, 3) taxonomy ids (department, subcategory, leaf)."""
    rng = np.random.default_rng(seed)
    departments, subs, leaves = 12, 8, 10
    n_leaves = departments * subs * leaves

    def unit(rows: int) -> np.ndarray:
        v = rng.standard_normal((rows, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    dept = np.repeat(unit(departments), subs, axis=0) * 0.6
    sub = np.repeat(dept + unit(departments * subs) * 0.5, leaves, axis=0)
    centres = sub + unit(n_leaves) * 0.55
    leaf = rng.integers(0, n_leaves, n)
    x = np.empty((n, dim), np.float32)
    for s in range(0, n, 65536):  # chunked: keeps the temporaries small at a million rows
        e = min(n, s + 65536)
        x[s:e] = centres[leaf[s:e]] + rng.standard_normal((e - s, dim), dtype=np.float32) * (0.75 / np.sqrt(dim))
    dupes = rng.choice(n, n // 10, replace=False)  # near-duplicates of other products
    x[dupes] = x[rng.integers(0, n, len(dupes))] + rng.standard_normal((len(dupes), dim), dtype=np.float32) * (
        0.2 / np.sqrt(dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    taxonomy = np.stack([leaf // (subs * leaves), leaf // leaves, leaf], 1).astype(np.int64)
    return x, taxonomy


def neighbour_recall(x: np.ndarray, device: str, *, k: int = 10, queries: int = 2000, probes: int | None = None) -> dict:
    """Time `probed_neighbours` over all rows, and its recall against exact search for a sample of
    rows. Ties are common (products listed with near-identical text), so recall counts similarities,
    not ids: found neighbours at least as similar as the exact k-th, over k; and found neighbours with
    cosine >= 0.9 over the exact ones (the near-duplicate edges `near_duplicate_groups` joins)."""
    xt = torch.nn.functional.normalize(torch.from_numpy(x).to(device), dim=1)
    started = time.perf_counter()
    _, found = probed_neighbours(xt, k, **({"probes": probes} if probes else {}))
    seconds = time.perf_counter() - started
    rows = torch.from_numpy(np.random.default_rng(1).choice(len(x), queries, replace=False)).to(device)
    sim = xt[rows] @ xt.t()
    sim[torch.arange(len(rows), device=device), rows] = -float("inf")
    exact = sim.topk(k, dim=1).values
    found = found[rows]
    at_k = (found >= exact[:, -1:] - 1e-6).float().mean()
    near_exact, near_found = int((exact >= 0.9).sum()), int((found >= 0.9).sum())
    return {"probed_s": round(seconds, 1), f"recall_at_{k}": round(float(at_k), 4),
            "near_duplicate_edges": near_exact,
            "near_duplicate_recall": round(near_found / near_exact, 4) if near_exact else None}


def synthetic_words(taxonomy: np.ndarray, *, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Names and brands for the synthetic products: a brand (2,000, each selling in one department), the
    subcategory's word, the leaf's word (a sibling leaf's word in 30% of products), a filler word."""
    rng = np.random.default_rng(seed + 1)
    n = len(taxonomy)
    brand = taxonomy[:, 0] * 1000 + rng.integers(0, 2000 // (taxonomy[:, 0].max() + 1), n)
    sibling = taxonomy[:, 1] * 10 + rng.integers(0, 10, n)
    leaf = np.where(rng.random(n) < 0.3, sibling, taxonomy[:, 2])
    filler = rng.integers(0, 50, n)
    brands = np.array([f"brand{b}" for b in brand], dtype=object)
    texts = [f"{b} sub{s} leaf{lf} word{f}" for b, s, lf, f in zip(brands, taxonomy[:, 1], leaf, filler)]
    return texts, brands


def audit(x: np.ndarray, noisy: np.ndarray, injected: np.ndarray, codes: np.ndarray, truth: np.ndarray,
          device: str) -> dict:
    """Score and calibrate as `audit.runs.run_audit` does; time each, and the ranking of the
    injected labels."""
    from sklearn.metrics import average_precision_score

    from audit.core import calibrate, expected_calibration_error, score_products

    texts, brands = synthetic_words(truth)
    started = time.perf_counter()
    scores = score_products(embeddings=x, taxonomy=noisy, codes=codes, seed=0, brands=brands, texts=texts,
                            device=device)
    scored = time.perf_counter() - started
    started = time.perf_counter()
    calibrator = calibrate(embeddings=x, taxonomy=noisy, codes=codes, combiner=scores.combiner, seed=1,
                           brands=brands, texts=texts, device=device, reuse=scores)
    calibrated = time.perf_counter() - started
    confidence = calibrator.predict(scores.raw_score)
    top1 = scores.suggested[injected] == truth[injected, -1]
    return {"score_s": round(scored, 1), "calibrate_s": round(calibrated, 1),
            "AP": round(float(average_precision_score(injected, scores.raw_score)), 4),
            "top1": round(float(top1.mean()), 4),
            "ECE": round(float(expected_calibration_error(confidence, injected)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    recipe = RQVAEConfig().to_dict()  # the flat form: this bench also runs an earlier core (bench/gpu/train_speed.sh)
    parser.add_argument("--epochs", type=int, default=recipe["epochs"])
    parser.add_argument("--max-train", type=int, default=recipe["max_train_products"],
                        help="products the model trains on (0 = all)")
    parser.add_argument("--catalog", metavar="DATASET:FLAVOR",
                        help="a real catalog's embeddings instead of the synthetic one (e.g. bigbasket:precision; "
                             "reads ../shared/data or SEMID_DATA_DIR)")
    parser.add_argument("--probes", type=int, default=None, help="cells each row is filed in (recall stage)")
    parser.add_argument("--stages", default="recall,train,encode",
                        help="comma-separated: recall (approximate vs exact neighbours), train, encode (+ metrics), "
                             "audit (3%% uniform noise injected before training; synthetic names and brands)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    figures: dict = {"n": args.n, "exact_limit": EXACT_LIMIT, "device": args.device, "epochs": args.epochs, "max_train": args.max_train}
    if args.device.startswith("cuda"):
        figures["gpu"] = torch.cuda.get_device_name()
    started = time.perf_counter()
    if args.catalog:
        dataset, _, flavor = args.catalog.partition(":")
        data = common.load_dataset(dataset)
        x = np.ascontiguousarray(common.embed_dataset(data, flavor or "precision"), np.float32)
        taxonomy = data.taxonomy
        figures.update(n=len(x), catalog=args.catalog)
    else:
        x, taxonomy = synthetic_catalog(args.n)
    figures["generate_s"] = round(time.perf_counter() - started, 1)
    print(f"{len(x):,} products ({args.catalog or 'synthetic'}) in {figures['generate_s']} s", flush=True)

    stages = set(args.stages.split(","))
    if "recall" in stages:
        figures["neighbours"] = neighbour_recall(x, args.device, probes=args.probes,
                                                 queries=3000 if args.catalog else 2000)
        print(f"neighbours: {figures['neighbours']}", flush=True)
    truth = taxonomy
    if "audit" in stages:
        from audit.core import inject_noise

        taxonomy, injected = inject_noise(truth, "uniform", rate=0.03, seed=0)
    if not stages & {"train", "encode", "audit"}:
        print(json.dumps(figures, indent=1))
        return

    config = RQVAEConfig.from_dict({"epochs": args.epochs, "max_train_products": args.max_train})
    recipe = config.to_dict()
    epoch_ends: list[float] = []
    result = train_rqvae(x, taxonomy, config, device=args.device,
                         on_epoch=lambda *_: epoch_ends.append(time.perf_counter()))
    figures["train_products"] = result.train_products
    figures["train_s"] = round(result.seconds, 1)
    steps_per_epoch = int(np.ceil(figures["train_products"] / recipe["batch_size"]))
    figures["steps"] = recipe["epochs"] * steps_per_epoch
    if len(epoch_ends) > 2:  # the first epoch holds the set-up (and on CUDA the graph capture)
        figures["step_ms_median"] = round(float(np.median(np.diff(epoch_ends))) / steps_per_epoch * 1000, 2)
    print(f"train on {figures['train_products']:,}: {figures['train_s']} s ({figures['steps']} steps, "
          f"{figures.get('step_ms_median')} ms a step after the first epoch)", flush=True)

    started = time.perf_counter()
    encoded = encode(result.model, x, device=args.device)
    figures["encode_s"] = round(time.perf_counter() - started, 1)
    figures["codes_sha256"] = hashlib.sha256(np.ascontiguousarray(encoded.codes, np.int64).tobytes()).hexdigest()[:16]
    print(f"encode {len(x):,}: {figures['encode_s']} s", flush=True)

    started = time.perf_counter()
    metrics = intrinsic_metrics(x, encoded.codes, truth, codebook_sizes=recipe["codebook_sizes"],
                                reconstruction_error=encoded.reconstruction_error, device=args.device)
    metrics["collision_rate_nearest"] = collision_rates(x, encoded.nearest_codes)[0]  # as train_run stores it
    figures["metrics_s"] = round(time.perf_counter() - started, 1)
    if "audit" in stages:
        figures["audit"] = audit(x, taxonomy, injected, encoded.codes, truth, args.device)
        print(f"audit: {figures['audit']}", flush=True)
    figures["peak_rss_mib"] = round(common.peak_rss_mib())
    if args.device.startswith("cuda"):
        figures["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    figures["metrics"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()
                          if not isinstance(v, (list, dict))}
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
