"""The cluster tree's summaries (one row per prefix: size, label make-up, words) equal what the semantic IDs
say, computed here directly, after every kind of write: training, a decision that moves a product, its undo,
an import that moves products, a cold start, an admin's edit of a code, a category renamed; and for codes
written with their first levels summarized, once the deeper levels are rebuilt (what the pipeline does)."""

from __future__ import annotations

import csv
import re
import threading
from collections import Counter

import numpy as np
import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import Flag
from audit.review.claims import claim_flag
from audit.review.decisions import decide_flag, undo_last_decisions
from catalog.demo import generate_demo_catalog, write_csv
from catalog.embeddings import embed_products
from catalog.models import Category, Product
from catalog.services import import_catalog, move_product
from quantizer.clusters import SMALL_CLUSTER, cluster_children, rebuild_cluster_summaries, tokens
from quantizer.models import ClusterSummary, QuantizerRun, SemanticId
from quantizer.assignment import assign_products
from quantizer.services import LEVELS_WITH_CODES, active_run, create_run, fit_run, train_run, write_codes
from tests.conftest import make_user, wait_for


@pytest.fixture(autouse=True)
def no_random_second_reviews(settings):
    settings.SEMID_SECOND_REVIEW_SHARE = 0.0


def from_semantic_ids(run: QuantizerRun) -> dict:
    """{prefix: (level, parent, size, {path cut to the level: products})}, straight from the semantic IDs."""
    sizes: Counter = Counter()
    labels: dict[str, Counter] = {}
    for codes, path in SemanticId.objects.filter(run=run).values_list("codes", "product__category__path"):
        for level in range(1, len(codes) + 1):
            prefix = "_".join(map(str, codes[:level]))
            sizes[prefix] += 1
            label = " > ".join(path.split(" > ")[:level]) if path else "(uncategorized)"
            labels.setdefault(prefix, Counter())[label] += 1
    return {p: (p.count("_") + 1, p.rsplit("_", 1)[0] if "_" in p else "", n, dict(labels[p])) for p, n in sizes.items()}


def stored(run: QuantizerRun) -> dict:
    return {s.prefix: (s.level, s.parent, s.size, s.labels) for s in ClusterSummary.objects.filter(run=run)}


def assert_current(run: QuantizerRun) -> None:
    expected = from_semantic_ids(run)
    assert expected and stored(run) == expected


@pytest.fixture
def trained(tmp_path, db):
    write_csv(generate_demo_catalog(n_products=80, seed=2), tmp_path / "c.csv")
    import_catalog(path=tmp_path / "c.csv")
    embed_products(flavor="precision")
    # small codebooks, so that some clusters are larger than SMALL_CLUSTER (named with the codes), some not
    train_run(run=create_run(flavor="precision", overrides={"epochs": 3, "codebook_sizes": [4, 8, 8, 8]}))
    return active_run("precision")


def other_leaf(product: Product) -> Category:
    department = product.category.path.split(" > ")[0]
    leaves = Category.objects.filter(children__isnull=True).exclude(path__startswith=department + " > ")
    return leaves.order_by("path").first()


def test_summaries_equal_the_semantic_ids_after_training_a_decision_and_its_undo(trained, reviewer_user):
    run = trained
    assert_current(run)
    # clusters of more than SMALL_CLUSTER products are named with the codes; the smaller ones on the first view
    # of their parent
    summaries = ClusterSummary.objects.filter(run=run)
    assert summaries.filter(size__gt=SMALL_CLUSTER).exists() and summaries.filter(size__lte=SMALL_CLUSTER).exists()
    assert not summaries.filter(size__gt=SMALL_CLUSTER, words__isnull=True).exists()
    assert not summaries.filter(size__lte=SMALL_CLUSTER, words__isnull=False).exists()
    parent = summaries.filter(level=1).order_by("-size", "prefix").first().prefix
    children = summaries.filter(level=2, parent=parent)
    assert children.filter(words__isnull=True).exists()
    shown = {c["prefix"]: c["words"] for c in cluster_children(run=run, prefix=parent)}
    assert set(shown) == set(children.values_list("prefix", flat=True))
    assert dict(children.values_list("prefix", "words")) == shown  # kept for the next view
    assert any(shown.values())
    assert not summaries.filter(words__isnull=False, size__lte=SMALL_CLUSTER).exclude(parent=parent).exists()
    deepest = summaries.filter(level=4).order_by("prefix").first()  # a whole code: its names read exactly
    names = list(SemanticId.objects.filter(run=run, code=deepest.prefix).values_list("product__name", flat=True))
    assert set(cluster_children(run=run, prefix=deepest.parent)[0]["words"]) <= set().union(*map(tokens, names))

    product = Product.objects.select_related("category").order_by("id").first()
    target = other_leaf(product)
    flag = Flag.objects.create(product=product, run=run, label=product.category, suggested=target, confidence=0.9,
                               priority=0.9, evidence={}, product_updated_at=product.updated_at)
    before = stored(run)
    claim_flag(flag=flag, reviewer=reviewer_user)
    decide_flag(flag=flag, reviewer=reviewer_user, action="accept")

    product.refresh_from_db()
    assert product.category_id == target.pk
    assert_current(run)
    level_1 = str(SemanticId.objects.get(run=run, product=product).codes[0])
    department = target.path.split(" > ")[0]
    assert stored(run)[level_1][3].get(department, 0) == before[level_1][3].get(department, 0) + 1

    undo_last_decisions(reviewer=reviewer_user)
    assert_current(run)
    assert stored(run) == before


