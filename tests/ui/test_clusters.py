import re

import pytest

from tests.ui.conftest import build_review_data, login, screenshot

pytestmark = pytest.mark.browser


def test_cluster_tree_drills_from_level_one_to_a_product(page, reviewer_user, tmp_path):
    from quantizer.models import SemanticId

    build_review_data(tmp_path)
    login(page, "rita", "review-pass-123")
    page.goto("/clusters/?flavor=precision")
    cells = page.get_by_test_id("treemap").locator("a.cell")
    assert cells.count() >= 2
    screenshot(page, "clusters")
    prefix = ""
    for depth in range(1, 5):
        cell = page.get_by_test_id("treemap").locator("a.cell").first
        prefix = cell.get_attribute("data-prefix")
        assert len(prefix.split("_")) == depth
        expected = SemanticId.objects.filter(code__startswith=prefix + "_").count() or SemanticId.objects.filter(code=prefix).count()
        assert f"· {expected}" in cell.inner_text()  # the cell shows its product count
        cell.click()
        page.wait_for_url(re.compile(rf".*prefix={prefix}$"))
        assert f"level {depth}" in page.locator(".crumbs").inner_text()
        assert page.get_by_test_id("prefix-products").is_visible()
    assert page.get_by_test_id("treemap").count() == 0  # level 4 is the deepest
    names = set(SemanticId.objects.filter(code=prefix).values_list("product__name", flat=True))
    link = page.get_by_test_id("prefix-products").locator("a").first
    assert link.inner_text() in names
    name = link.inner_text()
    link.click()
    page.wait_for_url(re.compile(r".*/products/\d+/$"))
    assert page.get_by_role("heading", level=1).inner_text() == name
    assert prefix in page.locator(".semid-code").first.inner_text()


def test_product_search_jumps_to_its_deepest_prefix(page, reviewer_user, tmp_path):
    from quantizer.models import SemanticId

    build_review_data(tmp_path)
    sid = SemanticId.objects.select_related("product").order_by("id")[5]
    login(page, "rita", "review-pass-123")
    page.goto("/clusters/?flavor=precision")
    page.get_by_label("Find a product").fill(sid.product.external_id)
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(rf".*prefix={sid.code}&product={sid.product_id}$"))
    assert page.get_by_test_id("prefix-products").get_by_text(sid.product.name).first.is_visible()
