"""The next-item model in the application: the command that records a model run, GET
/api/products/{id}/next/, and the product page's "Customers may add next" panel."""

import re

import pytest

from tests.baskets.conftest import HEADER, write

PATTERNS = [["chips", "salsa"], ["bread", "jam"], ["milk", "butter"]]
CODES = {"milk": [0, 1, 2], "bread": [1, 0, 3], "butter": [0, 1, 3], "jam": [1, 2, 0], "chips": [2, 0, 1],
         "salsa": [2, 1, 1]}


@pytest.fixture
def toy_model_data(catalog, tmp_path):
    """90 orders of three patterns (chips then salsa, ...) imported; an active precision run coding the six."""
    from baskets.services import import_baskets
    from quantizer.models import QuantizerRun, SemanticId

    rows = [f"{n},{p},{i},0" for n in range(90) for i, p in enumerate(PATTERNS[n % 3], start=1)]
    import_baskets(path=write(tmp_path, HEADER + "\n".join(rows) + "\n"))
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="test", is_active=True,
                                      status=QuantizerRun.Status.SUCCEEDED)
    for external_id, codes in CODES.items():
        SemanticId.objects.create(run=run, product=catalog[external_id], codes=codes,
                                  code="_".join(map(str, codes)))
    return catalog, run


def train_toy():
    from django.core.management import call_command

    call_command("train_next_item", "--flavor", "precision", "--config",
                 '{"d_model": 32, "heads": 2, "layers": 1, "dropout": 0.0, "batch_size": 16, "epochs": 12, '
                 '"lr": 0.005, "beam": 8}', verbosity=0)


@pytest.mark.django_db
def test_the_command_records_a_model_run(toy_model_data):
    from baskets.models import NextItemModel

    catalog, run = toy_model_data
    train_toy()

    record = NextItemModel.objects.get()
    assert record.status == NextItemModel.Status.SUCCEEDED and record.run == run
    assert record.config["epochs"] == 12 and record.config["levels"] == 3 and record.created_at
    assert len(record.history) == 12 and record.n_orders == 81 and record.n_products == 6
    assert record.metrics["held_out_orders"] == 9 and record.metrics["all_recall@10"] == 1.0  # six products
    assert len(bytes(record.weights)) > 1000


@pytest.mark.django_db
def test_the_command_fails_without_an_active_run(catalog):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="precision"):
        train_toy()


@pytest.mark.django_db
def test_the_api_returns_existing_products_with_their_semantic_ids(toy_model_data, reviewer_user):
    from tests.api.conftest import client_for

    catalog, run = toy_model_data
    url = f"/api/products/{catalog['chips'].pk}/next/"
    assert client_for(reviewer_user).get(url).json() == []  # no model yet
    train_toy()

    response = client_for(reviewer_user).get(url, {"k": 3})

    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 3 and [r["rank"] for r in rows] == [1, 2, 3]
    by_id = {p.pk: p for p in catalog.values()}
    for r in rows:
        product = by_id[r["product"]["id"]]  # an existing product
        assert r["product"]["external_id"] == product.external_id != "chips"
        assert r["semantic_id"] == "_".join(map(str, CODES[product.external_id]))
        assert r["flavor"] == "precision" and r["run"] == run.pk
    assert rows[0]["product"]["external_id"] == "salsa"  # what follows chips in every order
    assert client_for(reviewer_user).get(url, {"k": 0}).status_code == 400
    assert client_for(reviewer_user).get("/api/products/999999/next/").status_code == 404


@pytest.mark.django_db
def test_the_panel_shows_only_when_a_model_exists(client, reviewer_user, toy_model_data):
    catalog, run = toy_model_data
    client.force_login(reviewer_user)
    page = f"/products/{catalog['bread'].pk}/"
    assert "Customers may add next" not in client.get(page).content.decode()

    train_toy()
    html = client.get(page).content.decode()

    assert "Customers may add next" in html
    first = re.search(r'<tr data-testid="next-product">(.*?)</tr>', html, re.S).group(1)
    assert f'href="/products/{catalog["jam"].pk}/"' in first and "Strawberry Jam" in first
    assert 'data-testid="next-code">1_2_0</a>' in first
    run.is_active = False  # the model of a run no longer active is not shown
    run.save()
    assert "Customers may add next" not in client.get(page).content.decode()


