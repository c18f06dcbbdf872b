"""The folders a fanned-out job's plan writes for its chunks and its finish to read (arrays as binary .npy): one a
job under SEMID_HOME/<root>/, which every worker shares (as it shares uploads). The plan's `cleanup` removes its
folder when the job ends, finished or failed, and when the job is found abandoned (`jobs.runner.fail_abandoned_jobs`);
a folder that outlived its job (a machine lost before the job could be failed) goes with the next plan of its kind
(`new_folder`'s sweep, after ORPHANED_AGE)."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings

# A folder older than this that no running job of its kind holds was left by a process that died before its job could
# be failed: the next plan removes it. No plan takes this long to write its folder.
ORPHANED_AGE = timedelta(days=1)


def new_folder(root: str, name: str, *, kind: str) -> Path:
    """A new, empty folder SEMID_HOME/<root>/<name>-<random> for a job of `kind`; orphaned folders of the root go
    first (`sweep_folders`)."""
    sweep_folders(root, kind=kind)
    folder = Path(settings.SEMID_HOME) / root / f"{name}-{uuid.uuid4().hex[:12]}"
    folder.mkdir(parents=True)
    return folder


def save_arrays(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Each array as <name>.npy in the folder; if any cannot be written (a full disk) the folder goes, so that no
    half-written folder stays behind."""
    try:
        for name, values in arrays.items():
            np.save(folder / f"{name}.npy", np.asarray(values))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def save_result(path: Path, **arrays: np.ndarray) -> None:
    """A chunk's arrays as one .npz, whole or not at all (a chunk run twice replaces its file)."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        np.savez(handle, **arrays)
    partial.rename(path)


def sweep_folders(root: str, *, kind: str) -> list[Path]:
    """Remove the folders of SEMID_HOME/<root> that no running job of `kind` holds (its plan's state "folder") and
    that were last written over ORPHANED_AGE ago; returns them."""
    from jobs.models import Job

    parent = Path(settings.SEMID_HOME) / root
    if not parent.is_dir():
        return []
    held = {(plan.get("state") or {}).get("folder") for plan in
            Job.objects.filter(kind=kind, status=Job.Status.RUNNING).values_list("plan", flat=True)}
    oldest = (datetime.now(UTC) - ORPHANED_AGE).timestamp()
    gone = [folder for folder in parent.iterdir()
            if folder.is_dir() and str(folder) not in held and folder.stat().st_mtime < oldest]
    for folder in gone:
        shutil.rmtree(folder, ignore_errors=True)
    return gone


def remove_folder(state: dict) -> None:
    """The plan's folder (`state["folder"]`), once its job is over."""
    if state.get("folder"):
        shutil.rmtree(state["folder"], ignore_errors=True)
