"""Transitional: the audit run moved to `audit.runs`, the review workflow to `audit.review` (`claims`,
`decisions`). Only `pipeline.services` and the "audit" job kind (registered in `audit.apps`) still name this
module; delete it once they name `audit.runs.run_audit` and `audit.runs.audit_job`."""

from audit.runs import audit_job, run_audit

__all__ = ["audit_job", "run_audit"]
