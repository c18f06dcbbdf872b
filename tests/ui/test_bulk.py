import re

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import build_review_data, login, make_reviewer, screenshot

pytestmark = pytest.mark.browser


def test_admin_accepts_a_filtered_selection_after_confirming_and_undoes_the_batch(new_page, admin_user, tmp_path,
                                                                                  settings):
    from audit.models import Decision, Flag
    from audit.review.claims import claim_flag
    from catalog.models import Product

    settings.SEMID_SECOND_REVIEW_SHARE = 0.0
    flags = build_review_data(tmp_path)["flags"]
    chocolate = [f for f in flags if "chocolate" in f.product.name.lower()]
    held = flags[0]
    claim_flag(flag=held, reviewer=make_reviewer("rob"))
    page = new_page()
    login(page, "ada", "admin-pass-123")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Flag grid").click()
    page.wait_for_url("**/review/grid/")
    grid = page.get_by_test_id("grid")
    expect(grid.locator("tbody tr[data-flag]")).to_have_count(len(flags))

    page.get_by_label("Search (name or brand)").fill("chocolate")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*q=chocolate.*"))
    expect(grid.locator("tbody tr[data-flag]")).to_have_count(len(chocolate))
    for flag in chocolate:
        grid.locator(f"tr[data-flag='{flag.pk}'] input[name=flags]").check()
    page.get_by_role("button", name="Accept selected…").click()

    # the confirmation lists what will happen; nothing is decided yet
    page.wait_for_url("**/review/bulk/confirm/")
    expect(page.get_by_test_id("confirm-list").locator("tbody tr[data-flag]")).to_have_count(len(chocolate))
    assert not Decision.objects.exists()
    page.get_by_role("button", name=f"Confirm: accept {len(chocolate)} flags").click()
    page.wait_for_url(re.compile(r".*/review/grid/\?.*q=chocolate.*"))  # back on the same filtered grid
    assert page.get_by_text(f"Accepted {len(chocolate)} flags.").is_visible()
    for flag in chocolate:
        assert Product.objects.get(pk=flag.product_id).category_id == flag.suggested_id
    expect(grid.locator("tbody tr[data-flag]")).to_have_count(0)  # decided flags left the queue

    # a flag another reviewer holds is skipped and reported, never decided
    page.goto("/review/grid/")
    grid.locator(f"tr[data-flag='{held.pk}'] input[name=flags]").check()
    grid.locator(f"tr[data-flag='{flags[1].pk}'] input[name=flags]").check()
    assert page.locator("#selected-count").inner_text() == "2 selected"
    screenshot(page, "bulk")
    page.get_by_role("button", name="Reject selected…").click()
    assert "claimed by rob: will be skipped" in page.get_by_test_id("confirm-list").inner_text()
    page.get_by_label("Comment on every decision (optional)").fill("labels checked against the packs")
    page.get_by_role("button", name="Confirm: reject 2 flags").click()
    page.wait_for_url("**/review/grid/")
    assert page.get_by_text("Rejected 1 flag.").is_visible()
    assert page.get_by_text(re.compile(rf"Skipped .+ \(flag #{held.pk}\): claimed by rob until")).is_visible()
    assert Flag.objects.get(pk=held.pk).status == "claimed" and not Decision.objects.filter(flag=held).exists()
    assert Decision.objects.get(flag=flags[1]).note == "labels checked against the packs"

    # one undo reverts the whole last batch (the rejection), not the accepted batch before it
    assert "rejected 1 flag" in page.get_by_test_id("last-batch").inner_text()
    page.get_by_role("button", name="Undo this batch").click()
    page.wait_for_url("**/review/grid/")
    assert page.get_by_text("Undid 1 decision of the batch").is_visible()
    assert Flag.objects.get(pk=flags[1].pk).status == "open"
    assert f"accepted {len(chocolate)} flags" in page.get_by_test_id("last-batch").inner_text()
    page.get_by_role("button", name="Undo this batch").click()
    page.wait_for_url("**/review/grid/")
    assert page.get_by_test_id("last-batch").count() == 0
    for flag in chocolate:
        assert Product.objects.get(pk=flag.product_id).category_id == flag.label_id
        assert Flag.objects.get(pk=flag.pk).status == "open"
    expect(grid.locator("tbody tr[data-flag]")).to_have_count(len(flags))


def test_reviewers_search_the_grid_but_decide_one_flag_at_a_time(page, reviewer_user, tmp_path):
    from django.test import Client

    from audit.models import Flag

    flags = build_review_data(tmp_path)["flags"]
    login(page, "rita", "review-pass-123")
    page.get_by_role("link", name="Search in the grid").click()
    page.wait_for_url("**/review/grid/?queue=mislabel")
    page.get_by_label("Confidence").select_option("high")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*confidence=high.*"))
    rows = page.get_by_test_id("grid").locator("tbody tr[data-flag]")
    expect(rows).to_have_count(len([f for f in flags if f.confidence >= 0.9]))
    assert page.locator("input[name=flags]").count() == 0
    assert page.get_by_role("button", name="Accept selected…").count() == 0
    rows.first.get_by_role("link").first.click()
    page.wait_for_url(re.compile(rf".*/flags/{flags[0].pk}/.*"))

    client = Client()  # no CSRF check: the refusal is the role's
    client.force_login(reviewer_user)
    for url in ("/review/bulk/confirm/", "/review/bulk/decide/"):
        assert client.post(url, {"action": "accept", "flags": [flags[0].pk]}).status_code == 403
    assert Flag.objects.get(pk=flags[0].pk).status == "open"