def test_imports_cold_starts_code_edits_and_category_renames_keep_the_summaries(trained, tmp_path):
    run = trained
    # an import that moves products (a file saying otherwise, with --overwrite) and adds new ones (cold start)
    products = list(Product.objects.select_related("category").order_by("id")[:6])
    leaf = Category.objects.filter(children__isnull=True).order_by("path").first()
    path = tmp_path / "moves.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "name", "brand", "description", "category_path"])
        for product in products[:3]:
            writer.writerow([product.external_id, product.name, product.brand, product.description,
                             other_leaf(product).path])
        for i in range(4):
            writer.writerow([f"NEW-{i}", f"Sparkling lemon water {i}", "Fizz", "", leaf.path])

    result = import_catalog(path=path, overwrite=True)
    assert result.updated == 3 and result.created == 4
    assert_current(run)  # moved products: labels follow; the new ones have no codes yet
    assign_products(product_ids=result.changed_ids)  # cold start, as after an import
    assert SemanticId.objects.filter(run=run, product__external_id__startswith="NEW-").count() == 4
    assert_current(run)
    assert not ClusterSummary.objects.filter(run=run, size__gt=SMALL_CLUSTER, words__isnull=True).exists()

    # an admin edits a code (the admin's form saves the row), a category is renamed, a product loses its category
    sid = SemanticId.objects.filter(run=run).order_by("id")[3]
    sid.codes = [99, *sid.codes[1:]]
    sid.code = "_".join(map(str, sid.codes))
    sid.save()
    assert_current(run)
    category = products[4].category
    Category.objects.filter(pk=category.pk).update(path=category.path + " (renamed)")
    assert_current(run)
    move_product(product=products[5], category=None)
    assert_current(run)
    SemanticId.objects.filter(pk=sid.pk).delete()
    assert_current(run)

    # the set-based rebuild writes the same rows
    kept = stored(run)
    rebuild_cluster_summaries(run=run)
    assert stored(run) == kept


def test_the_tree_reads_the_summaries_and_names_a_cluster_created_after_the_codes(db):
    pantry = Category.objects.create(name="Pantry", path="Pantry", depth=1)
    jam = Category.objects.create(name="Jam", path="Pantry > Jam", depth=2, parent=pantry)
    tea = Category.objects.create(name="Tea", path="Pantry > Tea", depth=2, parent=pantry)
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="m", status="succeeded", is_active=True)
    rows = []
    for i in range(12):
        product = Product.objects.create(external_id=f"P{i}", name=f"{'Strawberry jam' if i < 8 else 'Green tea'} {i}",
                                         category=jam if i < 7 else tea)
        codes = [1, 0 if i < 8 else 1]
        rows.append(SemanticId(product=product, run=run, codes=codes, code="_".join(map(str, codes)), token=i))
    SemanticId.objects.bulk_create(rows)  # as a fixture or a bulk copy writes them: no words yet

    [root] = cluster_children(run=run)
    assert (root["prefix"], root["n"], root["purity"]) == ("1", 12, 1.0)
    assert root["categories"] == [{"path": "Pantry", "name": "Pantry", "n": 12}]
    children = cluster_children(run=run, prefix="1")
    assert [(c["prefix"], c["n"]) for c in children] == [("1_0", 8), ("1_1", 4)]
    assert children[0]["categories"] == [{"path": "Pantry > Jam", "name": "Jam", "n": 7},
                                         {"path": "Pantry > Tea", "name": "Tea", "n": 1}]
    assert children[0]["purity"] == 7 / 8 and "strawberry" in children[0]["words"]
    assert ClusterSummary.objects.get(run=run, prefix="1_0").words == children[0]["words"]  # kept

    client = Client()
    client.force_login(make_user("rita", "reviewer", "pass-12345"))
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/clusters/", {"flavor": "precision", "prefix": "1"}).content.decode()
    assert 'data-prefix="1_0"' in page and "strawberry" in page
    assert "Products under 1 <span class=\"small muted\">(12)</span>" in page  # the count is the children's sizes
    deepest = client.get("/clusters/", {"flavor": "precision", "prefix": "1_0"}).content.decode()
    listed = re.findall(r'<td class="code">([\d_]+)</td>', deepest)
    assert listed == ["1_0"] + [f"1_0_{token}" for token in range(1, 8)]  # a whole code: its products by token
    assert not any("quantizer_semanticid" in q["sql"] and "GROUP BY" in q["sql"].upper()
                   for q in queries.captured_queries)  # no aggregation of the semantic IDs



