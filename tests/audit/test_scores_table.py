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
