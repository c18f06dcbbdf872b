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
