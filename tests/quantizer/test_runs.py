import pytest
from django.core.management import call_command

from catalog.demo import generate_demo_catalog, write_csv
from catalog.embeddings import embed_products
from catalog.services import import_catalog
from quantizer.models import QuantizerRun, SemanticId
from quantizer.services import NoActiveRun, activate_run, active_run, run_model


@pytest.fixture
def embedded_catalog(tmp_path, db):
    write_csv(generate_demo_catalog(n_products=80, seed=2), tmp_path / "c.csv")
    import_catalog(path=tmp_path / "c.csv")
    embed_products(flavor="precision")


def test_train_command_activates_warm_starts_and_reports_churn(embedded_catalog):
    with pytest.raises(NoActiveRun, match="python manage.py pipeline --flavor precision"):
        active_run("precision")

    call_command("train", "--flavor", "precision", verbosity=0)
    first = active_run("precision")
    call_command("train", "--flavor", "precision", verbosity=0)
    second = active_run("precision")

    assert second.pk != first.pk and second.warm_start_from_id == first.pk
    assert QuantizerRun.objects.filter(flavor="precision", is_active=True).count() == 1
    assert set(second.churn) >= {"prefix_1", "prefix_2", "prefix_4", "products"}
    assert all(0.0 <= second.churn[k] <= 1.0 for k in ("prefix_1", "prefix_2", "prefix_4"))
    assert SemanticId.objects.filter(run=second).count() == 80
    # The model is loaded once per process: another copy of the run gets the same module.
    assert run_model(second) is run_model(QuantizerRun.objects.get(pk=second.pk))
    assert run_model(first) is not run_model(second)


def test_a_run_trained_without_activation_leaves_the_active_one(embedded_catalog):
    call_command("train", "--flavor", "precision", verbosity=0)
    active = active_run("precision")
    call_command("train", "--flavor", "precision", "--kind", "rkmeans", "--no-activate", verbosity=0)

    baseline = QuantizerRun.objects.get(kind="rkmeans")
    assert active_run("precision").pk == active.pk
    assert baseline.status == "succeeded" and not baseline.weights and "spearman" in baseline.metrics
    activate_run(baseline)
    assert active_run("precision").pk == baseline.pk


def test_a_failed_run_cannot_be_activated_and_the_active_run_stays(embedded_catalog):
    call_command("train", "--flavor", "precision", verbosity=0)
    active = active_run("precision")
    failed = QuantizerRun.objects.create(flavor="precision", embedding_model="x", status="failed")
    with pytest.raises(ValueError, match="only a succeeded run can be activated"):
        activate_run(failed)
    assert active_run("precision").pk == active.pk


def test_a_new_architecture_trains_from_scratch_instead_of_warm_starting(embedded_catalog):
    call_command("train", "--flavor", "precision", verbosity=0)
    first = active_run("precision")
    run = QuantizerRun.objects.create(flavor="precision", embedding_model=first.embedding_model,
                                      config={"latent_dim": 16})
    from quantizer.services import train_run

    train_run(run=run)

    assert run.status == "succeeded" and run.is_active and run.warm_start_from_id is None
    assert run.config["latent_dim"] == 16


def test_train_max_train_trains_on_a_sample_and_encodes_every_product(embedded_catalog):
    call_command("train", "--flavor", "precision", "--max-train", "40", "--epochs", "3", verbosity=0)
    run = active_run("precision")
    assert run.config["max_train_products"] == 40 and run.metrics["train_products"] == 40
    assert run.n_products == 80 and SemanticId.objects.filter(run=run).count() == 80
    call_command("train", "--flavor", "precision", "--epochs", "3", verbosity=0)
    assert active_run("precision").metrics["train_products"] == 80  # the default cap is far above 80


def test_taxonomy_array_gives_each_product_its_chain_of_ancestors_whether_ids_are_listed_or_ranged(
        tmp_path, db, monkeypatch):
    import numpy as np

    import quantizer.services as services
    from catalog.models import Category, Product

    (tmp_path / "c.csv").write_text(
        "external_id,name,brand,description,category_path,size\n"
        "A,Whole Milk,Alp,,Dairy > Milk > Whole,1 l\n"
        "B,Oat Drink,Oatly,,Dairy > Plant Milk,1 l\n"
        "C,Coffee Beans,Peak,,Beverages,1 kg\n"
        "D,Skimmed Milk,Alp,,Dairy > Milk > Skimmed,1 l\n"
        "E,Mystery Box,,,,1\n")
    import_catalog(path=tmp_path / "c.csv", allow_new_categories=True, allow_uncategorized=True)
    pk = dict(Product.objects.values_list("external_id", "pk"))
    category = dict(Category.objects.values_list("path", "pk"))
    chain = {"A": [category["Dairy"], category["Dairy > Milk"], category["Dairy > Milk > Whole"]],
             "C": [category["Beverages"]], "E": [],
             "D": [category["Dairy"], category["Dairy > Milk"], category["Dairy > Milk > Skimmed"]]}
    asked = np.array([pk["D"], pk["A"], pk["E"], pk["C"]], dtype=np.int64)  # out of order, B left out
    expected = np.full((4, 3), -1, dtype=np.int64)
    for row, e in enumerate(["D", "A", "E", "C"]):
        expected[row, : len(chain[e])] = chain[e]

    listed = services.taxonomy_array(asked)
    monkeypatch.setattr(services, "IDS_IN_QUERY_MAX", 1)  # read by the ids' range (B's row read and unused)
    ranged = services.taxonomy_array(asked)

    assert np.array_equal(listed, expected) and np.array_equal(ranged, expected)
    assert services.taxonomy_array(np.array([], dtype=np.int64)).shape[0] == 0
