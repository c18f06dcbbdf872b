"""The train job fanned out (quantizer.fanout.train_plan): each block of its exact neighbour searches (the
neighbour term's, the near-duplicate groups') is a chunk that any worker takes; the finish trains and codes with
those neighbours, giving the codes, metrics and activation of `train_run` in one process, and the plan's folder
under SEMID_HOME goes once the job is over, finished or failed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from django.conf import settings

from catalog.demo import generate_demo_catalog, write_csv
from catalog.embeddings import embed_products
from catalog.services import import_catalog
from jobs.models import Job, JobChunk
from jobs.runner import run_chunks_here, start_job
from quantizer.core import neighbours
from quantizer.core.neighbours import nearest_neighbours
from quantizer.fanout import TRAIN_SEARCHES, train_plan
from quantizer.models import QuantizerRun, SemanticId
from quantizer.services import create_run, train_run
from tests.conftest import wait_for

FAST = {"epochs": 5}


def embedded(tmp_path, n_products: int = 400) -> None:
    write_csv(generate_demo_catalog(n_products=n_products, seed=6), tmp_path / "demo.csv")
    import_catalog(path=tmp_path / "demo.csv")
    embed_products(flavor="precision")


def outcome(run) -> tuple[dict, dict]:
    """The run's codes (code, token, reconstruction error) by product, and its metrics."""
    run.refresh_from_db()
    codes = {pk: (code, token, round(error, 6)) for pk, code, token, error in SemanticId.objects.filter(run=run)
             .values_list("product_id", "code", "token", "reconstruction_error")}
    return codes, run.metrics


def folders() -> list[Path]:
    root = Path(settings.SEMID_HOME) / TRAIN_SEARCHES
    return sorted(root.glob("*")) if root.exists() else []


def test_a_search_in_blocks_finds_the_neighbours_of_the_whole_search():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    x[7] = x[3]  # identical rows: ties
    whole = nearest_neighbours(x, 5, chunk=4)
    blocks = [nearest_neighbours(x, 5, chunk=4, rows=(start, min(start + 12, 50))) for start in range(0, 50, 12)]
    assert all(torch.equal(torch.cat([b[i] for b in blocks]), whole[i]) for i in range(2))
    with pytest.raises(ValueError, match="multiple of 4"):
        nearest_neighbours(x, 5, chunk=4, rows=(6, 12))
    with pytest.raises(ValueError, match="probing"):
        nearest_neighbours(x, 5, chunk=4, rows=(0, 12), exact_limit=10)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 128 rows (matmuls of 64): a 400-product catalog's searches are several chunks each."""
    monkeypatch.setattr(neighbours, "SEARCH_CHUNK", 64)
    monkeypatch.setattr(neighbours, "SEARCH_BLOCK", 128)


@pytest.mark.django_db
def test_the_planned_training_gives_the_codes_and_metrics_of_one_process(tmp_path, small_blocks):
    embedded(tmp_path)
    one_process = train_run(run=create_run(flavor="precision", overrides=FAST), activate=False)
    before = folders()

    run = create_run(flavor="precision", overrides=FAST)
    plan = train_plan(run)
    folder = Path(plan.state["folder"])
    assert folder.parent == Path(settings.SEMID_HOME) / TRAIN_SEARCHES and folder.is_dir()
    searched = {name: [(c["start"], c["stop"]) for c in plan.chunks if c["search"] == name]
                for name in ("train", "groups")}
    assert searched["train"] == [(0, 128), (128, 256), (256, 384), (384, 400)]
    distinct = len(np.load(folder / "rows-groups.npy"))
    assert searched["groups"][0] == (0, 128) and searched["groups"][-1][1] == distinct and len(plan.chunks) > 6
    result = run_chunks_here(plan, params={})

    assert result["run"] == run.pk
    codes, metrics = outcome(run)
    assert (codes, metrics) == outcome(one_process) and len(codes) == 400
    assert QuantizerRun.objects.get(pk=run.pk).is_active and run.status == QuantizerRun.Status.SUCCEEDED
    assert not folder.exists() and not set(folders()) - set(before)


@pytest.mark.django_db
def test_where_the_job_does_not_fan_out_it_trains_in_one_process(tmp_path, monkeypatch):
    """On a GPU (no device in FAN_OUT_DEVICES) the train job is `train_run` itself: no chunks, no folder."""
    import quantizer.fanout

    embedded(tmp_path, n_products=200)
    one_process = train_run(run=create_run(flavor="precision", overrides=FAST), activate=False)
    before = folders()
    monkeypatch.setattr(quantizer.fanout, "FAN_OUT_DEVICES", ())
    run = create_run(flavor="precision", overrides=FAST)

    result = quantizer.fanout.train_job(params={"run_id": run.pk, "activate": False})

    assert isinstance(result, dict) and result["run"] == run.pk and result["metrics"]
    codes, metrics = outcome(run)
    assert (codes, metrics) == outcome(one_process) and len(codes) == 200
    assert run.status == QuantizerRun.Status.SUCCEEDED and not run.is_active and folders() == before


@pytest.mark.django_db
def test_a_residual_kmeans_run_searches_nothing_apart(tmp_path):
    embedded(tmp_path, n_products=120)
    plan = train_plan(create_run(flavor="precision", kind=QuantizerRun.Kind.RESIDUAL_KMEANS))
    assert plan.chunks == []
    run_chunks_here(plan, params={})
    assert SemanticId.objects.filter(run_id=plan.state["run"]).count() == 120
    assert not Path(plan.state["folder"]).exists()


@pytest.mark.django_db
def test_a_failed_chunk_fails_the_run_and_its_folder_goes(tmp_path):
    embedded(tmp_path, n_products=120)
    run = create_run(flavor="precision", overrides=FAST)
    plan = train_plan(run)
    folder = Path(plan.state["folder"])
    np.save(folder / "rows-train.npy", np.array([0, 10_000]))  # rows the vectors do not have

    with pytest.raises(IndexError):
        run_chunks_here(plan, params={})
    run.refresh_from_db()
    assert run.status == QuantizerRun.Status.FAILED and not run.is_active and not folder.exists()
    assert not SemanticId.objects.filter(run=run).exists()



def test_the_train_job_over_two_workers_gives_the_codes_of_one_process(tmp_path, second_worker):
    embedded(tmp_path)
    before = folders()
    run = create_run(flavor="precision", overrides=FAST)
    job = start_job(kind="train", params={"run_id": run.pk, "activate": False})
    job = wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first(), timeout=600)

    assert job.status == "succeeded", (job.message, job.result)
    # 400 products: the neighbour term's search and the near-duplicate groups', a block each
    assert (job.chunks_total, job.chunks_done, job.progress) == (2, 2, 1.0)
    assert sorted(JobChunk.objects.filter(job=job).values_list("params__search", flat=True)) == ["groups", "train"]
    assert job.result["run"] == run.pk and not set(folders()) - set(before)
    fanned_out = outcome(run)

    again = train_run(run=create_run(flavor="precision", overrides=FAST), activate=False)
    assert outcome(again) == fanned_out and len(fanned_out[0]) == 400
