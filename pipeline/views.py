"""Pages that show several apps: a product (catalog, semantic IDs, flags, history) and the runs page
(runs, jobs, the latest audit's taxonomy issues, the pipeline form)."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from accounts.decorators import admin_required, reviewer_required
from audit.models import AuditReport, Flag
from audit.selectors import category_history
from baskets.selectors import has_baskets, next_item_models
from catalog.embeddings import similar_products
from catalog.models import Flavor, Product
from jobs.models import Job
from jobs.runner import fail_abandoned_jobs, start_job
from pipeline.forms import NextItemForm, PipelineForm
from pipeline.services import NEXT_ITEM_FLAVOR
from quantizer.clusters import prefix_levels
from quantizer.core import code_string
from quantizer.models import QuantizerRun, SemanticId
from quantizer.plots import METRICS, level_bars, line_chart, loss_series
from quantizer.selectors import related, substitute_depth, substitutes


@reviewer_required
def product_detail(request, pk):
    product = get_object_or_404(Product.objects.select_related("category"), pk=pk)
    semantic_ids = []
    for semantic_id in SemanticId.objects.filter(product=product, run__is_active=True).select_related("run").order_by("run__flavor"):
        semantic_ids.append({
            "sid": semantic_id, "levels": prefix_levels(semantic_id.code),
            "cluster": code_string(semantic_id.codes[: substitute_depth(semantic_id)]),
            "substitutes": substitutes(semantic_id=semantic_id, limit=10),
            "related": related(semantic_id=semantic_id, limit=10),
        })
    flavor = semantic_ids[0]["sid"].run.flavor if semantic_ids else Flavor.PRECISION
    return render(request, "catalog/product.html", {
        "product": product, "semantic_ids": semantic_ids,
        "flags": Flag.objects.filter(product=product).select_related("run", "label", "suggested").order_by("-created_at"),
        "history": category_history(product),
        "similar": similar_products(product=product, flavor=flavor, k=8), "similar_flavor": flavor,
    })


def _runs_status_context():
    fail_abandoned_jobs()  # a job whose worker died reads as failed, not running for ever
    runs = list(QuantizerRun.objects.select_related("created_by")[:12])
    jobs = list(Job.objects.select_related("created_by")[:10])
    busy = any(r.status in (QuantizerRun.Status.QUEUED, QuantizerRun.Status.RUNNING) for r in runs) or any(
        j.status in (Job.Status.QUEUED, Job.Status.RUNNING) for j in jobs)
    return {"runs": runs, "jobs": jobs, "busy": busy}


@admin_required
@vary_on_headers("HX-Request")  # one URL, two bodies: the page, or its status for the htmx poll
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
        "metric_rows": [{"key": k, "label": label, "help": meaning, "values": [r.metrics.get(k) for r in compared]}
                        for k, label, meaning in METRICS],
        "report": AuditReport.objects.select_related("run").only(
            "pk", "created_at", "taxonomy_issues", "stats", "run__id", "run__flavor").first(),
        "orders_imported": has_baskets(),
        "next_item_form": NextItemForm(initial={"flavor": NEXT_ITEM_FLAVOR}),
        "next_item_models": next_item_models(),
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
def train_next_item(request):
    form = NextItemForm(request.POST)
    if form.is_valid():
        flavor = form.cleaned_data["flavor"]
        job = start_job(kind="next_item", params={"flavor": flavor}, user=request.user)
        messages.success(request, f"Next-item model job #{job.pk} queued on the active {flavor} run's codes.")
    else:
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
    return redirect("runs")