def test_the_pipeline_job_queues_the_model_on_the_new_codes_where_orders_exist(worker, tmp_path, client, reviewer_user):
    """Through the real worker: the pipeline job's end queues a `next_item` job on the run it just activated,
    which trains and records the model; the product page then shows what customers may add next."""
    from baskets.models import NextItemModel
    from baskets.services import import_baskets
    from catalog.demo import generate_demo_catalog, generate_demo_orders, write_csv, write_orders_csv
    from catalog.models import Product
    from catalog.services import import_catalog
    from jobs.models import Job
    from jobs.runner import start_job
    from quantizer.models import QuantizerRun
    from tests.conftest import wait_for

    catalog = generate_demo_catalog(n_products=120, seed=1)
    import_catalog(path=write_csv(catalog, tmp_path / "catalog.csv"))
    import_baskets(path=write_orders_csv(generate_demo_orders(catalog, n_orders=400), tmp_path / "orders.csv"))

    pipeline = start_job(kind="pipeline", params={"flavors": ["precision"], "seed": 0, "overrides": {"epochs": 10}})
    job = wait_for(lambda: Job.objects.filter(kind="next_item", status__in=["succeeded", "failed"]).first(),
                   timeout=600)

    pipeline.refresh_from_db()
    run = QuantizerRun.objects.get(flavor="precision", is_active=True)
    assert pipeline.status == "succeeded" and pipeline.result["next_item_job"] == job.pk
    assert job.status == "succeeded", job.result
    model = NextItemModel.objects.get()
    assert job.params == {"flavor": "precision"} and job.result["model"] == model.pk and model.run == run
    assert model.status == NextItemModel.Status.SUCCEEDED and model.n_orders == 360  # 10% held out
    bought = Product.objects.get(external_id=generate_demo_orders(catalog, n_orders=1)[0][1])
    client.force_login(reviewer_user)
    page = client.get(f"/products/{bought.pk}/").content.decode()
    assert "Customers may add next" in page and f"next-item model #{model.pk}" in page


@pytest.mark.django_db
def test_the_runs_page_lists_the_models_with_their_figures_and_queues_one(toy_model_data, admin_user, client):
    from baskets.models import NextItemModel
    from jobs.models import Job

    catalog, run = toy_model_data
    train_toy()
    client.force_login(admin_user)

    html = client.get("/runs/").content.decode()
    card = html[html.index('data-testid="next-item-models"'):]
    assert re.search(rf"#\d+ <span class=\"small muted\">codes of precision run #{run.pk} [^<]*</span> "
                     r"<span class=\"pill active\">in use</span>", card)
    cells = re.findall(r'<td class="num">([^<]*)', card[:card.index("</tr>", card.index("data-model"))])
    assert cells[:3] == ["81", "1.000", "1.000"]  # training orders; six products, every held-out target in the ten

    train_toy()  # a newer model of the same run: it alone is in use
    html = client.get("/runs/").content.decode()
    assert html.count('<span class="pill active">in use</span>') == 1
    newest = NextItemModel.objects.order_by("-pk").first()
    assert re.search(rf'data-model="{newest.pk}"><td>#{newest.pk} <span[^>]*>[^<]*</span> <span class="pill active">in use',
                     html)

    response = client.post("/runs/next-item/", {"flavor": "precision"})
    assert response.status_code == 302
    job = Job.objects.get(kind="next_item")
    assert job.params == {"flavor": "precision"} and job.created_by == admin_user
    client.post("/runs/next-item/", {"flavor": "discovery"})  # no active discovery run: refused, said why
    assert Job.objects.filter(kind="next_item").count() == 1
    assert "No active discovery run" in client.get("/runs/").content.decode()


@pytest.mark.django_db
def test_without_orders_the_runs_page_offers_no_model_and_refuses_to_queue_one(catalog, admin_user, client):
    from jobs.models import Job

    client.force_login(admin_user)
    assert 'data-testid="next-item-models"' not in client.get("/runs/").content.decode()
    client.post("/runs/next-item/", {"flavor": "precision"})
    assert not Job.objects.filter(kind="next_item").exists()
    assert "No orders imported yet" in client.get("/runs/").content.decode()


@pytest.mark.django_db
def test_a_demo_whose_model_is_missing_gets_one_queued_on_the_discovery_codes(toy_model_data):
    from baskets.models import NextItemModel
    from jobs.models import Job
    from pipeline.services import missing_next_item_flavor
    from quantizer.models import QuantizerRun

    catalog, precision = toy_model_data
    assert missing_next_item_flavor() is None  # no discovery run yet: the pipeline that makes it queues the model
    discovery = QuantizerRun.objects.create(flavor="discovery", embedding_model="test", is_active=True,
                                            status=QuantizerRun.Status.SUCCEEDED)
    assert missing_next_item_flavor() == "discovery"
    job = Job.objects.create(kind="next_item", params={"flavor": "discovery"})
    assert missing_next_item_flavor() is None  # one is queued
    job.status = Job.Status.FAILED
    job.save()
    assert missing_next_item_flavor() == "discovery"
    NextItemModel.objects.create(run=discovery, status=NextItemModel.Status.SUCCEEDED, weights=b"w")
    assert missing_next_item_flavor() is None  # a model of an active run exists
