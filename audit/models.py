from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from catalog.models import Category, Product
from quantizer.models import QuantizerRun


class Queue(models.TextChoices):
    MISLABEL = "mislabel", "Mislabel suspects"
    UNCATEGORIZED = "uncategorized", "Uncategorized"
    STALE = "stale", "Stale"
    SECOND_REVIEW = "second", "Second review"


class AuditReport(models.Model):
    """One audit pass over a run: calibration, summary figures, taxonomy issues."""

    run = models.ForeignKey(QuantizerRun, on_delete=models.CASCADE, related_name="audit_reports")
    calibration = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    taxonomy_issues = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class FlagQuerySet(models.QuerySet):
    """The rules that say which flags a queue holds and which a reviewer may lease: one definition for the
    queue pages, the claims and the API."""

    def in_queue(self, queue: str, *, every_status: bool = False):
        """The flags a queue holds. The stale queue holds the stale flags and the second-review queue the
        decisions due a second review, whatever queue they were raised in; the mislabel and uncategorized
        queues hold the flags raised into them that are still to decide (open, claimed, deferred), or, with
        `every_status` (the API's list, where a status filter narrows them), in any status."""
        if queue == Queue.STALE:
            return self.filter(status=Flag.Status.STALE)
        if queue == Queue.SECOND_REVIEW:
            return self.second_review_pending()
        if every_status:
            return self.filter(queue=queue)
        return self.filter(queue=queue, status__in=Flag.OPEN_STATES)

    def second_review_pending(self):
        """Decisions drawn for a second review that nobody has given yet."""
        return self.filter(status__in=Flag.DECIDED_STATES, needs_second_review=True, second_review_agrees__isnull=True)

    def leased_to_others(self, reviewer, now=None):
        """Flags another reviewer holds a running lease on."""
        now = now or timezone.now()
        return self.filter(claimed_by__isnull=False, claim_expires_at__gt=now).exclude(claimed_by=reviewer)

    def claimable(self, reviewer, now=None):
        """Flags the reviewer may lease: nobody else's lease runs on the flag, nor on its product's other flag
        (the other flavor's); a decision is never second-reviewed by the reviewer who made it."""
        now = now or timezone.now()
        other_flag_leased = Flag.objects.filter(product_id=OuterRef("product_id")).exclude(
            pk=OuterRef("pk")).leased_to_others(reviewer, now)
        return (self.filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now) | Q(claimed_by=reviewer))
                .exclude(Exists(other_flag_leased))
                .exclude(status__in=Flag.DECIDED_STATES, first_reviewer=reviewer))

    def release(self) -> None:
        """Give the leases back: a claimed flag goes back to open; one leased in another state (deferred,
        stale, a second review) keeps its state and loses its holder."""
        self.filter(status=Flag.Status.CLAIMED).update(status=Flag.Status.OPEN, claimed_by=None, claim_expires_at=None)
        self.exclude(status=Flag.Status.CLAIMED).update(claimed_by=None, claim_expires_at=None)


class Flag(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        CLAIMED = "claimed"
        ACCEPTED = "accepted"
        REJECTED = "rejected"
        REASSIGNED = "reassigned"
        DEFERRED = "deferred"
        STALE = "stale"
        SUPERSEDED = "superseded"  # its product was decided on its other flag (the other flavor's)

    OPEN_STATES = (Status.OPEN, Status.CLAIMED, Status.DEFERRED)
    DECIDED_STATES = (Status.ACCEPTED, Status.REJECTED, Status.REASSIGNED)
    # a flag that may still be decided: a product has at most one of these
    LIVE_STATES = (Status.OPEN, Status.CLAIMED, Status.DEFERRED, Status.STALE)

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="flags")
    run = models.ForeignKey(QuantizerRun, on_delete=models.CASCADE, related_name="flags")
    queue = models.CharField(max_length=20, choices=Queue.choices, default=Queue.MISLABEL)
    label = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )  # the product's category when it was scored
    suggested = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confidence = models.FloatField()  # calibrated P(label is wrong)
    priority = models.FloatField(db_index=True)
    evidence = models.JSONField(default=dict)
    evidence_signature = models.CharField(max_length=64, blank=True, default="")
    product_updated_at = models.DateTimeField()  # product version that was scored
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    needs_second_review = models.BooleanField(default=False)
    first_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    second_review_agrees = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FlagQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "run"], name="flag_unique_product_per_run"),
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1), name="flag_confidence_in_unit_interval"
            ),
        ]
        indexes = [
            models.Index(fields=["queue", "status", "-priority"], name="flag_queue_order"),
            # second reviews are few: the queue page's agreement figure reads them without a scan
            models.Index(fields=["second_review_agrees"], name="flag_second_reviewed",
                         condition=models.Q(second_review_agrees__isnull=False)),
        ]

    def __str__(self):
        return f"flag #{self.pk} {self.product.external_id} ({self.status})"


class Decision(models.Model):
    """Immutable record of a reviewer action. Undo is a new row that `reverts` an earlier one."""

    class Action(models.TextChoices):
        ACCEPT = "accept"
        REJECT = "reject"
        REASSIGN = "reassign"
        DEFER = "defer"
        COMMENT = "comment"
        UNDO = "undo"

    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="decisions")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="decisions")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions")
    action = models.CharField(max_length=20, choices=Action.choices)
    from_category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    flag_status_before = models.CharField(max_length=20)
    note = models.TextField(blank=True, default="")
    is_second_review = models.BooleanField(default=False)
    reverts = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reverted_by"
    )
    # the decisions of one bulk accept / reject share it, so one undo reverts them together
    batch = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.action} by {self.reviewer} on {self.product.external_id}"


class Score(models.Model):
    """The latest audit score of every product for a run (flagged or not): what export_audit writes.

    Derived data, rewritten whole by every audit of the run (a million rows at a million products), so its
    foreign keys carry no database constraint and only the product has an index of its own (the run's is the
    unique index's first column): the checks and indexes tripled the cost of a row (200,000 rows 6.3 s
    against 2.1 s on the 2-core CPU). Deleting through Django still cascades (run, product) and clears
    (label, suggested), as `on_delete` says."""

    run = models.ForeignKey(QuantizerRun, on_delete=models.CASCADE, related_name="scores", db_constraint=False,
                            db_index=False)
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="scores", db_constraint=False)
    label = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              db_constraint=False, db_index=False)
    suggested = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                  db_constraint=False, db_index=False)
    confidence = models.FloatField()
    # the scorer's uncalibrated score; the confidence is strictly increasing in it (null: scored before it was kept)
    raw_score = models.FloatField(null=True, blank=True)
    flagged = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "product"], name="score_unique_product_per_run")]
