"""Where a million products' training, coding and audit spend their time (issue 18).

On the database `bench/e2e.py --until embed` leaves (`semid_bench_e2e`), in this order, each timed apart:
the stored vectors and their taxonomy read alone, then again while the flavor's HNSW index is built beside it
(as the pipeline does); the training (`train_rqvae`: its set-up to the first epoch and the epochs); coding every
product (`quantizer.core.encode`) and the audit (`run_audit` on those codes, alone: the pipeline writes the codes
beside it) under cProfile, their heaviest calls printed. Before any of it, in a fresh
process, what torch's first `use_deterministic_algorithms` costs (it imports torch._inductor). On the GPU
machine, carry [".carry/minilm", ".carry/app"]:

    bash bench/gpu/e2e.sh 1000000 --until embed && PYTHONPATH=/tmp/appsite:. SEMID_HOME=/tmp/e2e \\
        python3 bench/studies/fit_profile.py
"""

import cProfile
import pstats
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIRST_USE = """
import time; t = time.perf_counter(); import torch; a = time.perf_counter()
torch.use_deterministic_algorithms(True, warn_only=True); b = time.perf_counter()
if torch.cuda.is_available():
    torch.zeros(1, device="cuda"); torch.cuda.synchronize()
c = time.perf_counter()
print(f"import torch {a - t:.2f} s, first use_deterministic_algorithms {b - a:.2f} s, CUDA's start {c - b:.2f} s")
"""


def main() -> None:
    print(subprocess.run([sys.executable, "-c", FIRST_USE], capture_output=True, text=True, check=True).stdout.strip())
    import _django

    _django.use_database("semid_bench_e2e")
    from audit.runs import AuditInput, run_audit
    from catalog.embeddings import index_built_beside, product_vectors
    from quantizer.core import encode, train_rqvae
    from catalog.encoder import default_device
    from quantizer.services import create_run, default_config, taxonomy_array, training_data, training_input

    run = create_run(flavor="precision", seed=0)
    started = time.perf_counter()
    ids, embeddings = product_vectors(flavor="precision")
    read = time.perf_counter()
    taxonomy_array(ids)
    print(f"read {len(ids):,} vectors alone: {read - started:.1f} s, their taxonomy {time.perf_counter() - read:.1f} s",
          flush=True)
    with index_built_beside("precision"):
        started = time.perf_counter()
        ids, embeddings, taxonomy = training_data(run)
        print(f"again, the index building beside: {time.perf_counter() - started:.1f} s", flush=True)
        vectors = training_input(run, ids, embeddings)
        config = default_config(input_dim=vectors.shape[1], seed=run.seed, overrides=run.config)
        epochs = []
        started = time.perf_counter()
        result = train_rqvae(vectors, taxonomy, config, device=default_device(),
                             on_epoch=lambda *a: epochs.append(time.perf_counter() - started))
        print(f"train: first epoch at {epochs[0]:.1f} s, last at {epochs[-1]:.1f} s, "
              f"returned at {time.perf_counter() - started:.1f} s", flush=True)
    encoded = profiled(f"encode {len(vectors):,}", encode, result.model, vectors, device=default_device())
    started = time.perf_counter()
    profiled("audit", run_audit, run=run, given=AuditInput(ids, embeddings, taxonomy, encoded.codes),
             progress=lambda done, total=1.0, message="", **_: print(
                 f"  {time.perf_counter() - started:6.1f} s  {message}", flush=True))


def profiled(name, fn, *args, **kwargs):
    import torch

    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    out = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    profile.disable()
    print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    return out


if __name__ == "__main__":
    main()
