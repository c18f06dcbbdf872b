"""Bulk accept / reject: one transaction through the single-decision path, the same claim rules per flag
(skips reported, never a product decided twice), one undo for the whole batch; and the grid's filters."""

from __future__ import annotations

import time

import pytest

from audit.filters import FlagGridFilter
from audit.models import Decision, Flag
from audit.review import ReviewError
from audit.review.claims import claim_flag
from audit.review.decisions import decide_batch, decide_flag, undo_batch
from audit.selectors import grid_flags, last_batch
from catalog.models import Category, Product
from catalog.services import move_product
from quantizer.models import SemanticId
from tests.conftest import make_user, row_held
from tests.ui.conftest import add_discovery_flags, build_review_data


@pytest.fixture(autouse=True)
def no_random_second_reviews(settings):
    settings.SEMID_SECOND_REVIEW_SHARE = 0.0


def category_of(flag: Flag) -> int:
    return Product.objects.get(pk=flag.product_id).category_id


def test_bulk_accept_moves_every_product_in_one_batch(admin_user, tmp_path):
    flags = build_review_data(tmp_path)["flags"][:3]

    result = decide_batch(flag_ids=[f.pk for f in flags], reviewer=admin_user, action="accept")

    assert [d.flag_id for d in result.decisions] == [f.pk for f in flags] and result.skipped == []
    assert {d.batch for d in result.decisions} == {result.batch}
    for flag in flags:
        assert category_of(flag) == flag.suggested_id
        assert Flag.objects.get(pk=flag.pk).status == "accepted"


def test_bulk_skips_and_reports_what_a_single_decision_would_refuse(admin_user, reviewer_user, tmp_path):
    held, mine_first, due, moved, plain = build_review_data(tmp_path)["flags"][:5]
    claim_flag(flag=mine_first, reviewer=admin_user)
    decide_flag(flag=mine_first, reviewer=admin_user, action="reject")  # the admin's own first decision ...
    Flag.objects.filter(pk=mine_first.pk).update(needs_second_review=True)  # ... drawn for a second review
    claim_flag(flag=due, reviewer=reviewer_user)
    decide_flag(flag=due, reviewer=reviewer_user, action="accept")  # rita's decision, due for the admin's review
    Flag.objects.filter(pk=due.pk).update(needs_second_review=True)
    claim_flag(flag=held, reviewer=reviewer_user)  # rita's one claim in the queue
    elsewhere = Category.objects.filter(children__isnull=True).exclude(pk__in=[moved.label_id, moved.suggested_id]).first()
    move_product(product=moved.product, category=elsewhere)

    result = decide_batch(flag_ids=[held.pk, mine_first.pk, due.pk, moved.pk, plain.pk, 999999],
                          reviewer=admin_user, action="accept")

    reasons = {s.flag_id: s.reason for s in result.skipped}
    assert set(reasons) == {held.pk, mine_first.pk, moved.pk, 999999}
    assert reasons[held.pk].startswith("claimed by rita")
    assert "second review is another reviewer's" in reasons[mine_first.pk]
    assert "changed since it was scored" in reasons[moved.pk]
    assert "no longer exists" in reasons[999999]
    assert {d.flag_id: d.is_second_review for d in result.decisions} == {due.pk: True, plain.pk: False}
    assert Flag.objects.get(pk=due.pk).second_review_agrees is True
    assert Flag.objects.get(pk=held.pk).status == "claimed" and category_of(held) == held.label_id
    assert Flag.objects.get(pk=moved.pk).status == "stale" and category_of(moved) == elsewhere.pk
    assert Decision.objects.filter(flag=mine_first).count() == 1  # never decided twice


def test_a_batch_decides_a_product_once_and_respects_another_reviewers_flag_on_it(admin_user, reviewer_user, tmp_path):
    data = build_review_data(tmp_path)
    first, second = data["flags"][:2]
    twin_of_first, twin_of_second = add_discovery_flags(data, twins=2, alone=0)
    claim_flag(flag=twin_of_second, reviewer=reviewer_user)  # rita reviews the second product on its other flag

    result = decide_batch(flag_ids=[first.pk, twin_of_first.pk, second.pk], reviewer=admin_user, action="reject")

    assert [d.flag_id for d in result.decisions] == [first.pk]
    reasons = {s.flag_id: s.reason for s in result.skipped}
    assert reasons[twin_of_first.pk] == f"decided in this batch on flag #{first.pk}"
    assert reasons[second.pk] == f"rita is reviewing this product on flag #{twin_of_second.pk}"
    assert not Flag.objects.filter(pk=twin_of_first.pk).exists()  # the undecided twin closed with its product
    assert Flag.objects.get(pk=twin_of_second.pk).claimed_by == reviewer_user
    assert Decision.objects.filter(product_id=first.product_id).count() == 1


