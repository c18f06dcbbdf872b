"""The registry of job kinds: each app names the kinds of job it runs in its `AppConfig.ready()`.

Apart from `jobs.runner` (which runs them) so that the model can name a kind without importing the runner.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobKind:
    service: str  # dotted path of `fn(*, params, user, progress) -> dict`, imported when a job runs
    short: bool = False  # user-facing and quick: runs on the "<default queue>-short" queue (its own worker)
    label: str = ""  # how pages name it ("" : the kind, underscores as spaces)


JOB_KINDS: dict[str, JobKind] = {}


def register_job_kind(kind: str, service: str, *, short: bool = False, label: str = "") -> None:
    """Called from an app's `ready()`. Short kinds (an upload's import) never wait behind a training
    run or an audit. `label`: the kind's name on pages."""
    JOB_KINDS[kind] = JobKind(service=service, short=short, label=label)


def kind_label(kind: str) -> str:
    """The kind's `label`, or the kind with its underscores as spaces."""
    registered = JOB_KINDS.get(kind)
    return registered.label if registered and registered.label else kind.replace("_", " ")
