"""Scores are derived rows without database constraints (audit.models.Score): deleting through Django still
removes a product's or a run's scores and clears a deleted category, as their `on_delete` says."""

from audit.models import Score
from catalog.models import Category, Product
from catalog.services import ensure_categories
from quantizer.models import QuantizerRun


def test_deleting_a_product_a_category_or_a_run_keeps_the_scores_consistent(db):
    categories, _ = ensure_categories([("Dairy", "Milk"), ("Pantry", "Tea")])
    milk, tea = categories["Dairy > Milk"], categories["Pantry > Tea"]
    runs = [QuantizerRun.objects.create(flavor="precision", embedding_model="m") for _ in range(2)]
    products = [Product.objects.create(external_id=f"P-{i}", name="x", category=milk) for i in range(3)]
    for run in runs:
        for product in products:
            Score.objects.create(run=run, product=product, label=milk, suggested=tea, confidence=0.5, raw_score=0.5)

    products[0].delete()
    assert not Score.objects.filter(product_id=products[0].pk).exists()
    assert Score.objects.count() == 4

    Category.objects.filter(pk=tea.pk).delete()
    assert Score.objects.filter(suggested__isnull=True).count() == 4
    assert Score.objects.filter(label=milk).count() == 4

    runs[0].delete()
    assert list(Score.objects.values_list("run_id", flat=True).distinct()) == [runs[1].pk]
    assert Score.objects.count() == 2


def test_an_audits_scores_are_stored_exactly_labelled_or_not(db):
    from types import SimpleNamespace

    import numpy as np

    from audit.runs import _write_scores

    categories, _ = ensure_categories([("Dairy", "Milk"), ("Pantry", "Tea")])
    milk, tea = categories["Dairy > Milk"], categories["Pantry > Tea"]
    products = [Product.objects.create(external_id=f"P-{i}", name="x", category=None if i == 1 else milk)
                for i in range(3)]
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="m")
    Score.objects.create(run=run, product=products[2], label=milk, suggested=tea, confidence=0.9)  # replaced
    ids = np.array([p.pk for p in products])
    scores = SimpleNamespace(suggested=np.array([tea.pk, milk.pk, tea.pk]),
                             raw_score=np.array([0.1 + 1e-12, -2.5, float("nan")]))

    _write_scores(run=run, ids=ids, products={p.pk: p for p in products}, scores=scores,
                  confidence=np.array([1.7, 0.3, 0.123456789012345]), flagged={products[2].pk})

    stored = {s.product_id: s for s in Score.objects.filter(run=run)}
    assert len(stored) == 3 and Score.objects.count() == 3
    first, unlabelled, last = (stored[p.pk] for p in products)
    assert (first.label_id, first.suggested_id, first.confidence, first.raw_score, first.flagged) == (
        milk.pk, tea.pk, 1.0, 0.1 + 1e-12, False)  # the confidence clipped, the raw score to the last bit
    assert (unlabelled.label_id, unlabelled.suggested_id, unlabelled.confidence, unlabelled.raw_score) == (
        None, milk.pk, 1.0, -2.5)  # no label: NULL, and confidence 1
    assert last.confidence == 0.123456789012345 and np.isnan(last.raw_score) and last.flagged
