"""The train job fanned out against the training in one process, on the database `bench/e2e.py` left.

    python3 bench/studies/train_fanout.py [--ways fanout one] [--json PATH]
    bash bench/gpu/e2e.sh 200000 && bash bench/gpu/e2e.sh train-fanout   # the GPU machine

Each way, in the order given, trains a new run of the active run's flavor, seed and recipe (not activated, so the
active run stays the one both warm-start from): "one" is `train_run(run=run)` (it reads the embeddings and
searches itself); "fanout" is the train job's three parts one after another in this process: `train_plan` (reading,
the arrays and each exact search's rows written to SEMID_HOME/train-searches), its chunks (`search_chunk`, a block
of query rows each) and `finish_training` (`train_run` with those neighbours). Printed: each part's time and this
process's peak resident memory, the folder's size, and whether both ways gave the same codes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from e2e import Stage  # noqa: E402 (bench/e2e.py: a block's time and peak memory)

import _django  # noqa: E402


def codes_digest(run) -> str:
    from quantizer.models import SemanticId

    codes = SemanticId.objects.filter(run=run).order_by("product_id").values_list("product_id", "code")
    return hashlib.sha256("\n".join(f"{pk} {code}" for pk, code in codes.iterator()).encode()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="semid_bench_e2e")
    parser.add_argument("--flavor", default="precision")
    parser.add_argument("--ways", nargs="+", choices=["fanout", "one"], default=["fanout", "one"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    _django.use_database(args.database)

    from jobs.runner import import_string
    from quantizer.fanout import finish_training, train_plan
    from quantizer.services import active_run, create_run, train_run

    active = active_run(args.flavor)
    rows, figures = [], {"products": active.n_products, "ways": {}}
    for way in args.ways:
        run = create_run(flavor=active.flavor, seed=active.seed, overrides=active.config)
        if way == "one":
            with Stage("one process: train_run", rows):
                train_run(run=run, activate=False)
        else:
            with Stage("fan-out: plan", rows):
                plan = train_plan(run, activate=False)
            folder = Path(plan.state["folder"])
            figures["folder_mib"] = round(sum(f.stat().st_size for f in folder.iterdir()) / 2**20)
            search = import_string(plan.run_chunk)
            chunk_seconds, results = [], []
            with Stage(f"fan-out: {len(plan.chunks)} chunks", rows):
                for chunk in plan.chunks:
                    started = time.perf_counter()
                    results.append(search(params={}, state=plan.state, chunk=chunk))
                    chunk_seconds.append(round(time.perf_counter() - started, 2))
            figures["chunk_seconds"] = chunk_seconds
            with Stage("fan-out: finish", rows):
                finish_training(params={}, state=plan.state, results=results)
        run.refresh_from_db()
        figures["ways"][way] = {"run": run.pk, "codes": codes_digest(run), "spearman": run.metrics.get("spearman")}
    same = len({w["codes"] for w in figures["ways"].values()}) == 1
    print(f"codes: {figures['ways']}; the same codes: {same}; plan's folder {figures.get('folder_mib')} MiB; "
          f"chunks {figures.get('chunk_seconds')}")
    if args.json:
        figures.update(stages=rows, same_codes=same)
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
