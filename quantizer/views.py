"""The cluster tree and a run's activation. Reads come from quantizer.selectors / quantizer.clusters."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.decorators import admin_required, reviewer_required
from catalog.models import Flavor
from quantizer.clusters import (
    cluster_children,
    cluster_products_page,
    prefix_levels,
    product_matches,
    treemap_groups,
)
from quantizer.models import QuantizerRun
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
