"""Cluster tree and runs pages. Reads come from quantizer.selectors / quantizer.clusters."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.decorators import admin_required, reviewer_required
from audit.models import AuditReport
from catalog.forms import PipelineForm
from catalog.jobs import fail_abandoned_jobs, start_job
from catalog.models import Flavor, Job
from quantizer.clusters import (
    cluster_children,
    cluster_products_page,
    prefix_levels,
    product_matches,
    treemap_groups,
)
from quantizer.models import QuantizerRun
from quantizer.plots import METRIC_KEYS, level_bars, line_chart, loss_series
from quantizer.selectors import normalize_prefix
from quantizer.services import active_run, activate_run

SEARCH_LIMIT = 50


@reviewer_required
def clusters(request):
    flavor = request.GET.get("flavor") if request.GET.get("flavor") in Flavor.values else Flavor.PRECISION
    run = active_run(flavor, required=False)
    context = {"flavor": flavor, "flavors": Flavor.choices, "run": run, "query": request.GET.get("q", "").strip()}
    if run is None:
        return render(request, "quantizer/clusters.html", context)
    try:
        prefix = normalize_prefix(request.GET["prefix"]) if request.GET.get("prefix") else ""
    except ValueError as exc:
        messages.error(request, str(exc))
        prefix = ""
    children = cluster_children(run=run, prefix=prefix)
    products = cluster_products_page(run=run, prefix=prefix, children=children,
                                     number=request.GET.get("page")) if prefix else None
    matches = list(product_matches(run=run, query=context["query"])[:SEARCH_LIMIT + 1]) if context["query"] else []
    context.update({
        "prefix": prefix, "levels": prefix_levels(prefix), "products": products,
        "groups": treemap_groups(children, by_department=not prefix),
        "depth": len(prefix.split("_")) if prefix else 0, "highlight": request.GET.get("product", ""),
        "matches": matches[:SEARCH_LIMIT], "more_matches": len(matches) > SEARCH_LIMIT,
    })
    return render(request, "quantizer/clusters.html", context)


def _runs_status_context():
    fail_abandoned_jobs()  # a job whose worker died reads as failed, not running for ever
    runs = list(QuantizerRun.objects.select_related("created_by")[:12])
    jobs = list(Job.objects.select_related("created_by")[:10])
    busy = any(r.status in (QuantizerRun.Status.QUEUED, QuantizerRun.Status.RUNNING) for r in runs) or any(
        j.status in (Job.Status.QUEUED, Job.Status.RUNNING) for j in jobs)
    return {"runs": runs, "jobs": jobs, "busy": busy}


@admin_required
def runs(request):
    context = _runs_status_context()
    if request.htmx:
        return render(request, "quantizer/_runs_status.html", context)
    succeeded = [r for r in context["runs"] if r.status == QuantizerRun.Status.SUCCEEDED]
    selected = None
    if request.GET.get("run"):
        selected = get_object_or_404(QuantizerRun, pk=request.GET["run"])
    elif succeeded:
        selected = succeeded[0]
    loss_key, losses = loss_series(selected.history if selected else [])
    compared = succeeded[:6]
    context.update({
        "form": PipelineForm(initial={"flavor": Flavor.PRECISION, "seed": 0}),
        "selected": selected, "loss_key": loss_key, "loss": line_chart(losses),
        "utilization": level_bars(selected.metrics if selected else {}),
        "compared": compared,
        "metric_rows": [{"key": k, "values": [r.metrics.get(k) for r in compared]} for k in METRIC_KEYS],
        "report": AuditReport.objects.select_related("run").only(
            "pk", "created_at", "taxonomy_issues", "stats", "run__id", "run__flavor").first(),
    })
    return render(request, "quantizer/runs.html", context)


@require_POST
@admin_required
def run_pipeline(request):
    form = PipelineForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pick a flavor and a seed ≥ 0.")
        return redirect("runs")
    job = start_job(kind="pipeline", params={"flavors": form.flavors(), "seed": form.cleaned_data["seed"]},
                    user=request.user)
    messages.success(request, f"Pipeline job #{job.pk} queued ({', '.join(form.flavors())}, seed {form.cleaned_data['seed']}).")
    return redirect("runs")


@require_POST
@admin_required
def activate(request, pk):
    run = get_object_or_404(QuantizerRun, pk=pk)
    try:
        activate_run(run)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run #{run.pk} is now the active {run.flavor} run.")
    return redirect("runs")
