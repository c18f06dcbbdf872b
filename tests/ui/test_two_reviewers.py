"""Two reviewers in two browsers work one queue in which products carry flags of both flavors (the
precision and the discovery codes each flagged them, as audits did before flags were merged)."""

import re

import pytest

from tests.ui.conftest import add_discovery_flags, build_review_data, login, make_reviewer

pytestmark = pytest.mark.browser

FLAG_URL = re.compile(r".*/flags/(\d+)/.*")


def flag_on(page) -> int | None:
    match = FLAG_URL.match(page.url)
    return int(match.group(1)) if match else None


def press(page, key: str) -> None:
    """Decide the flag on the page with a key and wait for what opens next (a flag, or the queues)."""
    before = page.url
    page.keyboard.press(key)
    page.wait_for_url(lambda url: url != before)


def test_two_reviewers_never_decide_a_product_twice_nor_leave_its_other_flag_open(new_page, reviewer_user, tmp_path,
                                                                                   settings):
    from audit.models import Decision, Flag
    from catalog.models import Product

    settings.SEMID_SECOND_REVIEW_SHARE = 0.0
    data = build_review_data(tmp_path, n_flags=8)
    twins = add_discovery_flags(data, twins=4, alone=2)
    products = {f.product_id for f in data["flags"]} | {f.product_id for f in twins}
    deferred_twin = twins[3]  # rob deferred this discovery flag once: it has a history
    Decision.objects.create(flag=deferred_twin, product=deferred_twin.product, reviewer=make_reviewer("rob"),
                            action="defer", from_category=deferred_twin.label, to_category=deferred_twin.label,
                            flag_status_before="open")
    Flag.objects.filter(pk=deferred_twin.pk).update(status="deferred")
    rita, rob = new_page(), new_page()
    login(rita, "rita", "review-pass-123")
    login(rob, "rob", "review-pass-123")
    rita.get_by_role("button", name="Start reviewing").click()
    rita.wait_for_url(FLAG_URL)
    rob.get_by_role("button", name="Start reviewing").click()
    rob.wait_for_url(FLAG_URL)

    seen = []  # (reviewer, flag, product) of every flag a reviewer was given
    turn = 0
    while flag_on(rita) or flag_on(rob):
        pages = [("rita", rita), ("rob", rob)]
        holders = {name: Flag.objects.get(pk=flag_on(page)).product_id for name, page in pages if flag_on(page)}
        assert len(set(holders.values())) == len(holders), f"both reviewers hold one product: {holders}"
        name, page = pages[turn % 2] if flag_on(pages[turn % 2][1]) else pages[(turn + 1) % 2]
        seen.append((name, flag_on(page), holders[name]))
        press(page, "a" if turn % 3 else "r")
        turn += 1
        assert turn < 40

    standing = Decision.objects.filter(reverted_by__isnull=True, is_second_review=False).exclude(
        action__in=["comment", "undo", "defer"])
    per_product = {}
    for decision in standing:
        per_product.setdefault(decision.product_id, []).append(decision.flag_id)
    assert set(per_product) == products  # every product decided ...
    assert all(len(flags) == 1 for flags in per_product.values()), per_product  # ... once
    assert not Flag.objects.filter(status__in=Flag.LIVE_STATES).exists()  # no twin left open, stale or not
    assert {name for name, _, _ in seen} == {"rita", "rob"}
    assert rita.get_by_text("queue is empty").is_visible() or rob.get_by_text("queue is empty").is_visible()

    # rita undoes her last decision: the product is back where it was, on one live flag, held by her
    last = Decision.objects.filter(reviewer__username="rita", action__in=["accept", "reject"]).latest("created_at")
    rita.goto(f"/flags/{last.flag_id}/")
    press(rita, "u")
    assert flag_on(rita) == last.flag_id
    product = Product.objects.get(pk=last.product_id)
    assert product.category_id == last.from_category_id
    live = Flag.objects.filter(product=product, status__in=Flag.LIVE_STATES)
    assert [(f.pk, f.status, f.claimed_by.username) for f in live] == [(last.flag_id, "claimed", "rita")]
    rob.goto("/")
    rob.get_by_role("button", name="Start reviewing").click()
    rob.get_by_text("queue is empty").wait_for()  # rob is not given rita's product again
    press(rita, "r")
    assert Decision.objects.filter(product=product, reverted_by__isnull=True, is_second_review=False).exclude(
        action__in=["comment", "undo", "defer"]).count() == 1
    assert not Flag.objects.filter(status__in=Flag.LIVE_STATES).exists()
