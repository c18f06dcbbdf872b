"""Side by side on one device, at N synthetic products (bench/scale.py's catalog, 3% uniform moves): the text
features' SVD by scikit-learn on the host against `randomized_svd_torch` on the device, and the fold
classifiers' L-BFGS fits with TF32 matmuls off (`signals.tf32_matmuls` made a no-op) and on (as shipped).
Prints times and how far the results differ (p(label) against the host SVD without TF32; AP and top-1 of the
moved labels). Figures: docs/results/gpu-fits-1m-h200-2026-12-03.json.

    python3 bench/studies/gpu_fits.py --n 1000000 --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.append(str(Path(__file__).resolve().parents[1]))

from scale import synthetic_catalog, synthetic_words  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from audit.core import ScoringConfig, inject_noise  # noqa: E402
from audit.core.noise import leaf_classes  # noqa: E402
from audit.core import signals  # noqa: E402
from audit.core.signals import FoldClassifiers, choose_weight_decay, text_features  # noqa: E402


def timed(fn, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, round(time.perf_counter() - started, 2)


def subspace_cosine(a: np.ndarray, b: np.ndarray, rows: int = 100_000) -> float:
    """Mean principal cosine between the column spaces of two feature sets on their first `rows` rows."""
    qa, qb = np.linalg.qr(a[:rows].astype(np.float64))[0], np.linalg.qr(b[:rows].astype(np.float64))[0]
    return float(np.linalg.svd(qa.T @ qb, compute_uv=False).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    x, truth = synthetic_catalog(args.n)
    noisy, injected = inject_noise(truth, "uniform", rate=0.03, seed=0)
    texts, _ = synthetic_words(truth)
    leaf_paths, labels = leaf_classes(noisy)
    n_leaves = int(labels.max()) + 1
    out = {"n": args.n, "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"}
    host, out["text_features_host_s"] = timed(lambda: text_features(texts, seed=0, device="cpu"), "cpu")
    dev, out["text_features_device_s"] = timed(lambda: text_features(texts, seed=0, device=args.device), args.device)
    out["text_subspace_cosine"] = round(subspace_cosine(host, dev), 4)
    config = ScoringConfig()
    folds = config.classifier_folds_for(int((labels >= 0).sum()))
    probs, shipped = {}, signals.tf32_matmuls
    for name, lexical in (("host_svd", host), ("device_svd", dev)):
        inputs = np.hstack([x, lexical])
        decay = choose_weight_decay(inputs, labels, n_leaves, n_folds=config.n_folds, seed=0, device=args.device)
        for tf32 in (False, True):
            signals.tf32_matmuls = shipped if tf32 else contextlib.nullcontext
            key = f"{name}_tf32_{'on' if tf32 else 'off'}"
            model, out[f"fit_{key}_s"] = timed(lambda: FoldClassifiers(
                inputs, labels, n_leaves, n_folds=folds, seed=0, device=args.device, weight_decay=decay), args.device)
            p, out[f"predict_{key}_s"] = timed(lambda: model.probs(np.arange(len(labels))), args.device)
            probs[key] = p[np.arange(len(labels)), labels]
            out[f"AP_{key}"] = round(float(average_precision_score(injected, 1 - probs[key])), 5)
            out[f"top1_{key}"] = round(float((leaf_paths[p[injected].argmax(1), -1] == truth[injected, -1]).mean()), 4)
        signals.tf32_matmuls = shipped
    base = probs["host_svd_tf32_off"]
    for key, p in probs.items():
        out[f"max_abs_diff_p_label_{key}"] = float(np.abs(p - base).max())
        out[f"mean_abs_diff_p_label_{key}"] = float(np.abs(p - base).mean())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
