"""Catalog pages: the category search and uploads."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.decorators import admin_required, reviewer_required
from catalog.forms import ImportForm, leaf_categories
from catalog.services import start_upload_import
from jobs.models import Job


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
                                  allow_new_categories=form.cleaned_data["allow_new_categories"],
                                  allow_uncategorized=form.cleaned_data["allow_uncategorized"])
        messages.info(request, f"Importing {upload.name}…")
        return redirect("job", pk=job.pk)
    jobs = Job.objects.filter(kind="import").select_related("created_by")[:10]
    return render(request, "catalog/import.html", {"form": form, "jobs": jobs})
