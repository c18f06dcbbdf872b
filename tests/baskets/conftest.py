"""A six-product catalog across departments, and a writer for basket files."""

from __future__ import annotations

import pytest

CATALOG = (
    "external_id,name,brand,description,category_path\n"
    "milk,Whole Milk,,,dairy > milk\n"
    "bread,Sourdough Bread,,,breakfast > bread\n"
    "butter,Salted Butter,,,dairy > butter\n"
    "jam,Strawberry Jam,,,breakfast > spreads\n"
    "chips,Tortilla Chips,,,snacks > chips\n"
    "salsa,Salsa Verde,,,pantry > salsa\n"
)
HEADER = "order_id,external_id,add_to_cart_order,reordered\n"


def write(tmp_path, text: str, name: str = "baskets.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def catalog(db, tmp_path):
    """{external_id: Product} of the six products."""
    from catalog.models import Product
    from catalog.services import import_catalog

    import_catalog(path=write(tmp_path, CATALOG, "catalog.csv"))
    return {p.external_id: p for p in Product.objects.select_related("category")}
