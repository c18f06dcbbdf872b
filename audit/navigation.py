"""Moving through a queue from the flag page: skip the flag in hand and lease the next one."""

from __future__ import annotations

from django.db import transaction

from audit.models import Flag
from audit.services import claim_next_flag


def release_claim(*, flag: Flag, reviewer) -> None:
    """Give back the reviewer's lease on a flag without deciding it."""
    Flag.objects.filter(pk=flag.pk, claimed_by=reviewer, status=Flag.Status.CLAIMED).update(
        status=Flag.Status.OPEN, claimed_by=None, claim_expires_at=None
    )
    Flag.objects.filter(pk=flag.pk, claimed_by=reviewer).exclude(status=Flag.Status.CLAIMED).update(
        claimed_by=None, claim_expires_at=None
    )


@transaction.atomic
def skip_to_next(*, flag: Flag | None, reviewer, queue: str, filters: dict | None = None) -> Flag | None:
    """Release `flag` (if held) and lease the next flag of the queue other than it."""
    if flag is not None:
        release_claim(flag=flag, reviewer=reviewer)
    return claim_next_flag(reviewer=reviewer, queue=queue, filters=filters, skip=flag.pk if flag else None)
