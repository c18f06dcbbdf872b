"""The flows that cross apps.

- An import: validate and import a catalog file, give its new and changed products codes from the active
  runs (cold start), queue each such run's audit (`import_job`, `assign_and_audit`).
- The pipeline: embed -> train -> assign -> evaluate -> audit, for one or both flavors (the job then, where orders
  are imported, queues the next-item model's training on the new codes): one plan for the
  `pipeline` command, its `--async` Celery job and the runs page (`pipeline_plan`). Each flavor is a chunk
  (`pipeline_flavor`): the job's chunks run on every worker (two workers take the two flavors at once), the
  command runs them one after the other (`run_pipeline`). The flavors share nothing but the flags, whose
  writes take turns (`audit.runs.FLAG_WRITE_LOCK`).
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model

from audit.runs import AuditInput, audit_texts, run_audit
from baskets.selectors import current_next_item_model, has_baskets
from catalog.embeddings import embed_products, index_built_beside
from catalog.models import Flavor, check_flavors
from catalog.rows import CatalogFileError
from catalog.services import import_catalog
from config.database import done_beside
from jobs.models import Job
from jobs.runner import Chunked, JobFailed, run_chunks_here, start_job
from quantizer.models import QuantizerRun
from quantizer.assignment import assign_products
from quantizer.inputs import check_extra_input
from quantizer.services import activate_run, create_run, evaluate_run, fit_run, store_codes


def pipeline_plan(*, flavors=None, seed: int = 0, user=None, overrides: dict | None = None,
                  extra_input: str = "", queue_next_item: bool = False) -> Chunked:
    """The pipeline's chunks, one a flavor; `extra_input`: what the runs read beside the text (quantizer.inputs;
    "copurchase": the imported orders). An unknown input is refused here, before any work. `queue_next_item`:
    where orders are imported, its end queues the next-item model's training (`pipeline_report`)."""
    flavors = check_flavors(flavors or Flavor.values)
    state = {"seed": seed, "overrides": overrides, "extra_input": check_extra_input(extra_input),
             "user": user.pk if user else None, "queue_next_item": queue_next_item}
    return Chunked(chunks=[{"flavor": f} for f in flavors], run_chunk="pipeline.services.pipeline_flavor",
                   finish="pipeline.services.pipeline_report", state=state)


def run_pipeline(*, flavors=None, seed: int = 0, user=None, progress=None, overrides: dict | None = None,
                 extra_input: str = "") -> dict:
    """The pipeline in this process, one flavor after the other (the `pipeline` command)."""
    plan = pipeline_plan(flavors=flavors, seed=seed, user=user, overrides=overrides, extra_input=extra_input)
    return run_chunks_here(plan, params={}, progress=progress)


def _plan_user(state: dict):
    """Who started the plan (its runs and the jobs it queues are theirs), or None."""
    return get_user_model().objects.filter(pk=state["user"]).first() if state["user"] else None


def pipeline_flavor(*, params: dict, state: dict, chunk: dict, progress=None) -> dict:
    """One flavor's chunk: embed -> train -> assign -> audit -> evaluate -> activate. Beside the training, the HNSW
    index of a first load is built and the audit's texts are read and counted (`audit_texts`: they do not depend
    on the codes); the run's codes and clusters are written beside its audit, which scores what the training held
    in memory (nothing read again); then the run is evaluated and becomes active."""
    flavor = chunk["flavor"]

    def stage(start, width, label):
        def report_progress(done, total=1.0, message=None):
            if progress:
                progress(start + width * (done / total if total else 0), 1.0, f"{flavor}: {message or label}")
        return report_progress

    user = _plan_user(state)
    embedded = embed_products(flavor=flavor, progress=stage(0.0, 0.4, "embedding"), build_index=False)
    with index_built_beside(flavor), done_beside(audit_texts, flavor=flavor, name="audit-texts") as texts:
        run = create_run(flavor=flavor, seed=state["seed"], overrides=state["overrides"],
                         extra_input=state["extra_input"], user=user)
        trained = fit_run(run, progress=stage(0.4, 0.3, "training"))
    with done_beside(store_codes, run, trained, name="codes"):  # the codes and clusters written while it is audited
        audit = run_audit(run=run, given=AuditInput.of(trained, texts.result()), progress=stage(0.7, 0.25, "auditing"))
    evaluate_run(run, trained, progress=stage(0.95, 0.05, "evaluating"))
    activate_run(run)
    return {"flavor": flavor, "embedded": embedded.encoded, "run": run.pk, "flagged": audit.stats.get("flagged", 0),
            "spearman": run.metrics.get("spearman")}


# Where orders are imported, the pipeline job's end queues the "customers may add next" model on the new codes of
# one flavor: discovery's when the pipeline ran it (the flavor the cluster tree is browsed by), else its flavor.
NEXT_ITEM_FLAVOR = Flavor.DISCOVERY


def pipeline_report(*, params: dict, state: dict, results: list[dict], progress=None) -> dict:
    """{flavor: its chunk's figures}, in the plan's order; where the plan says so and orders are imported, the
    `next_item` job it queued on the new codes (under "next_item_job")."""
    report = {r["flavor"]: {k: v for k, v in r.items() if k != "flavor"} for r in results}
    if report and state.get("queue_next_item") and has_baskets():
        flavor = NEXT_ITEM_FLAVOR if NEXT_ITEM_FLAVOR in report else next(iter(report))
        user = _plan_user(state)
        report["next_item_job"] = start_job(kind="next_item", params={"flavor": flavor}, user=user).pk
    return report


def pipeline_job(*, params: dict, user=None, progress=None) -> Chunked:
    try:
        return pipeline_plan(flavors=params.get("flavors"), seed=params.get("seed", 0), user=user,
                             overrides=params.get("overrides"), extra_input=params.get("extra_input", ""),
                             queue_next_item=True)
    except ValueError as exc:
        raise JobFailed(str(exc)) from exc


def missing_flavors() -> list[str]:
    active = set(QuantizerRun.objects.filter(is_active=True).values_list("flavor", flat=True))
    return [f for f in Flavor.values if f not in active]


def missing_next_item_flavor() -> str | None:
    """NEXT_ITEM_FLAVOR where its next-item model is missing: orders are imported and every flavor has an active
    run (else the pipeline that makes one queues the model itself), but no model of an active run exists and
    none is queued or training. None otherwise."""
    if missing_flavors() or not has_baskets() or current_next_item_model() is not None:
        return None
    if Job.objects.filter(kind="next_item", status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).exists():
        return None
    return NEXT_ITEM_FLAVOR


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
