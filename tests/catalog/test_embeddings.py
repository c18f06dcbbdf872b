import numpy as np
import pytest

from catalog.embeddings import embed_products, similar_products
from catalog.encoder import EmbeddingModelError, load_encoder
from catalog.models import Product, ProductEmbedding
from catalog.services import import_catalog

CSV = (
    "external_id,name,brand,description,category_path,size\n"
    "M1,Organic Whole Milk,Alpine Crest,Fresh and delicious!,Dairy > Milk,1 l\n"
    "M2,Whole Milk,Meadow Gold,,Dairy > Milk,2 l\n"
    "M3,Oat Drink Barista,Oatly,,Dairy > Plant Milk,1 l\n"
    "C1,Dark Roast Ground Coffee,Peak,,Beverages > Coffee,250 g\n"
    "C2,Espresso Coffee Beans,Peak,,Beverages > Coffee,1 kg\n"
    "S1,Lemon Dish Soap,Brite,,Household > Cleaning,500 ml\n"
)


@pytest.fixture
def catalog(tmp_path, db):
    path = tmp_path / "c.csv"
    path.write_text(CSV)
    import_catalog(path=path)


def test_embedding_is_incremental_only_changed_texts_are_encoded(catalog):
    first = embed_products(flavor="precision")
    assert (first.encoded, first.unchanged) == (6, 0)
    assert ProductEmbedding.objects.filter(flavor="precision").count() == 6

    product = Product.objects.get(external_id="M2")
    before = ProductEmbedding.objects.get(product=product, flavor="precision").text_hash
    product.name = "Whole Milk Vitamin D"
    product.save()
    second = embed_products(flavor="precision")

    assert (second.encoded, second.unchanged) == (1, 5)
    assert ProductEmbedding.objects.get(product=product, flavor="precision").text_hash != before


def test_discovery_flavor_stores_the_extracted_attribute_record(catalog):
    embed_products(flavor="discovery")
    milk = Product.objects.get(external_id="M1")
    assert "organic" in milk.extracted["dietary"]
    assert ProductEmbedding.objects.filter(flavor="discovery").count() == 6


def test_similar_products_come_back_in_cosine_order(catalog):
    embed_products(flavor="precision")
    milk = Product.objects.get(external_id="M1")

    hits = similar_products(product=milk, flavor="precision", k=5)

    names = [p.external_id for p, _ in hits]
    sims = [s for _, s in hits]
    assert names[0] == "M2" and milk.external_id not in names
    assert sims == sorted(sims, reverse=True)
    mine = np.asarray(ProductEmbedding.objects.get(product=milk, flavor="precision").embedding)
    for product, similarity in hits:
        other = np.asarray(ProductEmbedding.objects.get(product=product, flavor="precision").embedding)
        assert similarity == pytest.approx(float(mine @ other / np.linalg.norm(mine) / np.linalg.norm(other)), abs=1e-4)


def test_a_model_that_cannot_be_loaded_is_a_clear_error_naming_the_setting(tmp_path):
    with pytest.raises(EmbeddingModelError, match="SEMID_EMBEDDING_MODEL"):
        load_encoder(str(tmp_path / "no-such-model"), "cpu")


def test_loading_the_model_draws_no_progress_bar():
    """A worker's log and a command's own progress bar get no "Loading weights" bar from each model load (one a
    process, encoder processes included)."""
    import subprocess
    import sys

    from django.conf import settings

    loaded = subprocess.run([sys.executable, "-c", "from catalog.encoder import load_encoder; load_encoder()"],
                            capture_output=True, text=True, cwd=settings.BASE_DIR, timeout=300, check=True)
    assert "Loading weights" not in loaded.stderr + loaded.stdout


def test_encoder_processes_that_cannot_load_the_model_give_its_error(tmp_path):
    from catalog.encoder import EncoderProcesses

    with EncoderProcesses(str(tmp_path / "no-such-model"), "cpu", 1) as pool:
        with pytest.raises(EmbeddingModelError, match="SEMID_EMBEDDING_MODEL"):
            pool.submit(["olive tapenade"]).result()


def test_a_large_load_rebuilds_the_index_after_writing(catalog, monkeypatch):
    import catalog.embeddings as embeddings
    from django.db import connection

    monkeypatch.setattr(embeddings, "REBUILD_INDEX_ABOVE", 2)
    result = embed_products(flavor="precision")

    assert result.index_rebuilt and result.encoded == 6
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'catalog_productembedding'")
        assert "embedding_hnsw_precision" in {row[0] for row in cursor.fetchall()}
    milk = Product.objects.get(external_id="M1")
    assert similar_products(product=milk, flavor="precision", k=1)[0][0].external_id == "M2"


