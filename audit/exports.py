"""The audit's CSV exports: every scored product of a run, and the review decisions. The rows are
written through ``catalog.exports`` (cells that a spreadsheet would run as formulas are neutralised)."""

from __future__ import annotations

from collections.abc import Iterator

from audit.models import Decision, Score
from quantizer.models import QuantizerRun

AUDIT_HEADER = ["external_id", "label_path", "suggested_path", "confidence", "flagged"]
DECISION_HEADER = ["decided_at", "reviewer", "action", "external_id", "product", "from_path", "to_path", "flag",
                   "queue", "flavor", "second_review", "undone", "batch", "note"]


def audit_rows(*, run: QuantizerRun) -> Iterator[list]:
    """One row per scored product of the run (AUDIT_HEADER), by external id."""
    rows = (
        Score.objects.filter(run=run)
        .order_by("product__external_id")
        .values_list("product__external_id", "label__path", "suggested__path", "confidence", "flagged")
    )
    for external_id, label, suggested, confidence, flagged in rows.iterator(chunk_size=5000):
        # repr of the float: as many distinct values as the scorer's raw score (the ranking survives)
        yield [external_id, label or "", suggested or "", repr(confidence), int(flagged)]


def decision_rows() -> Iterator[list]:
    """Every review decision, oldest first (DECISION_HEADER); an undo is a row of its own."""
    rows = (
        Decision.objects.order_by("created_at", "id")
        .values_list("created_at", "reviewer__username", "action", "product__external_id", "product__name",
                     "from_category__path", "to_category__path", "flag_id", "flag__queue", "flag__run__flavor",
                     "is_second_review", "reverted_by", "batch", "note")
    )
    for (at, reviewer, action, external_id, name, from_path, to_path, flag, queue, flavor, second, reverted_by,
         batch, note) in rows.iterator(chunk_size=5000):
        yield [at.isoformat(timespec="seconds"), reviewer, action, external_id, name, from_path or "", to_path or "",
               flag, queue, flavor, int(second), int(reverted_by is not None), str(batch) if batch else "", note]
