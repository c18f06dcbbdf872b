"""Catalog pages: a product, the category search, uploads and background job progress."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from accounts.decorators import admin_required, reviewer_required
from audit.models import Flag
from audit.selectors import category_history
from catalog.embeddings import similar_products
from catalog.forms import ImportForm, leaf_categories
from catalog.jobs import fail_abandoned_jobs, retry_job
from catalog.models import Flavor, Job, Product
from catalog.services import start_upload_import
from quantizer.clusters import prefix_levels
from quantizer.core import code_string
from quantizer.models import SemanticId
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


@reviewer_required
def category_search(request):
    """<option>s of leaf categories whose path contains the query, for the picker's datalist."""
    query = (request.GET.get("q") or request.GET.get("category") or "").strip()
    categories = leaf_categories()
    if query:
        categories = categories.filter(path__icontains=query)
    return render(request, "catalog/_category_options.html", {"categories": categories.order_by("path")[:50]})


@require_http_methods(["GET", "POST"])
@admin_required
def import_page(request):
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        job = start_upload_import(upload=upload, user=request.user, overwrite=form.cleaned_data["overwrite"],
                                  allow_new_categories=form.cleaned_data["allow_new_categories"])
        messages.info(request, f"Importing {upload.name}…")
        return redirect("job", pk=job.pk)
    jobs = Job.objects.filter(kind="import").select_related("created_by")[:10]
    return render(request, "catalog/import.html", {"form": form, "jobs": jobs})


@require_http_methods(["POST"])
@admin_required
def job_retry(request, pk):
    job = get_object_or_404(Job, pk=pk)
    try:
        again = retry_job(job=job, user=request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("job", pk=job.pk)
    messages.info(request, f"Job #{job.pk} queued again as job #{again.pk}.")
    return redirect("job", pk=again.pk)


@admin_required
def job_detail(request, pk):
    fail_abandoned_jobs()
    job = get_object_or_404(Job.objects.select_related("created_by"), pk=pk)
    template = "catalog/_job_status.html" if request.htmx else "catalog/job.html"
    return render(request, template, {"job": job, "finished": job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED)})
