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


def test_product_search_lists_every_match_with_its_code_category_and_place(page, reviewer_user, tmp_path):
    from django.db.models import Q

    from quantizer.models import SemanticId

    build_review_data(tmp_path)
    query = "milk"
    expected = SemanticId.objects.filter(Q(product__name__icontains=query) | Q(product__brand__icontains=query)) \
        .select_related("product__category")
    assert expected.count() >= 3
    login(page, "rita", "review-pass-123")
    page.goto("/clusters/?flavor=precision")
    page.get_by_label("Find products").fill(query)
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(r".*q=milk.*"))
    results = page.get_by_test_id("search-results")
    rows = results.locator("tbody tr")
    assert rows.count() == expected.count()  # a list, not a jump to the first
    for sid in expected:
        row = results.locator(f"tr[data-product='{sid.product_id}']")
        text = row.inner_text()
        assert sid.product.name in text and sid.full_id in text and sid.product.category.path in text
    assert page.get_by_test_id("treemap").is_visible()  # the tree stays below the matches

    sid = expected.order_by("product__name").first()
    results.locator(f"tr[data-product='{sid.product_id}']").get_by_role("link", name="its place in the tree").click()
    page.wait_for_url(re.compile(rf".*prefix={sid.code}&product={sid.product_id}$"))
    assert page.get_by_test_id("prefix-products").get_by_text(sid.product.name).first.is_visible()

    # an external id finds exactly its product
    other = SemanticId.objects.select_related("product").order_by("id")[5]
    page.get_by_label("Find products").fill(other.product.external_id.lower())
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(r".*q=demo.*"))
    assert page.get_by_test_id("search-results").locator("tbody tr").first.get_attribute("data-product") == str(other.product_id)


def test_level_one_is_grouped_under_each_clusters_dominant_department(page, reviewer_user, tmp_path):
    from collections import Counter

    from quantizer.models import SemanticId

    build_review_data(tmp_path)
    # a second level-1 cluster in the biggest department, with one product of another department in it
    biggest = Counter(p.split(" > ")[0] for p in SemanticId.objects.values_list("product__category__path", flat=True))
    department = biggest.most_common(1)[0][0]
    moved = list(SemanticId.objects.filter(product__category__path__startswith=department + " > ").order_by("id")[:3])
    moved += list(SemanticId.objects.exclude(product__category__path__startswith=department + " > ").order_by("id")[:1])
    for sid in moved:
        sid.codes = [15, *sid.codes[1:]]
        sid.code = "_".join(map(str, sid.codes))
        sid.save()
    dominant, sizes = {}, Counter()
    for codes, path in SemanticId.objects.values_list("codes", "product__category__path"):
        dominant.setdefault(str(codes[0]), Counter())[path.split(" > ")[0]] += 1
        sizes[str(codes[0])] += 1
    login(page, "rita", "review-pass-123")
    page.goto("/clusters/?flavor=precision")
    screenshot(page, "clusters")

    groups = page.get_by_test_id("department")
    placed, totals = {}, []
    for i in range(groups.count()):
        group = groups.nth(i)
        name = group.get_attribute("data-department")
        prefixes = [cell.get_attribute("data-prefix") for cell in group.locator("a.cell").all()]
        placed.update({prefix: name for prefix in prefixes})
        totals.append(sum(sizes[p] for p in prefixes))
        assert group.get_by_role("heading").inner_text().startswith(f"{name} {totals[-1]} products")
    assert placed == {code: counts.most_common(1)[0][0] for code, counts in dominant.items()}
    assert sorted(placed.values()).count(department) == 2  # both of its clusters under one heading
    assert totals == sorted(totals, reverse=True)  # the biggest department first

    # below level 1 the children are one treemap, no department headings
    page.get_by_test_id("treemap").locator("a.cell").first.click()
    page.wait_for_url(re.compile(r".*prefix=\d+$"))
    assert page.get_by_test_id("department").count() == 0
    assert page.get_by_test_id("treemap").locator("a.cell").count() >= 1
