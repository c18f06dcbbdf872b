"""Pages that answer the htmx poll with a fragment and a browser with the whole page, at one URL."""

import pytest
from django.test import Client

from jobs.models import Job


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/runs/", "/jobs/{job}/"])
def test_a_polled_page_tells_caches_that_it_varies_on_the_htmx_header(admin_user, url):
    job = Job.objects.create(kind="import", params={"filename": "c.csv"})
    client = Client()
    client.force_login(admin_user)

    page = client.get(url.format(job=job.pk))
    fragment = client.get(url.format(job=job.pk), HTTP_HX_REQUEST="true")

    assert page.status_code == fragment.status_code == 200
    assert b"<html" in page.content and b"<html" not in fragment.content
    assert "HX-Request" in page["Vary"] and "HX-Request" in fragment["Vary"]


@pytest.mark.django_db
def test_a_finished_jobs_page_reads_its_figures_in_words_and_links_the_job_it_queued(admin_user):
    queued = Job.objects.create(kind="next_item", params={"flavor": "discovery"})
    job = Job.objects.create(kind="pipeline", params={}, status=Job.Status.SUCCEEDED, progress=1.0, result={
        "precision": {"run": 1, "flagged": 86, "spearman": 0.66}, "next_item_job": queued.pk})
    client = Client()
    client.force_login(admin_user)

    page = client.get(f"/jobs/{job.pk}/").content.decode()

    assert "run 1 · flagged 86 · spearman 0.66" in page and "{'run'" not in page
    assert f'<dt>next item job</dt><dd><a href="/jobs/{queued.pk}/">job #{queued.pk}</a></dd>' in page