def summary_levels_setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('semid.summary_levels', true)")
        return cursor.fetchone()[0] or ""


@pytest.mark.parametrize("kept", [LEVELS_WITH_CODES, 2])
def test_codes_written_with_their_first_levels_summarized_then_the_rest_rebuilt(trained, kept):
    coded = SemanticId.objects.filter(run=trained).order_by("product_id")
    ids = np.array(coded.values_list("product_id", flat=True))
    codes = np.array(list(coded.values_list("codes", flat=True)))
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="m")
    write_codes(run=run, product_ids=ids, codes=codes, errors=np.zeros(len(ids), np.float32),
                gaps=np.zeros(codes.shape, np.float32), summary_levels=kept)
    assert summary_levels_setting() == ""  # the bound ends with the write

    def shallow(summaries):
        return {p: row for p, row in summaries.items() if row[0] <= kept}

    assert set(ClusterSummary.objects.filter(run=run).values_list("level", flat=True)) == set(range(1, kept + 1))
    assert stored(run) == shallow(from_semantic_ids(run))
    product = Product.objects.select_related("category").get(pk=ids[0])
    move_product(product=product, category=other_leaf(product))  # before the rebuild: the levels kept follow
    assert stored(run) == shallow(from_semantic_ids(run))

    rebuild_cluster_summaries(run=run, first_level=kept + 1)
    assert_current(run)
    assert not ClusterSummary.objects.filter(run=run, size__gt=SMALL_CLUSTER, words__isnull=True).exists()
    product = Product.objects.select_related("category").get(pk=ids[1])
    move_product(product=product, category=other_leaf(product))  # after it: every level follows again
    assert_current(run)
    assert_current(trained)


def _lock_waited_for(pid: int) -> str | None:
    """The relation (or 'transactionid') whose lock the backend `pid` is waiting for, if any."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(relation::regclass::text, locktype) FROM pg_locks "
                       "WHERE pid = %s AND NOT granted", [pid])
        row = cursor.fetchone()
    return row[0] if row else None


@pytest.mark.django_db(transaction=True)
def test_a_decision_waits_for_the_deeper_levels_rebuild_and_is_counted(tmp_path):
    reviewer = make_user("rita", "reviewer", "review-pass-123")
    write_csv(generate_demo_catalog(n_products=80, seed=2), tmp_path / "c.csv")
    import_catalog(path=tmp_path / "c.csv")
    embed_products(flavor="precision")
    run = create_run(flavor="precision", overrides={"epochs": 3, "codebook_sizes": [4, 8, 8, 8]})
    trained = fit_run(run)
    write_codes(run=run, product_ids=trained.ids, codes=trained.fitted.codes, errors=trained.fitted.errors,
                gaps=trained.fitted.gaps, summary_levels=LEVELS_WITH_CODES)  # as store_codes does, then the rest
    assert set(ClusterSummary.objects.filter(run=run).values_list("level", flat=True)) == set(
        range(1, LEVELS_WITH_CODES + 1))
    product = Product.objects.select_related("category").order_by("id").first()
    target = other_leaf(product)
    flag = Flag.objects.create(product=product, run=run, label=product.category, suggested=target, confidence=0.9,
                               priority=0.9, evidence={}, product_updated_at=product.updated_at)
    claim_flag(flag=flag, reviewer=reviewer)

    errors, pids = [], {}
    held, release = threading.Event(), threading.Event()

    def in_thread(name, work):
        def body():
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    pids[name] = cursor.fetchone()[0]
                work()
            except Exception as exc:  # reported by the test below
                errors.append((name, exc))
            finally:
                connection.close()
        thread = threading.Thread(target=body, name=name)
        thread.start()
        return thread

    def hold_summaries():  # keeps the rebuild at its first statement, whatever the machine's speed
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE quantizer_clustersummary IN ACCESS EXCLUSIVE MODE")
            held.set()
            release.wait(30)

    blocker = in_thread("blocker", hold_summaries)
    assert held.wait(30)
    rebuild = in_thread("rebuild", lambda: rebuild_cluster_summaries(run=run, first_level=LEVELS_WITH_CODES + 1))
    wait_for(lambda: "rebuild" in pids and _lock_waited_for(pids["rebuild"]) == "quantizer_clustersummary",
             timeout=30, interval=0.05)
    decision = in_thread("decision", lambda: decide_flag(flag=flag, reviewer=reviewer, action="accept"))
    # the decision waits for the rebuild's hold on the products, not inside its summaries' trigger
    assert wait_for(lambda: "decision" in pids and _lock_waited_for(pids["decision"]),
                    timeout=30, interval=0.05) == "catalog_product"
    release.set()
    for thread in (blocker, rebuild, decision):
        thread.join(60)
    assert not errors

    product.refresh_from_db()
    assert product.category_id == target.pk
    assert_current(run)  # the move counted at every level
