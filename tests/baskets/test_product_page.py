"""The product page's "Goes well with" panel (baskets/templatetags, included by templates/catalog/product.html)."""

import re

import pytest

from baskets.services import import_baskets
from tests.baskets.test_copurchase import TIMES, TOY, basket_file, repeated


def product_page(client, user, product) -> str:
    client.force_login(user)
    response = client.get(f"/products/{product.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_no_panel_before_any_basket_is_imported(client, reviewer_user, catalog):
    assert "Goes well with" not in product_page(client, reviewer_user, catalog["chips"])


def test_the_panel_lists_complements_with_category_and_other_department(client, reviewer_user, catalog, tmp_path):
    import_baskets(path=basket_file(tmp_path, repeated(TOY, TIMES)))

    html = product_page(client, reviewer_user, catalog["chips"])

    assert "Goes well with" in html
    row = re.search(r'<tr data-testid="complement">(.*?)</tr>', html, re.S).group(1)
    assert f'href="/products/{catalog["salsa"].pk}/"' in row and "Salsa Verde" in row
    assert "pantry &gt; salsa" in row and "other department" in row
    assert "3.0×" in row
    milk = product_page(client, reviewer_user, catalog["milk"])
    assert "No product is bought with this one more often than chance" in milk


@pytest.mark.browser
def test_a_reviewer_follows_a_complement_from_the_product_page(page, reviewer_user, catalog, tmp_path):
    from quantizer.models import QuantizerRun, SemanticId
    from tests.ui.conftest import login, screenshot

    import_baskets(path=basket_file(tmp_path, repeated(TOY, TIMES)))
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="test", is_active=True,
                                      status=QuantizerRun.Status.SUCCEEDED)
    for external_id, codes in (("chips", [1, 2, 3, 4]), ("salsa", [1, 2, 5, 0])):
        SemanticId.objects.create(run=run, product=catalog[external_id], codes=codes, code="_".join(map(str, codes)))

    login(page, "rita", "review-pass-123")
    page.goto(f"/products/{catalog['chips'].pk}/")
    panel = page.get_by_test_id("goes-well-with")
    assert panel.get_by_test_id("complement").count() == 1
    assert panel.get_by_test_id("other-department").is_visible()
    assert panel.get_by_test_id("shared-prefix").inner_text() == "1_2"
    screenshot(page, "product-goes-well-with")
    panel.get_by_role("link", name="Salsa Verde").click()
    page.wait_for_url(f"**/products/{catalog['salsa'].pk}/")
    assert page.get_by_role("heading", level=1).inner_text() == "Salsa Verde"
    assert "Tortilla Chips" in page.get_by_test_id("goes-well-with").inner_text()  # and back
