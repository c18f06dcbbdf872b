"""Peak memory and time of the audit's scoring and calibration on a synthetic catalog, by stage.

    .venv/bin/python bench/audit_memory.py [--n 200000] [--device cpu|cuda] [--max-iter N] [--json PATH]
    .venv/bin/python bench/audit_memory.py --step text_features [--n 200000] [--max-fit N]

`--step audit` (the default) scores and calibrates as `audit.runs.run_audit` does: `bench/scale.py`'s
synthetic catalog (384-d vectors, 960 leaves, names and brands), 3% of the labels moved (uniform), codes
from random hyperplanes (4 levels of 8 bits: no quantizer training, which is not what is measured). A
thread samples the resident memory every 20 ms and charges each sample to the innermost `audit.core`
function running then: the table shows, for each, the most memory seen while it ran; `stages_seconds`
charges the wall time between samples to the innermost three `audit.core` functions (a sampling profile). `--max-iter` caps
the classifiers' L-BFGS iterations (default: the shipped value): the arrays, hence the memory, are the
same, and a CPU run gets done in minutes (its times are then not the product's).

`--step text_features`: the classifiers' text features alone (the SVD fitted on at most `--max-fit`
texts; 0 = all).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # after the repo: bench/audit.py must not hide the audit app

from common import peak_rss_mib  # noqa: E402
from scale import synthetic_catalog, synthetic_words  # noqa: E402

from audit.core import ScoringConfig, calibrate, inject_noise, score_products  # noqa: E402
from audit.core.signals import TEXT_FIT_ROWS, text_features  # noqa: E402

PAGE_MIB = 4096 / 2**20


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_MIB


class StageSampler(threading.Thread):
    """Samples RSS; charges it to the innermost audit.core function on the main thread's stack."""

    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        self.interval, self.peaks, self.stop = interval, {}, threading.Event()
        self.seconds = {}  # the innermost audit.core functions (up to 3, innermost first) -> wall seconds seen
        self.main = threading.main_thread().ident

    def run(self) -> None:
        last = time.perf_counter()
        while not self.stop.wait(self.interval):
            now = time.perf_counter()
            rss, frame = rss_mib(), sys._current_frames().get(self.main)
            chain = []
            while frame is not None and len(chain) < 3:
                module = frame.f_globals.get("__name__", "")
                if module.startswith("audit.core"):
                    chain.append(f"{module.rsplit('.', 1)[-1]}.{frame.f_code.co_name}")
                frame = frame.f_back
            stage = chain[0] if chain else "(outside audit.core)"
            self.peaks[stage] = max(self.peaks.get(stage, 0.0), rss)
            path = " < ".join(chain) or stage
            self.seconds[path] = self.seconds.get(path, 0.0) + now - last  # charged to where the main thread is now
            last = now


def hyperplane_codes(x: np.ndarray, levels: int = 4, bits: int = 8, seed: int = 0) -> np.ndarray:
    """(N, levels) codes: the signs of `bits` random projections per level, packed into 0..2**bits-1."""
    rng = np.random.default_rng(seed)
    codes = np.empty((len(x), levels), np.int64)
    weights = 1 << np.arange(bits)
    for level in range(levels):
        planes = rng.standard_normal((x.shape[1], bits)).astype(np.float32)
        codes[:, level] = ((x @ planes) > 0).astype(np.int64) @ weights
    return codes


def audit(args) -> dict:
    started = time.perf_counter()
    x, truth = synthetic_catalog(args.n)
    noisy, injected = inject_noise(truth, "uniform", rate=0.03, seed=0)
    codes = hyperplane_codes(x)
    texts, brands = synthetic_words(truth)
    figures = {"n": args.n, "device": args.device, "max_iter": args.max_iter,
               "generate_s": round(time.perf_counter() - started, 1), "inputs_rss_mib": round(rss_mib())}
    config = ScoringConfig() if args.max_iter is None else ScoringConfig(classifier_max_iter=args.max_iter)
    sampler = StageSampler()
    sampler.start()
    started = time.perf_counter()
    scores = score_products(embeddings=x, taxonomy=noisy, codes=codes, seed=0, brands=brands, texts=texts,
                            device=args.device, config=config)
    figures["score_s"] = round(time.perf_counter() - started, 1)
    figures["score_peak_rss_mib"] = round(max(sampler.peaks.values()))
    started = time.perf_counter()
    calibrator = calibrate(embeddings=x, taxonomy=noisy, codes=codes, combiner=scores.combiner, seed=1,
                           brands=brands, texts=texts, device=args.device, config=config, reuse=scores)
    figures["calibrate_s"] = round(time.perf_counter() - started, 1)
    sampler.stop.set()
    sampler.join()
    figures["peak_rss_mib"] = round(peak_rss_mib())
    figures["stages_peak_rss_mib"] = {k: round(v) for k, v in sorted(sampler.peaks.items(), key=lambda kv: -kv[1])}
    figures["stages_seconds"] = {k: round(v, 1) for k, v in sorted(sampler.seconds.items(), key=lambda kv: -kv[1])
                                 if v >= 0.5}  # sampled wall time, by where the main thread was
    from sklearn.metrics import average_precision_score

    figures["AP"] = round(float(average_precision_score(injected, calibrator.predict(scores.raw_score))), 4)
    figures["top1"] = round(float((scores.suggested[injected] == truth[injected, -1]).mean()), 4)
    if args.device.startswith("cuda"):
        import torch

        figures["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--step", default="audit", choices=("audit", "text_features"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-iter", type=int, default=None, help="audit: the classifiers' L-BFGS iterations")
    parser.add_argument("--max-fit", type=int, default=TEXT_FIT_ROWS, help="text_features: rows the SVD is fitted on")
    parser.add_argument("--json", help="audit: also write the figures to this file")
    args = parser.parse_args()
    if args.step == "audit":
        figures = audit(args)
        print(json.dumps(figures, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
        return
    rng = np.random.default_rng(0)
    leaf = rng.integers(0, 960, args.n)
    texts, _ = synthetic_words(np.stack([leaf // 80, leaf // 10, leaf], 1))
    before = peak_rss_mib()
    started = time.perf_counter()
    text_features(texts, max_fit=args.max_fit)
    print(f"text_features: N={args.n:,}: {time.perf_counter() - started:.1f} s, "
          f"peak RSS +{peak_rss_mib() - before:,.0f} MiB")


if __name__ == "__main__":
    main()
