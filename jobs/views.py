"""A job's page (progress, polled by htmx while it runs) and its retry."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
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
    return render(request, template, {"job": job, "finished": job.finished})
