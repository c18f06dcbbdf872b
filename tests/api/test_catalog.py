"""Products, categories, semantic IDs, runs and the schema through the API."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.models import ProductEmbedding
from jobs.models import Job
from quantizer.models import QuantizerRun, SemanticId
from tests.api.conftest import client_for


@pytest.fixture
def client(reviewer_user):
    return client_for(reviewer_user)


def results(response):
    assert response.status_code == 200, response.content[:500]
    return response.json()["results"]


def test_product_list_filters(catalog, client):
    dairy = catalog.categories["Dairy"]

    assert [p["external_id"] for p in results(client.get("/api/products/"))] == ["P1", "P2", "P3"]
    assert [p["external_id"] for p in results(client.get(f"/api/products/?category={dairy.pk}"))] == ["P2", "P3"]
    assert [p["external_id"] for p in results(client.get("/api/products/?brand=zanetti"))] == ["P1", "P3"]
    assert [p["external_id"] for p in results(client.get("/api/products/?search=olives"))] == ["P2"]
    assert results(client.get("/api/products/?category=999999")) == []  # an id that matches nothing
    assert client.get("/api/products/?category=1.5").status_code == 400  # not an id


def test_product_detail_has_path_attributes_and_active_semantic_ids(catalog, client):
    product = catalog.products["parmesan"]
    QuantizerRun.objects.create(flavor="precision", embedding_model="m", status="succeeded")  # inactive: not shown

    body = client.get(f"/api/products/{product.pk}/").json()

    assert body["category"]["path"] == "Pantry > Olives" and body["category"]["depth"] == 2
    assert body["attributes"] == {"price": "7.99"} and "extracted" in body
    assert body["semantic_ids"] == [{
        "run": catalog.run.pk, "flavor": "precision", "code": "6_19_32_63", "token": 0, "full_id": "6_19_32_63",
        "codes": [6, 19, 32, 63], "reconstruction_error": 0.1, "gaps": [0.5, 0.4, 0.3, 0.2],
    }]


def test_similar_products_by_embedding(catalog, client):
    rng = np.random.default_rng(0)
    base = rng.normal(size=384)
    for key, noise in [("parmesan", 0.0), ("brie", 0.1), ("kalamata", 5.0)]:
        ProductEmbedding.objects.create(product=catalog.products[key], flavor="precision", model_name="m",
                                        text_hash=key, embedding=base + noise * rng.normal(size=384))
    product = catalog.products["parmesan"]

    response = client.get(f"/api/products/{product.pk}/similar/?flavor=precision&k=2")

    assert response.status_code == 200
    assert [row["product"]["external_id"] for row in response.json()] == ["P3", "P2"]
    assert response.json()[0]["similarity"] > 0.9
    assert client.get(f"/api/products/{product.pk}/similar/?flavor=discovery").json() == []
    bad = client.get(f"/api/products/{product.pk}/similar/?flavor=vibes")
    assert bad.status_code == 400 and "flavor" in bad.json()
    assert client.get(f"/api/products/{product.pk}/similar/?k=0").status_code == 400


def test_categories_search_and_detail(catalog, client):
    cheese = catalog.categories["Dairy > Cheese"]

    assert [c["path"] for c in results(client.get("/api/categories/?q=chee"))] == ["Dairy > Cheese"]
    body = client.get(f"/api/categories/{cheese.pk}/").json()
    assert body == {"id": cheese.pk, "name": "Cheese", "path": "Dairy > Cheese", "depth": 2,
                    "parent": catalog.categories["Dairy"].pk}


def test_semantic_ids_by_product_and_by_prefix(catalog, client):
    product = catalog.products["kalamata"]

    [row] = results(client.get(f"/api/semantic-ids/?product={product.pk}"))
    assert row["code"] == "6_19_40_1" and row["flavor"] == "precision" and row["external_id"] == "P2"

    by_prefix = results(client.get("/api/semantic-ids/?prefix=6_19&flavor=precision"))
    assert [r["code"] for r in by_prefix] == ["6_19_32_63", "6_19_40_1"]
    assert [r["code"] for r in results(client.get("/api/semantic-ids/?prefix=06_019_40_"))] == ["6_19_40_1"]
    assert results(client.get("/api/semantic-ids/?prefix=6_1")) == []  # 6_19 does not start with 6_1_


def test_semantic_id_errors_are_clear(catalog, client):
    bad = client.get("/api/semantic-ids/?prefix=6-19")
    assert bad.status_code == 400 and "bad prefix" in bad.json()["prefix"][0]

    missing = client.get("/api/semantic-ids/?prefix=6_19&flavor=discovery")
    assert missing.status_code == 404
    assert missing.json()["detail"] == (
        'no active run for flavor "discovery": train one with python manage.py pipeline --flavor discovery')

    every = client.get("/api/semantic-ids/")  # neither a product nor a prefix: the active runs' IDs, by product
    assert every.status_code == 200 and every.json()["count"] == SemanticId.objects.filter(run__is_active=True).count()


def test_runs_never_show_weights(catalog, client):
    QuantizerRun.objects.filter(pk=catalog.run.pk).update(metrics={"purity": 0.9})
    catalog.run.store_weights(b"secret")

    [run] = results(client.get("/api/runs/"))
    detail = client.get(f"/api/runs/{catalog.run.pk}/").json()

    assert run["is_active"] is True and detail["metrics"] == {"purity": 0.9}
    assert "weights" not in run and "weights" not in detail and "secret" not in str(detail)


def test_admin_starts_a_training_run_and_job(catalog, admin_user):
    response = client_for(admin_user).post(
        "/api/runs/", {"flavor": "discovery", "seed": 3, "kind": "rqvae", "contrastive_weight": 0.0}, format="json")

    assert response.status_code == 202
    run = QuantizerRun.objects.get(pk=response.json()["run"]["id"])
    assert (run.flavor, run.seed, run.config, run.status) == ("discovery", 3, {"contrastive_weight": 0.0}, "queued")
    job = Job.objects.get(pk=response.json()["job"]["id"])
    assert job.kind == "train" and job.params == {"run_id": run.pk} and job.created_by == admin_user
    bad = client_for(admin_user).post("/api/runs/", {"flavor": "x", "contrastive_weight": -1}, format="json")
    assert bad.status_code == 400 and set(bad.json()) == {"flavor", "contrastive_weight"}


def test_admin_activates_a_succeeded_run_only(catalog, admin_user):
    client = client_for(admin_user)
    newer = QuantizerRun.objects.create(flavor="precision", embedding_model="m", status="succeeded")
    failed = QuantizerRun.objects.create(flavor="precision", embedding_model="m", status="failed")

    response = client.post(f"/api/runs/{newer.pk}/activate/")

    assert response.status_code == 200 and response.json()["is_active"] is True
    assert list(QuantizerRun.objects.filter(is_active=True).values_list("pk", flat=True)) == [newer.pk]
    refused = client.post(f"/api/runs/{failed.pk}/activate/")
    assert refused.status_code == 409 and "only a succeeded run" in refused.json()["detail"]


def test_schema_and_docs(reviewer_user):
    client = client_for(reviewer_user)
    schema = client.get("/api/schema/")

    assert schema.status_code == 200
    text = schema.content.decode()
    for path in ("/api/products/{id}/similar/", "/api/semantic-ids/assign/", "/api/flags/{id}/decide/",
                 "/api/imports/", "/api/token/"):
        assert path in text
    assert client.get("/api/docs/").status_code == 200


def test_api_docs_load_their_assets_from_this_server_not_a_cdn(reviewer_user):
    import re

    from django.conf import settings
    from django.contrib.staticfiles import finders

    html = client_for(reviewer_user).get("/api/docs/").content.decode()

    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert not [a for a in assets if "//" in a]  # nothing from another host: the page works offline
    for asset in assets:
        assert finders.find(asset.removeprefix(settings.STATIC_URL)), asset
