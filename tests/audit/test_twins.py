"""A product with flags of both flavors (raised before flags were merged) is one reviewer's at a time:
claims pass over it while another reviewer holds its other flag or a transaction holds the product, and
deciding it closes the other flag for good (deleted, or superseded when it has a history)."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import Decision, Flag, Queue
from audit.review import ReviewError
from audit.review.claims import claim_flag, claim_next_flag
from audit.review.decisions import decide_flag, undo_last_decisions
from audit.selectors import queue_flags
from catalog.models import Product
from tests.conftest import make_user, row_held
from tests.ui.conftest import add_discovery_flags, build_review_data


@pytest.fixture(autouse=True)
def no_random_second_reviews(settings):
    settings.SEMID_SECOND_REVIEW_SHARE = 0.0


@pytest.fixture
def rob(db):
    return make_user("rob", "reviewer", "pass-12345")


def twin_pair(tmp_path) -> tuple[Flag, Flag, list[Flag]]:
    data = build_review_data(tmp_path)
    [twin] = add_discovery_flags(data, twins=1, alone=0)
    return data["flags"][0], twin, data["flags"]


def test_a_reviewer_is_never_given_a_product_another_reviewer_holds_on_its_other_flag(reviewer_user, rob, tmp_path):
    first, twin, flags = twin_pair(tmp_path)
    assert claim_next_flag(reviewer=reviewer_user).pk == first.pk  # 0.97, then rob's best would be ...
    given = claim_next_flag(reviewer=rob)
    assert given.product_id != first.product_id and given.pk == flags[1].pk
    decide_flag(flag=given, reviewer=rob, action="reject")
    assert claim_next_flag(reviewer=rob).pk != twin.pk  # ... the twin (0.93), next after flags[1] (0.94)

    with pytest.raises(ReviewError, match=f"rita is reviewing this product on flag #{first.pk}"):
        claim_flag(flag=twin, reviewer=rob)
    admin = make_user("ann", "admin", "pass-12345")
    with pytest.raises(ReviewError, match=f"rita is reviewing this product on flag #{first.pk}"):
        decide_flag(flag=twin, reviewer=admin, action="accept")  # admins decide unclaimed flags, not this one
    assert Flag.objects.filter(pk__in=[first.pk, twin.pk]).count() == 2


def test_deciding_a_product_closes_its_other_flag_and_a_superseded_one_leaves_every_queue(reviewer_user, rob, tmp_path):
    first, twin, _ = twin_pair(tmp_path)
    claim_flag(flag=twin, reviewer=rob)
    decide_flag(flag=twin, reviewer=rob, action="defer")  # the twin has a history now
    claim_flag(flag=first, reviewer=reviewer_user)

    decide_flag(flag=first, reviewer=reviewer_user, action="accept")

    twin.refresh_from_db()
    assert twin.status == "superseded" and twin.claimed_by is None
    for queue in Queue.values:
        assert twin.pk not in queue_flags(queue=queue).values_list("pk", flat=True)
    with pytest.raises(ReviewError, match="already superseded"):
        claim_flag(flag=twin, reviewer=rob)
    undo_last_decisions(reviewer=reviewer_user)  # the product is live again on one flag, rita's
    live = Flag.objects.filter(product_id=first.product_id, status__in=Flag.LIVE_STATES)
    assert [(f.pk, f.status) for f in live] == [(first.pk, "claimed")]


def test_a_flag_gone_since_the_page_opened_is_explained_not_a_404(reviewer_user, rob, tmp_path):
    first, twin, _ = twin_pair(tmp_path)
    claim_flag(flag=first, reviewer=reviewer_user)
    decide_flag(flag=first, reviewer=reviewer_user, action="reject")  # the twin, never decided, is deleted
    assert not Flag.objects.filter(pk=twin.pk).exists()
    client = Client()
    client.force_login(rob)

    with pytest.raises(ReviewError, match="no longer exists"):
        decide_flag(flag=twin, reviewer=rob, action="accept")
    page = client.get(f"/flags/{twin.pk}/?queue=mislabel", follow=True)
    decided = client.post(f"/flags/{twin.pk}/decide/", {"action": "accept", "queue": "mislabel"}, follow=True)

    for response in (page, decided):
        assert response.redirect_chain[-1][0] == "/?queue=mislabel"
        assert f"Flag #{twin.pk} no longer exists" in response.content.decode()


def test_a_claim_passes_over_a_product_another_transaction_holds(transactional_db, tmp_path):
    rita, rob = make_user("rita", "reviewer", "pass-12345"), make_user("rob", "reviewer", "pass-12345")
    first, twin, flags = twin_pair(tmp_path)
    with row_held(Product.objects, first.product_id):  # rita's decision on the product is in flight
        given = claim_next_flag(reviewer=rob)
        with pytest.raises(ReviewError, match="another reviewer is deciding"):
            claim_flag(flag=twin, reviewer=rita)

    assert given.pk == flags[1].pk  # not flags[0] nor its twin: their product was busy
    assert not Decision.objects.exists()
