"""The next-flag claim reads each queue tier through its index and checks its own candidate for a product
that moved, so it does not depend on the whole-queue stale sweep (throttled per process)."""

from __future__ import annotations

from django.core.cache import cache
from django.utils import timezone

from audit.models import Flag, Queue
from audit.review.claims import claim_next_flag
from catalog.models import Product


def test_a_claim_passes_over_a_flag_whose_product_moved_and_marks_it_stale(catalog, reviewer_user, settings):
    settings.SEMID_STALE_SWEEP_SECONDS = 3600
    cache.delete("semid:stale-sweep")
    claim_next_flag(reviewer=reviewer_user, queue=Queue.MISLABEL)  # sweeps once, then not for an hour
    Flag.objects.update(status=Flag.Status.OPEN, claimed_by=None, claim_expires_at=None)
    top = Flag.objects.order_by("-priority", "id").first()
    # an import (or an admin) moves the top flag's product, outside the review workflow
    Product.objects.filter(pk=top.product_id).update(category=catalog.categories["Dairy > Milk"],
                                                    updated_at=timezone.now())

    claimed = claim_next_flag(reviewer=reviewer_user, queue=Queue.MISLABEL)

    assert claimed is not None and claimed.pk != top.pk
    assert Flag.objects.get(pk=top.pk).status == Flag.Status.STALE


def test_deferred_flags_come_after_open_ones_and_an_expired_claim_goes_back_to_the_queue(
        catalog, reviewer_user, second_reviewer):
    first, second = Flag.objects.order_by("-priority", "id")
    Flag.objects.filter(pk=first.pk).update(status=Flag.Status.DEFERRED)
    assert claim_next_flag(reviewer=reviewer_user, queue=Queue.MISLABEL).pk == second.pk  # open before deferred
    Flag.objects.filter(pk=second.pk).update(claim_expires_at=timezone.now() - timezone.timedelta(seconds=1))

    taken = claim_next_flag(reviewer=second_reviewer, queue=Queue.MISLABEL)

    assert taken.pk == second.pk and taken.claimed_by == second_reviewer  # the lapsed lease, before the deferred
