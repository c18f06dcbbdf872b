"""The train job fanned out against the training in one process, on the database `bench/e2e.py` left.

    python3 bench/studies/train_fanout.py [--ways fanout one] [--json PATH]
    bash bench/gpu/e2e.sh 200000 --until train && bash bench/gpu/e2e.sh train-fanout   # the GPU machine, one call
    (at a million the two do not fit one 600 s call: 257 s to train, then each way trains again)

Each way, in the order given, trains a new run of the active run's flavor, seed and recipe (or, where none is
active, the last run's: `bench/e2e.py --until train` activates none), not activated, so both start alike: "one"
is `train_run(run=run)` (it reads the embeddings and searches itself); "fanout" is the train job's three parts one after another in this process: `train_plan` (reading,
the arrays and each exact search's rows written to SEMID_HOME/train-searches), its chunks (`search_chunk`, a block
of query rows each) and `finish_training` (`train_run` with those neighbours). Printed: each part's time and this
process's peak resident memory, the folder's size, and whether both ways gave the same codes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from audit_fanout import run_planned, study_arguments  # noqa: E402 (beside this file)
from e2e import Stage  # noqa: E402 (bench/e2e.py: a block's time and peak memory)


def codes_digest(run) -> str:
    from quantizer.models import SemanticId

    codes = SemanticId.objects.filter(run=run).order_by("product_id").values_list("product_id", "code")
    return hashlib.sha256("\n".join(f"{pk} {code}" for pk, code in codes.iterator()).encode()).hexdigest()[:16]


def main() -> None:
    args = study_arguments()

    from quantizer.fanout import train_plan
    from quantizer.models import QuantizerRun
    from quantizer.services import active_run, create_run, train_run

    # the active run, or the last one `bench/e2e.py --until train` trained
    active = active_run(args.flavor, required=False) or QuantizerRun.objects.filter(flavor=args.flavor).latest("pk")
    rows, figures = [], {"products": active.n_products, "ways": {}}
    for way in args.ways:
        run = create_run(flavor=active.flavor, seed=active.seed, overrides=active.config)
        if way == "one":
            with Stage("one process: train_run", rows):
                train_run(run=run, activate=False)
        else:
            run_planned(lambda: train_plan(run, activate=False), rows, figures)
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
