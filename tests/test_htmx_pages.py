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
