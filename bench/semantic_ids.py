"""Intrinsic quality of semantic IDs: RQ-VAE (default lambda, RQVAEConfig) vs lambda=0 vs residual k-means.

    .venv/bin/python bench/semantic_ids.py [--datasets bigbasket instacart] [--flavors precision discovery]
        [--seeds 0 1 2] [--device cpu|cuda] [--limit N [--sample-seed S]] [--config '{"epochs": 30}'] [--out docs/semantic-ids.md]

Reads ../shared/data by path (bench/common.py), embeds with the configured model (cached), trains
each method with the same seed, and writes a mean ± std table over seeds (DESIGN.md section 8).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

METHODS = ("rqvae", "rqvae_l0", "rkmeans")
LABELS = {"rqvae": "RQ-VAE (default λ)", "rqvae_l0": "RQ-VAE λ=0", "rkmeans": "residual k-means"}
COLUMNS = [
    ("spearman", "Spearman", 3),
    ("high_sim_same_l1", "same L1 (cos≥0.9)", 3),
    ("high_sim_same_full", "same L4 (cos≥0.9)", 3),
    ("nmi_l1", "NMI L1", 3),
    ("purity_l1", "purity L1", 3),
    ("nmi_l2", "NMI L2", 3),
    ("min_utilization", "min util.", 3),
    ("perplexity_l1", "perplexity L1", 0),
    ("collision_rate", "collisions", 3),
    ("collision_rate_nearest", "collisions, last level not spread", 3),
    ("collision_rate_raw", "shared full code (incl. same text)", 3),
    ("reconstruction_cosine", "recon cos", 3),
    ("train_seconds", "train s", 1),
]


def run_one(method, x, taxonomy, seed, device, overrides):
    import torch

    from quantizer.core import RQVAEConfig, encode, intrinsic_metrics, residual_kmeans, train_rqvae
    from quantizer.core.metrics import collision_rates

    torch.manual_seed(seed)
    config = RQVAEConfig.from_dict({**RQVAEConfig().to_dict(), "input_dim": x.shape[1], "seed": seed, **overrides})
    if method == "rqvae_l0":
        config.loss.contrastive_weight = 0.0
    started = time.perf_counter()
    if method == "rkmeans":
        codes = residual_kmeans(x, config.model.codebook_sizes, seed=seed, device=device,
                                spread=config.assignment.spread_last_level,
                                near_duplicate_threshold=config.assignment.near_duplicate_threshold,
                                near_duplicate_max_group=config.assignment.near_duplicate_max_group)
        errors, epochs, nearest = None, 0, None
    else:
        result = train_rqvae(x, taxonomy, config, device=device)
        encoded = encode(result.model, x, device=device)
        codes, errors, epochs = encoded.codes, encoded.reconstruction_error, config.training.epochs
        nearest = encoded.nearest_codes
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    metrics = intrinsic_metrics(x, codes, taxonomy, seed=seed, codebook_sizes=config.model.codebook_sizes,
                                reconstruction_error=errors, device=device)
    if nearest is None:  # residual k-means: its codes again, nearest centroid at every level (not timed)
        nearest = residual_kmeans(x, config.model.codebook_sizes, seed=seed, device=device, spread=False,
                                  near_duplicate_threshold=config.assignment.near_duplicate_threshold,
                                  near_duplicate_max_group=config.assignment.near_duplicate_max_group)
    metrics["collision_rate_nearest"] = collision_rates(x, nearest)[0]
    # What the spread last level changed: the headline figures of the same model's nearest codes.
    plain = intrinsic_metrics(x, nearest, taxonomy, seed=seed, codebook_sizes=config.model.codebook_sizes,
                              device=device)
    metrics["nearest"] = {k: plain[k] for k in ("spearman", "high_sim_same_l1", "high_sim_same_full", "nmi_l1")}
    levels = config.model.levels
    metrics["min_utilization"] = min(metrics[f"utilization_l{k}"] for k in range(1, levels + 1))
    metrics["train_seconds"] = seconds
    metrics["epochs"] = epochs
    return metrics


def fmt(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(common.DATASETS))
    parser.add_argument("--flavors", nargs="+", default=["precision", "discovery"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--sample-seed", type=int, default=0,
                        help="which random sample --limit keeps (a dev split: --limit 13777 --sample-seed 100)")
    parser.add_argument("--config", default="{}", help="JSON overrides of RQVAEConfig")
    parser.add_argument("--out", default=None, help="markdown file to write (default: print only)")
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="train nothing: make the table from --json-out files of earlier runs "
                             "(e.g. one process per seed on a GPU box)")
    args = parser.parse_args()
    overrides = json.loads(args.config)

    results = []
    if args.merge:
        results = [r for path in args.merge for r in json.loads(Path(path).read_text())]

        def keep(key, wanted):
            return [v for v in wanted if any(r[key] == v for r in results)]

        args.datasets = keep("dataset", args.datasets)
        args.flavors = keep("flavor", args.flavors)
        args.methods = keep("method", args.methods)
        args.seeds = sorted({r["seed"] for r in results})
    for name in args.datasets if not args.merge else ():
        ds = common.load_dataset(name, limit=args.limit, sample_seed=args.sample_seed)
        for flavor in args.flavors:
            x = common.embed_dataset(ds, flavor, device=args.device)
            for method in args.methods:
                for seed in args.seeds:
                    metrics = run_one(method, x, ds.taxonomy, seed, args.device, overrides)
                    results.append({"dataset": name, "flavor": flavor, "method": method, "seed": seed, **metrics})
                    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in results[-1].items()
                                      if k in {"dataset", "flavor", "method", "seed", *[c for c, _, _ in COLUMNS]}}),
                          flush=True)

    header = "| dataset | flavor | method | " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 3)]
    for name in args.datasets:
        for flavor in args.flavors:
            for method in args.methods:
                group = [r for r in results if (r["dataset"], r["flavor"], r["method"]) == (name, flavor, method)]
                cells = [fmt([r.get(key) for r in group], digits) for key, _, digits in COLUMNS]
                if group:
                    lines.append(f"| {name} | {flavor} | {LABELS[method]} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    command = "python bench/semantic_ids.py " + " ".join(sys.argv[1:])
    import torch

    on_gpu = args.device.startswith("cuda") and torch.cuda.is_available()  # (a --merge may run elsewhere)
    device_name = torch.cuda.get_device_name(0) if on_gpu else platform.processor() or "cpu"
    if args.out:
        Path(args.out).write_text(
            f"# Semantic IDs: intrinsic quality\n\nCommand: `{command}`  \nDevice: {args.device} ({device_name}), "
            f"torch {torch.__version__}, seeds {args.seeds}, config overrides {overrides or 'none'}\n\n{table}\n"
        )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
