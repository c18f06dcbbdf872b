"""The flows that cross apps.

- An import: validate and import a catalog file, give its new and changed products codes from the active
  runs (cold start), queue each such run's audit (`import_job`, `assign_and_audit`).
- The pipeline: embed -> train -> assign -> evaluate -> audit, for one or both flavors: one service for
  the `pipeline` command, its `--async` Celery job and the runs page (`run_pipeline`, `pipeline_job`).
"""

from __future__ import annotations

from pathlib import Path

from audit.runs import run_audit
from catalog.embeddings import embed_products
from catalog.models import Flavor
from catalog.rows import CatalogFileError
from catalog.services import import_catalog
from jobs.models import Job
from jobs.runner import JobFailed, start_job
from quantizer.models import QuantizerRun
from quantizer.assignment import assign_products
from quantizer.services import create_run, train_run


def run_pipeline(*, flavors=None, seed: int = 0, user=None, progress=None, overrides: dict | None = None,
                 extra_input: str = "") -> dict:
    """embed -> train -> assign -> evaluate -> audit for each flavor; `extra_input`: what the runs read beside the
    text (quantizer.inputs; "copurchase": the imported orders)."""
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
        run = create_run(flavor=flavor, seed=seed, overrides=overrides, extra_input=extra_input, user=user)
        train_run(run=run, progress=stage(0.4, 0.4, "training"))
        audit = run_audit(run=run, progress=stage(0.8, 0.2, "auditing"))
        report[flavor] = {"embedded": embedded.encoded, "run": run.pk, "flagged": audit.stats.get("flagged", 0),
                          "spearman": run.metrics.get("spearman")}
    return report


def pipeline_job(*, params: dict, user=None, progress=None) -> dict:
    return run_pipeline(flavors=params.get("flavors"), seed=params.get("seed", 0), user=user, progress=progress,
                        overrides=params.get("overrides"), extra_input=params.get("extra_input", ""))


def missing_flavors() -> list[str]:
    active = set(QuantizerRun.objects.filter(is_active=True).values_list("flavor", flat=True))
    return [f for f in Flavor.values if f not in active]


def import_job(*, params: dict, user=None, progress=None) -> dict:
    """Job service for uploads: validate, import, and report every bad row on failure."""
    try:
        result = import_catalog(path=params["path"], user=user, progress=progress,
                                overwrite=bool(params.get("overwrite")),
                                allow_new_categories=bool(params.get("allow_new_categories")),
                                allow_uncategorized=bool(params.get("allow_uncategorized")))
    except CatalogFileError as exc:
        raise JobFailed(
            f"{len(exc.errors)} bad row(s), nothing imported", {"errors": [str(e) for e in exc.errors]}
        ) from None
    finally:
        if params.get("uploaded"):  # an uploaded copy is read once: it goes when its import ends
            Path(params["path"]).unlink(missing_ok=True)
    assigned, audits = assign_and_audit(product_ids=result.changed_ids, user=user)
    return {**result.as_dict(), "assigned": assigned, "audit_jobs": audits, "filename": params.get("filename", "")}


def assign_and_audit(*, product_ids: list[int], user=None) -> tuple[int, list[int]]:
    """After an import: new and changed products get codes from the active runs right away (cold
    start, no retraining), and each such run's audit is queued so its flags are refreshed.
    Returns (codes assigned, ids of the queued audit jobs)."""
    assigned = assign_products(product_ids=product_ids)
    if not assigned:
        return 0, []
    runs = QuantizerRun.objects.filter(is_active=True, stored_weights__isnull=False).order_by("flavor")
    jobs = []
    for run in runs:  # one pending audit per run: imports in a row share it instead of queueing one each
        pending = Job.objects.filter(kind="audit", status=Job.Status.QUEUED, params__run_id=run.pk).first()
        jobs.append(pending or start_job(kind="audit", params={"run_id": run.pk}, user=user))
    return assigned, [job.pk for job in jobs]
