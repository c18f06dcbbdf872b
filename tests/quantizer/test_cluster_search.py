"""The cluster tree's product search lists its matches (the first 50, exact external id first)."""

import re

from django.test import Client

from catalog.models import Product
from catalog.services import ensure_categories
from quantizer.models import QuantizerRun, SemanticId
from tests.conftest import make_user


def test_search_lists_the_first_fifty_matches_and_says_there_are_more(db):
    categories, _ = ensure_categories([("Pantry", "Jam")])
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="m", status="succeeded", is_active=True)
    for i in range(55):
        product = Product.objects.create(external_id=f"J{i:02d}", name=f"Strawberry Jam {i:02d}", brand="Bonne",
                                         category=categories["Pantry > Jam"])
        SemanticId.objects.create(product=product, run=run, codes=[1, i], code=f"1_{i}")
    client = Client()
    client.force_login(make_user("rita", "reviewer", "pass-12345"))

    many = client.get("/clusters/", {"flavor": "precision", "q": "jam"}).content.decode()
    exact = client.get("/clusters/", {"flavor": "precision", "q": "j54"}).content.decode()
    brand = client.get("/clusters/", {"flavor": "precision", "q": "bonne"}).content.decode()

    assert len(re.findall(r"<tr data-product=", many)) == 50 and "the first 50; type more to narrow" in many
    assert re.findall(r'<tr data-product="(\d+)"', exact) == [str(Product.objects.get(external_id="J54").pk)]
    assert len(re.findall(r"<tr data-product=", brand)) == 50