def test_one_undo_reverts_the_batch_but_not_what_a_second_reviewer_confirmed(admin_user, reviewer_user, tmp_path):
    flags = build_review_data(tmp_path)["flags"][:3]
    batch = decide_batch(flag_ids=[f.pk for f in flags], reviewer=admin_user, action="accept").batch
    confirmed = flags[2]
    Flag.objects.filter(pk=confirmed.pk).update(needs_second_review=True)
    claim_flag(flag=confirmed, reviewer=reviewer_user)
    decide_flag(flag=confirmed, reviewer=reviewer_user, action="accept")
    assert last_batch(reviewer=admin_user)["n"] == 3

    result = undo_batch(reviewer=admin_user, batch=batch)

    assert sorted(d.reverts.flag_id for d in result.decisions) == sorted(f.pk for f in flags[:2])
    assert [(s.flag_id, "rita has second-reviewed" in s.reason) for s in result.skipped] == [(confirmed.pk, True)]
    for flag in flags[:2]:
        again = Flag.objects.get(pk=flag.pk)
        assert (again.status, again.claimed_by_id) == ("open", None)  # back in the queue, claimed by nobody
        assert category_of(flag) == flag.label_id
    assert Flag.objects.get(pk=confirmed.pk).status == "accepted" and category_of(confirmed) == confirmed.suggested_id
    assert last_batch(reviewer=admin_user)["n"] == 1
    assert undo_batch(reviewer=admin_user, batch=batch).decisions == []


def test_undoing_a_batch_of_second_reviews_clears_the_verdicts(admin_user, reviewer_user, tmp_path):
    flag = build_review_data(tmp_path)["flags"][0]
    claim_flag(flag=flag, reviewer=reviewer_user)
    decide_flag(flag=flag, reviewer=reviewer_user, action="reject")
    Flag.objects.filter(pk=flag.pk).update(needs_second_review=True)
    batch = decide_batch(flag_ids=[flag.pk], reviewer=admin_user, action="accept").batch
    assert Flag.objects.get(pk=flag.pk).second_review_agrees is True

    undo_batch(reviewer=admin_user, batch=batch)

    again = Flag.objects.get(pk=flag.pk)
    assert (again.status, again.second_review_agrees) == ("rejected", None)  # due for a second review again
    assert decide_batch(flag_ids=[flag.pk], reviewer=admin_user, action="reject").decisions[0].is_second_review


def test_bulk_decisions_are_for_admins(reviewer_user, tmp_path):
    flag = build_review_data(tmp_path)["flags"][0]
    with pytest.raises(ReviewError, match="for admins"):
        decide_batch(flag_ids=[flag.pk], reviewer=reviewer_user, action="accept")
    with pytest.raises(ReviewError, match="accept or reject"):
        decide_batch(flag_ids=[flag.pk], reviewer=make_user("ann", "admin", "pass-12345"), action="defer")


def test_bulk_skips_a_flag_another_transaction_holds_without_waiting(transactional_db, tmp_path):
    admin = make_user("ann", "admin", "pass-12345")
    busy, free = build_review_data(tmp_path)["flags"][:2]
    with row_held(Flag.objects, busy.pk):
        started = time.monotonic()
        result = decide_batch(flag_ids=[busy.pk, free.pk], reviewer=admin, action="reject")
        elapsed = time.monotonic() - started

    assert elapsed < 5
    assert [d.flag_id for d in result.decisions] == [free.pk]
    assert [(s.flag_id, s.reason) for s in result.skipped] == [(busy.pk, "another reviewer is working on it right now")]
    assert Flag.objects.get(pk=busy.pk).status == "open"


def test_grid_searches_and_filters_the_queue(db, tmp_path):
    data = build_review_data(tmp_path)
    add_discovery_flags(data, twins=0, alone=2)
    flags = list(Flag.objects.select_related("product", "label", "run"))

    def grid(**params) -> set[int]:
        return {f.pk for f in FlagGridFilter(params, queryset=grid_flags(queue="mislabel")).qs}

    assert grid() == {f.pk for f in flags}
    assert grid(q="chocolate") == {f.pk for f in flags if "chocolate" in f.product.name.lower()} != set()
    assert grid(q="cocoa crown") == {f.pk for f in flags if f.product.brand == "Cocoa Crown"} != set()
    assert grid(category="Candy & Chocolate") == {f.pk for f in flags if f.label.path.startswith("Candy & Chocolate")}
    code = SemanticId.objects.get(run=data["run"], product=data["flags"][0].product).code
    prefix = "_".join(code.split("_")[:2])
    under = set(SemanticId.objects.filter(code__startswith=prefix + "_").values_list("run_id", "product_id"))
    assert grid(prefix=prefix) == {f.pk for f in flags if (f.run_id, f.product_id) in under}
    assert grid(confidence="high") == {f.pk for f in flags if f.confidence >= 0.9}
    assert grid(flavor="discovery") == {f.pk for f in flags if f.run.flavor == "discovery"} != set()
    bad = FlagGridFilter({"prefix": "6_x"}, queryset=grid_flags(queue="mislabel"))
    assert "bad prefix" in str(bad.form.errors["prefix"]) and set(bad.qs.values_list("pk", flat=True)) == grid()
