"""Same data + seed -> the same codes? Trains the default RQ-VAE twice with one seed on a device, and
checks save -> load -> re-encode, on a real catalog.

    .venv/bin/python bench/reproducibility.py [--dataset bigbasket] [--device cuda] [--epochs 20]
        [--limit N] [--seed 0] [--nondeterministic]

Prints, per pair of runs, the share of products whose full codes are identical and the largest
difference between the two models' weights. `--nondeterministic` trains with
`torch.use_deterministic_algorithms` off, as training did before it turned the flag on (on CUDA the
codebooks' gradient is an index_add, whose atomic float sums can differ between runs).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="bigbasket")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nondeterministic", action="store_true")
    args = parser.parse_args()

    import torch

    from quantizer.core import RQVAEConfig, encode, load_model, save_model, train_rqvae
    from quantizer.core import training

    if args.nondeterministic:
        training.deterministic_algorithms = contextlib.nullcontext  # leaves the flag as it is
    ds = common.load_dataset(args.dataset, limit=args.limit)
    x = common.embed_dataset(ds, "precision", device=args.device)
    config = RQVAEConfig.from_dict({"input_dim": x.shape[1], "seed": args.seed, "epochs": args.epochs})
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        result = train_rqvae(x, ds.taxonomy, config, device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        runs.append((result.model, encode(result.model, x, device=args.device).codes, seconds))
    (a, codes_a, sec_a), (b, codes_b, sec_b) = runs
    weights = max(float((p.double() - q.double()).abs().max())
                  for p, q in zip(a.state_dict().values(), b.state_dict().values()) if p.is_floating_point())
    same = float((codes_a == codes_b).all(1).mean())
    loaded, _ = load_model(save_model(a), device=args.device)
    reloaded = float((encode(loaded, x, device=args.device).codes == codes_a).all(1).mean())
    mode = "off" if args.nondeterministic else "on"
    print(f"{args.dataset} n={len(x)} device={args.device} ({_device_name(args.device)}) epochs={args.epochs} "
          f"seed={args.seed} deterministic algorithms {mode}: train {sec_a:.1f} s / {sec_b:.1f} s; "
          f"identical codes run 1 vs run 2 {same:.4f}, max weight difference {weights:.2e}; "
          f"save -> load -> re-encode identical {reloaded:.4f}", flush=True)


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"


if __name__ == "__main__":
    main()
