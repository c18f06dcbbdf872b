"""The audit creates its new flags with one COPY (`config.database.copy_objects`): the rows must be those
bulk_create stored, JSON, NULLs, text that COPY must escape and the save-time timestamps included."""

from __future__ import annotations

import pytest
from django.db.models import F

from audit.models import Flag, Queue
from catalog.models import Product
from config.database import copy_objects
from quantizer.models import QuantizerRun


@pytest.mark.django_db
def test_copied_flags_are_the_rows_bulk_create_stores(tmp_path):
    from tests.ui.conftest import build_review_data

    build_review_data(tmp_path, n_products=20, n_flags=0)
    products = list(Product.objects.order_by("pk")[:6])
    evidence = {"neighbours": [{"name": "Tab\there, new\nline, back\\slash, \"quoted\", é ü 日本", "similarity": 0.5}],
                "signals": {"knn": 0.25}, "brand_led": False, "empty": None}

    def flags(run):
        return [Flag(product=p, run=run, queue=Queue.UNCATEGORIZED if i % 2 else Queue.MISLABEL,
                     label_id=None if i == 0 else p.category_id, suggested_id=p.category_id, confidence=i / 10,
                     priority=1 - i / 10, evidence=evidence, evidence_signature=f"sig-{i}",
                     product_updated_at=p.updated_at) for i, p in enumerate(products)]

    copied, created = (QuantizerRun.objects.create(flavor="precision", embedding_model="test") for _ in range(2))
    assert copy_objects(Flag, flags(copied)) == len(products)
    Flag.objects.bulk_create(flags(created))

    fields = [f.attname for f in Flag._meta.concrete_fields if f.attname not in ("id", "run_id", "created_at",
                                                                                "updated_at")]

    def rows(run):
        return list(Flag.objects.filter(run=run).order_by("product_id").values_list(*fields))

    assert rows(copied) == rows(created)
    stored = Flag.objects.filter(run=copied)
    assert stored.get(product=products[1]).evidence == evidence  # a JSON object, not a string of it
    assert not stored.filter(created_at__isnull=True).exists()
    assert stored.filter(updated_at__gte=F("created_at")).count() == len(products)
