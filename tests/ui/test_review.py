import re

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import build_review_data, login, make_reviewer, screenshot

pytestmark = pytest.mark.browser

FLAG_URL = re.compile(r".*/flags/(\d+)/.*")


def flag_id(page) -> int:
    return int(FLAG_URL.match(page.url).group(1))


def wait_for_other_flag(page, current: int) -> int:
    page.wait_for_url(lambda url: FLAG_URL.match(url) is not None and int(FLAG_URL.match(url).group(1)) != current)
    return flag_id(page)


def test_login_shows_the_queues_and_bad_password_is_refused(page, reviewer_user, tmp_path):
    build_review_data(tmp_path)
    page.goto("/")
    assert "/accounts/login/" in page.url  # login required
    screenshot(page, "login")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_text("didn't match").is_visible()
    login(page, "rita", "review-pass-123")
    assert page.get_by_role("heading", name="Review queues").is_visible()
    assert page.get_by_test_id("open-mislabel").inner_text() == "8"
    assert page.get_by_role("link", name="Runs").count() == 0  # reviewers do not see admin pages
    screenshot(page, "home")


def test_reviewer_works_the_mislabel_queue_with_the_keyboard(page, reviewer_user, tmp_path):
    from audit.models import Decision, Flag
    from catalog.models import Product

    data = build_review_data(tmp_path)
    Product.objects.filter(pk=data["flags"][0].product_id).update(attributes={"labels": ["organic", "vegan"]})
    login(page, "rita", "review-pass-123")
    page.get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(FLAG_URL)
    first = Flag.objects.select_related("product", "suggested").get(pk=flag_id(page))
    assert first.pk == data["flags"][0].pk  # the highest priority comes first
    assert page.get_by_test_id("suggested").inner_text() == first.suggested.path
    assert page.get_by_test_id("confidence").inner_text() == "The label is very likely wrong (about 97%)"
    words = page.get_by_test_id("evidence-words").inner_text()
    assert re.fullmatch(r"\d of the \d most similar products are in .+; \d (is|are) in .+, where this one is filed", words), words
    neighbours = page.get_by_role("region", name="Nearest neighbours")
    assert neighbours.get_by_text(first.evidence["neighbours"][0]["name"]).count() >= 1
    screenshot(page, "flag")

    assert page.get_by_test_id("attributes").inner_text().strip() == "labels: organic, vegan"  # not a Python list
    signals = page.get_by_test_id("signals").inner_text()
    assert all(name in signals for name in ("Text classifier", "Semantic-ID cluster", "Nearest neighbours"))
    assert "91%" in signals and "knn" not in signals

    page.keyboard.press("?")
    assert page.get_by_role("dialog", name="Keyboard shortcuts").is_visible()
    explained = page.get_by_test_id("signal-help").inner_text()
    assert all(name in explained for name in ("Text classifier", "Semantic-ID cluster", "Nearest neighbours", "Brand"))
    page.keyboard.press("?")
    assert not page.get_by_role("dialog", name="Keyboard shortcuts").is_visible()

    # a: accept -> the product moves to the suggestion, and the next flag opens
    page.keyboard.press("a")
    second_id = wait_for_other_flag(page, first.pk)
    assert page.get_by_text(f"Accepted: {first.product.name}").is_visible()
    assert Product.objects.get(pk=first.product_id).category_id == first.suggested_id
    assert Flag.objects.get(pk=first.pk).status == "accepted"

    # r: reject -> the label stays
    second = Flag.objects.select_related("product").get(pk=second_id)
    page.keyboard.press("r")
    third_id = wait_for_other_flag(page, second_id)
    assert Flag.objects.get(pk=second_id).status == "rejected"
    assert Product.objects.get(pk=second.product_id).category_id == second.label_id

    # c + picker + Enter: reassign to a category picked by typing
    third = Flag.objects.select_related("product__category").get(pk=third_id)
    original = third.product.category
    target = "Snacks > Nuts & Dried Fruit > Nuts" if original.path != "Snacks > Nuts & Dried Fruit > Nuts" else "Bakery > Bread > Sandwich Bread"
    page.keyboard.press("c")
    assert page.evaluate("document.activeElement.id") == "category-picker"
    page.keyboard.type(target)
    options = page.locator("#category-options option")
    expect(options).to_have_count(1)  # htmx narrowed the picker to the typed category
    assert options.first.get_attribute("value") == target
    page.keyboard.press("Enter")
    fourth_id = wait_for_other_flag(page, third_id)
    assert Product.objects.get(pk=third.product_id).category.path == target
    assert Flag.objects.get(pk=third_id).status == "reassigned"

    # u: undo -> back on the reassigned flag, category restored
    page.keyboard.press("u")
    page.wait_for_url(re.compile(rf".*/flags/{third_id}/.*"))
    assert Product.objects.get(pk=third.product_id).category_id == original.pk
    assert page.get_by_test_id("current-label").inner_text() == original.path
    assert Decision.objects.filter(flag_id=third_id, action="undo").count() == 1
    assert fourth_id != third_id

    # the product page shows who moved the accepted product, from where to where
    page.goto(f"/products/{first.product_id}/")
    history = page.get_by_test_id("history")
    row = history.locator("tr", has_text="rita")
    assert row.count() == 1
    assert first.suggested.path in row.inner_text() and first.label.path in row.inner_text()
    assert page.get_by_test_id("product-category").inner_text() == first.suggested.path
    screenshot(page, "product")


