"""A run's weights live in a table of their own: rows of runs, joined into every flag and semantic-ID
list, never carry them."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import Flag
from quantizer.models import QuantizerRun


def test_a_list_of_flags_reads_no_weights_and_the_run_still_has_them(catalog, reviewer_user):
    weights = b"\x00\x01" * 400_000  # 0.8 MB, a small model's worth
    catalog.run.store_weights(weights)
    from tests.api.conftest import client_for

    with CaptureQueriesContext(connection) as queries:
        response = client_for(reviewer_user).get("/api/flags/")
        [(pk, run) for pk, run in Flag.objects.select_related("run").values_list("pk", "run__flavor")]

    assert response.status_code == 200 and response.json()["count"] == len(catalog.flags)
    assert not any("runweights" in q["sql"] for q in queries.captured_queries)
    run = QuantizerRun.objects.get(pk=catalog.run.pk)
    assert run.has_weights and run.weights == weights
    run.store_weights(b"newer")
    assert QuantizerRun.objects.get(pk=run.pk).weights == b"newer" and run.weights == b"newer"