def test_index_build_settings_hold_the_graph_between_postgres_default_and_the_cap():
    from catalog.embeddings import INDEX_BUILD_MEMORY_MAX, INDEX_BUILD_WORKERS_MAX, index_build_settings

    def memory_mb(rows):
        return int(index_build_settings(rows=rows, dim=384)["maintenance_work_mem"].removesuffix("MB"))

    assert memory_mb(1_000) == 64  # PostgreSQL's default: never less
    assert memory_mb(100_000) == 100_000 * (4 * 384 + 1024) * 5 // 4 // 2**20 == 305
    assert memory_mb(100_000_000) == INDEX_BUILD_MEMORY_MAX // 2**20
    sizes = [memory_mb(rows) for rows in (10_000, 50_000, 200_000, 1_000_000, 5_000_000)]
    assert sizes == sorted(sizes)
    assert 0 <= int(index_build_settings(rows=1, dim=384)["max_parallel_maintenance_workers"]) <= INDEX_BUILD_WORKERS_MAX


@pytest.mark.django_db(transaction=True)
def test_the_index_build_settings_last_only_for_the_build(tmp_path):
    from django.db import connection

    from catalog.embeddings import _create_index, _drop_index

    path = tmp_path / "c.csv"
    path.write_text(CSV)
    import_catalog(path=path)
    embed_products(flavor="precision")
    with connection.cursor() as cursor:
        cursor.execute("SHOW maintenance_work_mem")
        before = cursor.fetchone()[0]
    _drop_index("precision")
    _create_index("precision", {"maintenance_work_mem": "77MB", "max_parallel_maintenance_workers": "1"})
    with connection.cursor() as cursor:
        cursor.execute("SHOW maintenance_work_mem")
        assert cursor.fetchone()[0] == before != "77MB"
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'catalog_productembedding'")
        assert "embedding_hnsw_precision" in {row[0] for row in cursor.fetchall()}
    with pytest.raises(Exception, match="max_parallel_maintenance_workers"):  # the settings reach the server
        _create_index("precision", {"max_parallel_maintenance_workers": "-1"})


def test_product_vectors_read_back_exactly_what_was_written_in_product_order(catalog):
    from django.db import transaction

    from catalog.embeddings import _write_vectors, product_vectors

    from django.utils import timezone

    ids = list(Product.objects.order_by("-id").values_list("id", flat=True))  # written out of order
    vectors = np.random.default_rng(0).normal(size=(len(ids), 384)).astype(np.float32)
    vectors[0, :3] = [np.float32(1e-38), np.float32(-0.0), np.float32(3.4e38)]  # tiny, signed zero, huge
    hashes = [f"h{i % 3 * 'x'}é" for i in range(len(ids))]  # three lengths, a character of two bytes
    before = timezone.now()
    with transaction.atomic():
        _write_vectors(flavor="precision", model="mödel", product_ids=ids, hashes=hashes, vectors=vectors)

    rows = ProductEmbedding.objects.filter(flavor="precision").values_list("product_id", "model_name", "text_hash",
                                                                            "updated_at")
    assert {(pk, model, h) for pk, model, h, _ in rows} == set(zip(ids, ["mödel"] * len(ids), hashes))
    assert all(before <= at <= timezone.now() for *_, at in rows)

    got_ids, got = product_vectors(flavor="precision")
    order = np.argsort(ids)
    assert got_ids.tolist() == sorted(ids) and got.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), vectors[order].view(np.uint32))  # bit for bit
    some = sorted(ids)[1::2]
    sub_ids, sub = product_vectors(flavor="precision", product_ids=some)
    assert sub_ids.tolist() == some and np.array_equal(sub, vectors[order][1::2])
    none_ids, none = product_vectors(flavor="discovery")
    assert none_ids.shape == (0,) and none.shape == (0, 0)


def hnsw_index_exists() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'embedding_hnsw_precision'")
        return cursor.fetchone() is not None


@pytest.mark.django_db(transaction=True)
def test_an_index_left_by_the_embedding_is_built_on_a_thread_beside_the_block(tmp_path, monkeypatch):
    import threading

    import catalog.embeddings as embeddings

    path = tmp_path / "c.csv"
    path.write_text(CSV)
    import_catalog(path=path)
    monkeypatch.setattr(embeddings, "REBUILD_INDEX_ABOVE", 2)  # the plan drops the index
    embed_products(flavor="precision", build_index=False)
    assert not hnsw_index_exists()
    builders = []
    ensure = embeddings._ensure_index
    monkeypatch.setattr(embeddings, "_ensure_index",
                        lambda flavor: builders.append(threading.current_thread().name) or ensure(flavor))

    with embeddings.index_built_beside("precision"):
        block = threading.current_thread().name

    assert hnsw_index_exists()
    assert len(builders) == 1 and builders[0].startswith("index-build") and builders[0] != block
    assert [p.external_id for p, _ in similar_products(product=Product.objects.get(external_id="M1"),
                                                       flavor="precision", k=1)] == ["M2"]


@pytest.mark.django_db(transaction=True)
def test_the_block_s_error_is_raised_after_the_index_is_built(tmp_path, monkeypatch):
    import catalog.embeddings as embeddings

    path = tmp_path / "c.csv"
    path.write_text(CSV)
    import_catalog(path=path)
    monkeypatch.setattr(embeddings, "REBUILD_INDEX_ABOVE", 2)
    embed_products(flavor="precision", build_index=False)

    with pytest.raises(RuntimeError, match="training failed"):
        with embeddings.index_built_beside("precision"):
            raise RuntimeError("training failed")

    assert hnsw_index_exists()
