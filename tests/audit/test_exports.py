"""The CSV exports a merchandiser opens in a spreadsheet: no cell runs as a formula."""

import csv
import io

import pytest
from django.core.management import call_command

from audit.models import Score
from catalog.models import Product
from catalog.services import ensure_categories
from quantizer.models import QuantizerRun, SemanticId

HOSTILE = ['=HYPERLINK("http://x","y")', "+SUM(1;2)", "@SUM(1)", "-2+3", "\tcmd", "\rcmd"]


@pytest.fixture
def hostile_catalog(db):
    categories, _ = ensure_categories([("+SUM(1;2)", "=1+1"), ("Dairy", "Milk")])
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="m", status="succeeded", is_active=True)
    for i, external_id in enumerate(HOSTILE + ["P-1"]):
        category = categories["+SUM(1;2) > =1+1" if i % 2 else "Dairy > Milk"]
        product = Product.objects.create(external_id=external_id, name="x", category=category)
        SemanticId.objects.create(product=product, run=run, codes=[1, i], code=f"1_{i}")
        Score.objects.create(run=run, product=product, label=category, suggested=categories["Dairy > Milk"],
                             confidence=0.5, raw_score=0.5)
    return run


def read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]


@pytest.mark.parametrize("command", ["export_codes", "export_audit"])
def test_no_exported_cell_starts_like_a_formula(hostile_catalog, tmp_path, command):
    path = tmp_path / "out.csv"
    call_command(command, str(path), stdout=io.StringIO())

    rows = read(path)
    cells = [cell for row in rows for cell in row]
    assert len(rows) == len(HOSTILE) + 1
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert {row[0] for row in rows} == {"'" + h for h in HOSTILE} | {"P-1"}  # kept readable, not dropped
    if command == "export_audit":
        assert "'+SUM(1;2) > =1+1" in {row[1] for row in rows}