def test_runner_up_suggestions_reassign_in_one_key(page, reviewer_user, tmp_path):
    from audit.models import Decision, Flag
    from catalog.models import Product

    build_review_data(tmp_path)
    login(page, "rita", "review-pass-123")
    page.get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(FLAG_URL)
    flag = Flag.objects.select_related("product__category", "suggested").get(pk=flag_id(page))
    runners_up = [path for path, _ in flag.evidence["suggestions"][1:]]
    buttons = page.get_by_role("region", name="Decide").get_by_test_id("alternative")
    expect(buttons).to_have_count(2)
    for i, path in enumerate(runners_up):
        assert buttons.nth(i).inner_text().startswith(path)
    assert page.get_by_role("region", name="Decide").get_by_text(flag.product.category.path).count() == 0
    # 3: the third suggestion, in one key; the next flag opens
    page.keyboard.press("3")
    wait_for_other_flag(page, flag.pk)
    assert Product.objects.get(pk=flag.product_id).category.path == runners_up[1]
    decision = Decision.objects.get(flag_id=flag.pk, action="reassign")
    assert decision.to_category.path == runners_up[1]
    assert Flag.objects.get(pk=flag.pk).status == "reassigned"


def test_two_reviewers_never_get_the_same_flag(new_page, reviewer_user, tmp_path):
    from audit.models import Flag

    build_review_data(tmp_path)
    make_reviewer("rob")
    rita, rob = new_page(), new_page()
    login(rita, "rita", "review-pass-123")
    login(rob, "rob", "review-pass-123")
    for page in (rita, rob):
        page.goto("/")
    rita.get_by_role("button", name="Start reviewing").click()
    rob.get_by_role("button", name="Start reviewing").click()
    rita.wait_for_url(FLAG_URL)
    rob.wait_for_url(FLAG_URL)
    assert flag_id(rita) != flag_id(rob)
    claimed = dict(Flag.objects.filter(status="claimed").values_list("pk", "claimed_by__username"))
    assert claimed == {flag_id(rita): "rita", flag_id(rob): "rob"}

    # opening the other reviewer's flag says who holds it, and offers no decision buttons
    rob.goto(f"/flags/{flag_id(rita)}/")
    assert "claimed by rita" in rob.get_by_test_id("claim-error").inner_text()
    assert rob.get_by_role("button", name="Accept").count() == 0


def test_stale_flag_says_so_and_refuses_accept(page, reviewer_user, tmp_path):
    from audit.models import Flag
    from catalog.models import Category
    from catalog.services import move_product

    data = build_review_data(tmp_path)
    flag = data["flags"][0]
    elsewhere = Category.objects.filter(children__isnull=True).exclude(pk__in=[flag.label_id, flag.suggested_id]).first()
    move_product(product=flag.product, category=elsewhere)
    login(page, "rita", "review-pass-123")
    page.goto(f"/flags/{flag.pk}/")
    assert page.get_by_test_id("stale").is_visible()
    page.get_by_test_id("claim").click()
    page.wait_for_load_state()
    page.keyboard.press("a")
    page.wait_for_load_state()
    page.get_by_text("changed since it was scored").first.wait_for()
    assert Flag.objects.get(pk=flag.pk).status == "stale"
    assert flag.product.__class__.objects.get(pk=flag.product_id).category_id == elsewhere.pk


def test_pages_fit_a_narrow_window(page, reviewer_user, tmp_path):
    data = build_review_data(tmp_path)
    page.set_viewport_size({"width": 400, "height": 800})
    login(page, "rita", "review-pass-123")
    for url in ("/", f"/flags/{data['flags'][0].pk}/", "/clusters/?flavor=precision", "/review/grid/"):
        page.goto(url)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{url} is {overflow}px wider than a 400px window"
    page.goto(f"/flags/{data['flags'][0].pk}/")
    page.get_by_test_id("claim").click()
    assert page.get_by_role("button", name="Accept").is_visible()


def test_viewing_flags_claims_none_and_a_reviewer_holds_one_claim_per_queue(page, reviewer_user, tmp_path):
    from audit.models import Flag

    data = build_review_data(tmp_path)
    first, second, third = data["flags"][:3]
    login(page, "rita", "review-pass-123")
    for flag in (first, second, third):
        page.goto(f"/flags/{flag.pk}/")
    assert not Flag.objects.filter(claimed_by__username="rita").exists()  # three views, no claim
    assert page.get_by_role("button", name="Accept").count() == 0

    page.get_by_test_id("claim").click()
    page.get_by_role("button", name="Accept").wait_for()
    page.goto(f"/flags/{first.pk}/")
    page.get_by_test_id("claim").click()
    page.get_by_role("button", name="Accept").wait_for()

    held = Flag.objects.filter(claimed_by__username="rita")
    assert list(held.values_list("pk", flat=True)) == [first.pk]  # claiming the first gave back the third
    assert Flag.objects.get(pk=third.pk).status == "open"


def test_a_runner_up_under_five_percent_is_not_a_one_click_fix(page, reviewer_user, tmp_path):
    from audit.models import Flag

    flag = build_review_data(tmp_path)["flags"][0]
    first, second, third = flag.evidence["suggestions"]
    Flag.objects.filter(pk=flag.pk).update(confidence=1.0,
                                           evidence={**flag.evidence, "suggestions": [first, second, [third[0], 0.03]]})
    login(page, "rita", "review-pass-123")
    page.goto(f"/flags/{flag.pk}/")
    page.get_by_test_id("claim").click()

    buttons = page.get_by_role("region", name="Decide").get_by_test_id("alternative")
    expect(buttons).to_have_count(1)
    assert buttons.nth(0).inner_text().startswith(second[0])
    assert page.get_by_test_id("confidence").inner_text() == "The label is very likely wrong (about 99%)"  # never 100%
