"""The train job fanned out over workers: its nearest-neighbour searches, most of training and coding a catalog
on a CPU (100,000 products on 2 cores: 72 s of the assignment's 76 s), are chunks any worker takes.

The plan (`train_plan`) reads what the run trains on and writes it into a folder of SEMID_HOME/train-searches,
which every worker shares (as it shares uploads), with the rows each exact search goes over
(`quantizer.core.training.neighbour_searches`: the neighbour term's over the training sample, the near-duplicate
groups' over the distinct embeddings); each block of a search's query rows is a chunk (`search_chunk`); the finish
(`finish_training`) is `train_run` with those neighbours: the same training, codes, metrics and activation as one
process (a block's sums are those of the whole search). Training itself is one task: its steps follow each other.
A residual k-means run, and a search over more rows than an exact search takes, make no chunks. On a GPU, where
the searches take seconds, the job is `train_run` in one process (`FAN_OUT_DEVICES`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from django.utils import timezone

from catalog.encoder import default_device
from jobs.folders import new_folder, remove_folder, save_arrays, save_result
from quantizer.core import exact_float32
from quantizer.core.neighbours import nearest_neighbours, search_blocks
from quantizer.core.training import neighbour_searches
from quantizer.models import QuantizerRun
from quantizer.services import Searched, TrainingData, _fail, _set, read_training_data, run_config, train_run

TRAIN_SEARCHES = "train-searches"  # the folder of SEMID_HOME where each fanned-out training keeps its inputs

# Where the train job fans out. On a GPU it trains in one process: at 200,000 products on an H100 the plan, its 7
# chunks and the finish took 67.6 s against `train_run`'s 59.6 s, the same codes (the searches are seconds there,
# the plan's folder 300 MiB; docs/performance.md, "The train job on a GPU").
FAN_OUT_DEVICES = ("cpu",)


def train_job(*, params: dict, user=None, progress=None):
    """The training of run `params["run_id"]`: its neighbour searches fanned out (`train_plan`) on CPU workers,
    `train_run` in this process on a GPU (`FAN_OUT_DEVICES`)."""
    run = QuantizerRun.objects.get(pk=params["run_id"])
    activate = params.get("activate", True)
    if default_device() in FAN_OUT_DEVICES:
        return train_plan(run, activate=activate, progress=progress)
    return _trained(train_run(run=run, progress=progress, activate=activate))


def train_plan(run: QuantizerRun, *, activate: bool = True, progress=None):
    """The training of `run` as chunks, one a block of an exact neighbour search's query rows; see the module."""
    from jobs.runner import Chunked

    if progress:
        progress(0.0, 1.0, "reading the embeddings")
    _set(run, status=QuantizerRun.Status.RUNNING, message="loading embeddings", progress=0.0)
    try:
        given = read_training_data(run)
        searches = {} if run.kind == QuantizerRun.Kind.RESIDUAL_KMEANS else neighbour_searches(
            given.vectors, run_config(run, given.vectors))
        folder = new_folder(TRAIN_SEARCHES, f"run-{run.pk}", kind="train")
        arrays = {"ids": given.ids, "embeddings": given.embeddings, "taxonomy": given.taxonomy}
        if given.vectors is not given.embeddings:  # the run reads an extra input beside the embeddings
            arrays["vectors"] = given.vectors
        save_arrays(folder, {**arrays, **{f"rows-{name}": search.rows for name, search in searches.items()}})
    except Exception as exc:
        _fail(run, exc)
        raise
    chunks = [{"search": name, "k": search.k, "start": start, "stop": stop}
              for name, search in searches.items() for start, stop in search_blocks(len(search.rows))]
    _set(run, message=f"{len(chunks)} neighbour searches to run")
    return Chunked(chunks=chunks, run_chunk="quantizer.fanout.search_chunk", finish="quantizer.fanout.finish_training",
                   cleanup="quantizer.fanout.fail_training",
                   state={"run": run.pk, "folder": str(folder), "activate": activate})


def _vectors(folder: Path, mmap_mode=None) -> np.ndarray:
    name = "vectors" if (folder / "vectors.npy").exists() else "embeddings"
    return np.load(folder / f"{name}.npy", mmap_mode=mmap_mode)


def _found_file(chunk: dict) -> str:
    return f"found-{chunk['search']}-{chunk['start']}.npz"


def search_chunk(*, params: dict, state: dict, chunk: dict, progress=None) -> dict:
    """One chunk of `train_plan`: the neighbours of one block of a search's rows, written beside the plan's
    arrays."""
    folder = Path(state["folder"])
    if progress:
        progress(0.0, 1.0, f"neighbours of rows {chunk['start']:,} to {chunk['stop']:,} ({chunk['search']})")
    rows = np.load(folder / f"rows-{chunk['search']}.npy")
    x = torch.as_tensor(np.ascontiguousarray(_vectors(folder, mmap_mode="r")[rows], np.float32),
                        device=torch.device(default_device()))
    with exact_float32():
        idx, sims = nearest_neighbours(x, chunk["k"], rows=(chunk["start"], chunk["stop"]))
    save_result(folder / _found_file(chunk), idx=idx.cpu().numpy(), sims=sims.cpu().numpy())
    return chunk


def searched(folder: Path, results: list[dict]) -> Searched:
    """The neighbours the chunks found (their results, each its chunk), each search's blocks in order."""
    found: dict[str, list] = {}
    for chunk in sorted(results, key=lambda chunk: (chunk["search"], chunk["start"])):
        with np.load(folder / _found_file(chunk)) as saved:
            found.setdefault(chunk["search"], []).append((saved["idx"], saved["sims"]))
    whole = {name: (np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]))
             for name, blocks in found.items()}
    return Searched(train=whole["train"][0] if "train" in whole else None, groups=whole.get("groups"))


def finish_training(*, params: dict, state: dict, results: list[dict], progress=None) -> dict:
    """`train_run` on what the plan read, with the neighbours its chunks found; the folder goes after."""
    run = QuantizerRun.objects.get(pk=state["run"])
    folder = Path(state["folder"])
    embeddings = np.load(folder / "embeddings.npy")
    given = TrainingData(np.load(folder / "ids.npy"), embeddings,
                         _vectors(folder) if (folder / "vectors.npy").exists() else embeddings,
                         np.load(folder / "taxonomy.npy"))
    train_run(run=run, progress=progress, activate=state["activate"], given=given, searched=searched(folder, results))
    remove_folder(state)
    return _trained(run)


def _trained(run: QuantizerRun) -> dict:
    """The train job's result, whichever way it ran."""
    return {"run": run.pk, "metrics": run.metrics}


def fail_training(*, params: dict, state: dict) -> None:
    """A failed or abandoned train job: its run fails (unless it finished) and the plan's folder goes."""
    QuantizerRun.objects.filter(pk=state["run"], status__in=[QuantizerRun.Status.QUEUED, QuantizerRun.Status.RUNNING]
                                ).update(status=QuantizerRun.Status.FAILED, message="its training job failed; retry it",
                                         finished_at=timezone.now())
    remove_folder(state)
