"""The audit fanned out against the audit in one process, on the database `bench/e2e.py` left (its active run).

    python3 bench/studies/audit_fanout.py [--ways fanout one] [--json PATH]
    bash bench/gpu/e2e.sh 1000000 && bash bench/gpu/e2e.sh audit-fanout --ways fanout   # the GPU machine

Each way, in the order given, first forgets the run's audit (its flags, scores and reports), then audits it:
"one" is `run_audit(run=run)` (it reads the run's products, vectors and codes itself); "fanout" is the audit job's
three parts one after another in this process: `audit_plan` (reading, the texts' features, the L2 weight's choice,
the folds, the arrays written to SEMID_HOME/audit-fits), its chunks (`fit_audit_fold`, each fold classifier) and
`finish_audit`. Printed: each part's time and this process's peak resident memory, the folder's size, and whether
both ways flagged the same products. What workers would add (a chunk's reads on another machine) is not here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from e2e import Stage  # noqa: E402 (bench/e2e.py: a block's time and peak memory)

import _django  # noqa: E402


def forget(run) -> None:
    from audit.models import AuditReport, Flag, Score

    Flag.objects.filter(run=run).delete()
    Score.objects.filter(run=run).delete()
    AuditReport.objects.filter(run=run).delete()


def flagged(run) -> set[int]:
    from audit.models import Score

    return set(Score.objects.filter(run=run, flagged=True).values_list("product_id", flat=True))


def study_arguments() -> argparse.Namespace:
    """This study's and train_fanout.py's arguments; Django pointed at --database."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="semid_bench_e2e")
    parser.add_argument("--flavor", default="precision")
    parser.add_argument("--ways", nargs="+", choices=["fanout", "one"], default=["fanout", "one"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    _django.use_database(args.database)
    return args


def run_planned(make_plan, rows: list, figures: dict) -> None:
    """A fanned-out job's three parts one after another in this process, each a `Stage` in `rows`: the plan
    (`make_plan()`), its chunks (each one's seconds and the plan folder's size into `figures`), its finish."""
    from jobs.runner import import_string

    with Stage("fan-out: plan", rows):
        plan = make_plan()
    folder = Path(plan.state["folder"])
    figures["folder_mib"] = round(sum(f.stat().st_size for f in folder.iterdir()) / 2**20)
    run_chunk = import_string(plan.run_chunk)
    chunk_seconds, results = [], []
    with Stage(f"fan-out: {len(plan.chunks)} chunks", rows):
        for chunk in plan.chunks:
            started = time.perf_counter()
            results.append(run_chunk(params={}, state=plan.state, chunk=chunk))
            chunk_seconds.append(round(time.perf_counter() - started, 2))
    figures["chunk_seconds"] = chunk_seconds
    with Stage("fan-out: finish", rows):
        import_string(plan.finish)(params={}, state=plan.state, results=results)


def main() -> None:
    args = study_arguments()

    from audit.runs import audit_plan, run_audit
    from quantizer.services import active_run

    run = active_run(args.flavor)
    rows, figures = [], {"run": run.pk, "products": run.n_products, "ways": {}}
    for way in args.ways:
        forget(run)
        if way == "one":
            with Stage("one process: run_audit", rows):
                run_audit(run=run)
        else:
            run_planned(lambda: audit_plan(run), rows, figures)
        figures["ways"][way] = sorted(flagged(run))
    same = len({tuple(v) for v in figures["ways"].values()}) == 1
    counts = ", ".join(f"{way} {len(v):,}" for way, v in figures["ways"].items())
    print(f"flagged: {counts}; the same products: {same}; "
          f"plan's folder {figures.get('folder_mib')} MiB; chunks {figures.get('chunk_seconds')}")
    if args.json:
        figures.update(stages=rows, same_flags=same, ways={w: len(v) for w, v in figures["ways"].items()})
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
