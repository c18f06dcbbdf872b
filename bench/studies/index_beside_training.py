"""How many parallel workers the HNSW build should get while it runs beside a run's training (issue 18).

The pipeline builds a first load's index on a thread while the run trains (`index_built_beside`), with
`index_build_settings`' one worker a core. On the GPU machine the training's host work (reading the vectors,
the set-up before the first epoch) and the audit's texts, counted beside it too, share those cores. This
times bench/e2e.py's "train + assign" stage as the pipeline runs it, for each worker count in turn (the index
dropped before each), on the database `bash bench/gpu/e2e.sh N --until embed` left:

    bash bench/gpu/e2e.sh 1000000 --until embed
    PYTHONPATH=/tmp/appsite:. SEMID_EMBEDDING_MODEL=$PWD/.carry/minilm SEMID_HOME=/tmp/e2e \\
        python3 bench/studies/index_beside_training.py --workers 15 8 8 15 --json $OUT/index-beside.json

Each trial: the stage's seconds, the first epoch's time, the run's `train_seconds`, the build's own seconds and
how long the stage waited for it after the training. Each trial's run is deleted after it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", required=True, help="the build's workers, trial by trial")
    parser.add_argument("--flavor", default="precision")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    _django.use_database("semid_bench_e2e")

    from audit.runs import audit_texts
    from catalog import embeddings
    from config.database import done_beside
    from quantizer.services import create_run, fit_run

    build = {}
    ensure = embeddings._ensure_index

    def timed_ensure(flavor):
        started = time.perf_counter()
        built = ensure(flavor)
        build["seconds"] = time.perf_counter() - started
        return built

    embeddings._ensure_index = timed_ensure  # index_built_beside builds through it
    trials = []
    for workers in args.workers:
        embeddings._drop_index(args.flavor)
        embeddings.INDEX_BUILD_WORKERS_MAX = workers
        first_epoch = {}

        def progress(done, total=1.0, message=None):
            if message and message.startswith("epoch 1/") and "at" not in first_epoch:
                first_epoch["at"] = time.perf_counter() - started

        started = time.perf_counter()
        with embeddings.index_built_beside(args.flavor):
            with done_beside(audit_texts, flavor=args.flavor, name="audit-texts"):
                run = create_run(flavor=args.flavor, seed=0)
                fit_run(run, progress=progress)
                fitted = time.perf_counter()
            counted = time.perf_counter()
        ended = time.perf_counter()
        run.refresh_from_db()
        trial = {"workers": workers, "stage_seconds": round(ended - started, 1),
                 "first_epoch_at": round(first_epoch.get("at", float("nan")), 1),
                 "train_seconds": round(run.train_seconds or 0.0, 1), "build_seconds": round(build["seconds"], 1),
                 "texts_wait_seconds": round(counted - fitted, 1), "index_wait_seconds": round(ended - counted, 1)}
        print(json.dumps(trial), flush=True)
        trials.append(trial)
        run.delete()
        if args.json:
            args.json.write_text(json.dumps({"trials": trials}, indent=1))


if __name__ == "__main__":
    main()
