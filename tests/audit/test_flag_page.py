"""What the flag page says about a flag, rendered by the server (the browser tests in tests/ui drive it)."""

from __future__ import annotations

import re
from html import unescape

from django.test import Client

from audit.models import Flag, Queue
from catalog.models import Product
from catalog.services import ensure_categories
from quantizer.models import QuantizerRun


def flag_with(*, signals: dict, extracted: dict) -> Flag:
    categories, _ = ensure_categories([("Candy", "Gum & Mints"), ("Candy", "Gummies")])
    gum, gummies = categories["Candy > Gum & Mints"], categories["Candy > Gummies"]
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="m", status=QuantizerRun.Status.SUCCEEDED,
                                      is_active=True)
    product = Product.objects.create(external_id="P1", name="Fruity Jelly Beans", category=gum, extracted=extracted)
    evidence = {"cluster": {"prefix": "21", "level": 1, "size": 4, "composition": [[gummies.path, 3], [gum.path, 1]]},
                "neighbours": [], "suggestions": [[gummies.path, 0.99]], "signals": signals, "brand_led": False}
    return Flag.objects.create(product=product, run=run, queue=Queue.MISLABEL, label=gum, suggested=gummies,
                               confidence=0.99, priority=0.99, evidence=evidence,
                               product_updated_at=product.updated_at)


def section(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}">(.*?)</(?:p|div)>\s*(?:</div>|{{%|\n)', html, re.S)
    return unescape(re.sub(r"<[^>]+>", " ", match.group(1))) if match else ""


def test_a_flag_the_signals_call_wrong_shows_them_strong_and_only_the_attributes_found(reviewer_user):
    flag = flag_with(signals={"classifier": 0.9983, "codes": 0.9973, "knn": 0.25},
                     extracted={"size": "100 g", "format": [], "dietary": [], "product_type": "gummies", "note": ""})
    client = Client()
    client.force_login(reviewer_user)

    html = client.get(f"/flags/{flag.pk}/").content.decode()

    signals = " ".join(section(html, "signals").split())
    assert re.search(r"Text classifier\s+>99%", signals) and re.search(r"Nearest neighbours\s+25%", signals)
    extracted = " ".join(section(html, "extracted").split())
    assert extracted == "size: 100 g product_type: gummies"


def test_no_extracted_attribute_found_shows_no_heading(reviewer_user):
    flag = flag_with(signals={}, extracted={"format": [], "dietary": []})
    client = Client()
    client.force_login(reviewer_user)

    html = client.get(f"/flags/{flag.pk}/").content.decode()

    assert "Extracted attributes" not in html and 'data-testid="signals"' not in html


def test_category_bars_lead_with_the_leaf_and_the_product_page_reads_the_confidence_in_words(reviewer_user):
    """Two leaves of one aisle cut at the same width used to read alike ("Candy & Chocolate > Candy > Gum…"):
    the bars name the leaf first, the aisle after it, the whole path on hover. The product page's flags give
    the confidence as the flag page does, never a bare 100%."""
    flag = flag_with(signals={}, extracted={})
    client = Client()
    client.force_login(reviewer_user)

    html = client.get(f"/flags/{flag.pk}/").content.decode()
    names = [" ".join(unescape(re.sub(r"<[^>]+>", " ", n)).split())
             for n in re.findall(r'<div class="bar" title="Candy &gt; [^"]+">(.*?)<span class="track">', html, re.S)]
    assert names == ["Gummies Candy", "Gum & Mints Candy", "Gummies Candy"]  # the cluster's two, the suggestion

    page = client.get(f"/products/{flag.product_id}/").content.decode()
    assert "very likely wrong (about 99%)" in page and "100%" not in page


def test_a_share_neither_none_nor_all_never_reads_0_or_100_percent():
    from audit.templatetags.review import percent

    assert [percent(p) for p in (0, 0.3, 0.5, 1, 25.4, 99, 99.4, 99.6, 100)] == [
        "0%", "<1%", "<1%", "1%", "25%", "99%", ">99%", ">99%", "100%"]
