"""embed -> train -> assign -> evaluate -> audit, for one or both flavors: one service for the
`pipeline` command, its `--async` Celery job and the runs page."""

from __future__ import annotations

from catalog.embeddings import embed_products
from catalog.models import Flavor
from quantizer.models import QuantizerRun
from quantizer.services import create_run, train_run
from audit.services import run_audit


def run_pipeline(*, flavors=None, seed: int = 0, user=None, progress=None, overrides: dict | None = None) -> dict:
    flavors = list(flavors or Flavor.values)
    report = {}
    for n, flavor in enumerate(flavors):
        def stage(start, width, label, n=n):
            def report_progress(done, total=1.0, message=None):
                if progress:
                    fraction = (n + start + width * (done / total if total else 0)) / len(flavors)
                    progress(fraction, 1.0, f"{flavor}: {message or label}")
            return report_progress

        embedded = embed_products(flavor=flavor, progress=stage(0.0, 0.4, "embedding"))
        run = create_run(flavor=flavor, seed=seed, overrides=overrides, user=user)
        train_run(run=run, progress=stage(0.4, 0.4, "training"))
        audit = run_audit(run=run, progress=stage(0.8, 0.2, "auditing"))
        report[flavor] = {"embedded": embedded.encoded, "run": run.pk, "flagged": audit.stats.get("flagged", 0),
                          "spearman": run.metrics.get("spearman")}
    return report


def pipeline_job(*, params: dict, user=None, progress=None) -> dict:
    return run_pipeline(flavors=params.get("flavors"), seed=params.get("seed", 0), user=user, progress=progress,
                        overrides=params.get("overrides"))


def missing_flavors() -> list[str]:
    active = set(QuantizerRun.objects.filter(is_active=True).values_list("flavor", flat=True))
    return [f for f in Flavor.values if f not in active]
