"""A job's page (progress, polled by htmx while it runs) and its retry."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from accounts.decorators import admin_required
from jobs.models import Job
from jobs.runner import fail_abandoned_jobs, retry_job


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
@vary_on_headers("HX-Request")  # one URL, two bodies: the page, or its status for the htmx poll
def job_detail(request, pk):
    fail_abandoned_jobs()
    job = get_object_or_404(Job.objects.select_related("created_by"), pk=pk)
    template = "jobs/_job_status.html" if request.htmx else "jobs/job.html"
    return render(request, template, {"job": job, "finished": job.finished, "result_rows": result_rows(job)})


# Result keys shown in their own section of the page, not as rows.
LISTED_APART = ("conflicts", "created_categories", "errors", "error")


def result_rows(job: Job) -> list[dict]:
    """A finished job's result as rows: the key in words, the value (a dict of figures as "key value" pairs),
    and a link where the value is another job ("next_item_job": 4 -> that job's page)."""
    rows = []
    for key, value in (job.result or {}).items():
        if key in LISTED_APART:
            continue
        if isinstance(value, dict):
            value = " · ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items())
        link = reverse("job", args=[value]) if key.endswith("_job") and isinstance(value, int) else ""
        rows.append({"label": key.replace("_", " "), "value": value, "link": link})
    return rows
