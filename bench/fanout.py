"""Embedding throughput of the chunked `embed` job with 1, 2 and 4 Celery workers; with `--job pipeline`, the
`pipeline` job of both flavors (a chunk a flavor) with 1 and 2; with `--job audit`, the `audit` job of one run (a
chunk a fold classifier); with `--job train`, the `train` job of one run (a chunk a block of its neighbour
searches).

    .venv/bin/python bench/fanout.py [--n 8000] [--chunk-size 1000] [--workers 1 2 4] [--runs 3]
    .venv/bin/python bench/fanout.py --job pipeline --n 1000 --workers 1 2 [--config '{"epochs": 20}']
    .venv/bin/python bench/fanout.py --job audit --n 4000 --workers 1 2 4 [--config '{"epochs": 20}']
    .venv/bin/python bench/fanout.py --job train --n 40000 --workers 1 2 [--config '{"epochs": 5}']

A generated catalog (`catalog.demo.generate_demo_catalog` scaled to --n products) is imported into a fresh
database; for each worker count, that many real Celery workers are started (each `--pool solo`, one process,
`OMP_NUM_THREADS=1`: one torch thread) and the precision flavor is embedded --runs times through the job
(`start_job(kind="embed")`: plan, chunks on the workers, the chord's callback builds the index), every
vector deleted before each run so all are encoded. Printed per worker count: the median run's wall time
(queued to succeeded) and products/s, every run's time, the chunks each worker took, and the load average
around the runs (this machine is shared). A warm-up job first loads the encoder in every worker.
`--job pipeline`: every run and vector deleted before each run, then one `pipeline` job (embed, train, assign,
evaluate, audit; precision and discovery, seed 0, the recipe with `--config`'s overrides). `--job audit`: the
precision flavor embedded and one run trained in this process first (seed 0, `--config`'s overrides); then, each
run, the run's flags, scores and reports deleted and one `audit` job of it (plan, a chunk a fold classifier on the
workers, the finish scores, calibrates and writes). `--job train`: the precision flavor embedded in this process
first; each run, every run deleted, then one `train` job of a new run (seed 0, `--config`'s overrides, not
activated: no run warm-starts another), its neighbour searches' blocks on the workers, the finish trains and codes.
Use its own SEMID_HOME (its embedded Redis then holds nobody else's queue).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import ROOT, fresh_database  # noqa: E402

DATABASE = "semid_bench_fanout"


def spawn_workers(count: int, log_dir: Path) -> list[tuple[subprocess.Popen, str]]:
    """`count` real workers on the heavy queue, one torch thread each; returns once all answer a ping."""
    from config.celery import app
    from jobs.runner import queue_for

    workers = []
    for i in range(count):
        hostname = f"fan{i}-{os.getpid()}@{os.uname().nodename}"
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "SEMID_DB_NAME": DATABASE,
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        with open(log_dir / f"fanout-worker-{i}.log", "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--concurrency", "1",
                 "--loglevel", "INFO", "--without-gossip", "--without-mingle", "-Q", queue_for("embed"),
                 "--hostname", hostname],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        workers.append((proc, hostname))
    deadline = time.monotonic() + 180
    for proc, hostname in workers:
        while not app.control.ping(timeout=0.5, destination=[hostname]):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_workers(workers)
                sys.exit(f"worker {hostname} did not start; see {log_dir}")
    return workers


def stop_workers(workers) -> None:
    for proc, _ in workers:
        proc.terminate()
    for proc, _ in workers:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def timed_job(kind: str, params: dict) -> tuple[float, object]:
    """One job through the workers: (seconds queued to succeeded, job); exits on a failed job."""
    from jobs.models import Job
    from jobs.runner import start_job

    started = time.perf_counter()
    job = start_job(kind=kind, params=params)
    while True:
        job.refresh_from_db()
        if job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED):
            break
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    if job.status != Job.Status.SUCCEEDED:
        sys.exit(f"job #{job.pk} failed: {job.message}")
    return elapsed, job


def embed_once(chunk_size: int, product_ids: list[int] | None = None) -> tuple[float, object]:
    """Every vector deleted, then one `embed` job through the workers."""
    from catalog.models import ProductEmbedding

    ProductEmbedding.objects.all().delete()
    params = {"flavors": ["precision"], "chunk_size": chunk_size}
    if product_ids is not None:
        params["product_ids"] = product_ids
    return timed_job("embed", params)


def pipeline_once(overrides: dict) -> tuple[float, object]:
    """Every run and vector deleted, then one `pipeline` job of both flavors."""
    from catalog.models import ProductEmbedding
    from quantizer.models import QuantizerRun

    QuantizerRun.objects.all().delete()
    ProductEmbedding.objects.all().delete()
    return timed_job("pipeline", {"flavors": ["precision", "discovery"], "seed": 0, "overrides": overrides})


def audit_once(run) -> tuple[float, object]:
    """The run's audit forgotten, then one `audit` job of it through the workers."""
    from audit.models import AuditReport, Flag, Score

    Flag.objects.filter(run=run).delete()
    Score.objects.filter(run=run).delete()
    AuditReport.objects.filter(run=run).delete()
    return timed_job("audit", {"run_id": run.pk})


def train_once(overrides: dict) -> tuple[float, object]:
    """Every run deleted, then one `train` job of a new precision run (not activated)."""
    from quantizer.models import QuantizerRun
    from quantizer.services import create_run

    QuantizerRun.objects.all().delete()
    run = create_run(flavor="precision", seed=0, overrides=overrides)
    return timed_job("train", {"run_id": run.pk, "activate": False})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8000, help="products in the generated catalog")
    parser.add_argument("--chunk-size", type=int, default=1000,
                        help="products a chunk (8 chunks at 8,000: 1, 2 and 4 workers get equal shares)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--job", choices=["embed", "pipeline", "audit", "train"], default="embed")
    parser.add_argument("--config", default="{}",
                        help="--job pipeline / audit / train: the runs' recipe overrides (JSON)")
    args = parser.parse_args()
    import json

    overrides = json.loads(args.config)
    fresh_database(DATABASE)

    from catalog.demo import generate_demo_catalog, write_csv
    from catalog.models import Product
    from catalog.services import import_catalog
    from jobs.models import JobChunk

    log_dir = ROOT / "test-artifacts"
    log_dir.mkdir(exist_ok=True)
    path = write_csv(generate_demo_catalog(n_products=args.n, seed=0), log_dir / "fanout-catalog.csv")
    import_catalog(path=path)
    products = Product.objects.count()
    audited = None
    if args.job == "audit":
        from catalog.embeddings import embed_products
        from quantizer.services import create_run, train_run

        embed_products(flavor="precision")
        audited = train_run(run=create_run(flavor="precision", seed=0, overrides=overrides))
    elif args.job == "train":
        from catalog.embeddings import embed_products

        embed_products(flavor="precision")
    chunks = {"pipeline": "2 chunks (a flavor each)", "audit": "a chunk a fold classifier",
              "train": "a chunk a block of a neighbour search"}.get(
        args.job, f"{-(-products // args.chunk_size)} chunks of {args.chunk_size}")
    print(f"{args.job} job: {products} products, {chunks}; {os.cpu_count()} cores; runs: {args.runs} per worker count")
    rows = []
    for count in args.workers:
        workers = spawn_workers(count, log_dir)
        try:
            if args.job not in ("audit", "train"):  # (they read no encoder; this warm-up deletes every vector)
                warm = list(Product.objects.order_by("id").values_list("id", flat=True)[: 8 * count])
                embed_once(8, warm)  # warm-up: a chunk of 8 products per worker loads its encoder
            load_before = os.getloadavg()[0]
            times, took, rebuilt = [], Counter(), set()
            for _ in range(args.runs):
                if args.job == "pipeline":
                    elapsed, job = pipeline_once(overrides)
                elif args.job == "audit":
                    elapsed, job = audit_once(audited)
                elif args.job == "train":
                    elapsed, job = train_once(overrides)
                else:
                    elapsed, job = embed_once(args.chunk_size)
                    rebuilt.add(job.result["precision"]["index_rebuilt"])
                times.append(elapsed)
                took.update(JobChunk.objects.filter(job=job).values_list("worker", flat=True))
            load_after = os.getloadavg()[0]
        finally:
            stop_workers(workers)
        median = statistics.median(times)
        shares = "/".join(str(took[h]) for _, h in workers)
        rows.append((count, median, products / median, times, shares, load_before, load_after))
        print(f"{count} worker(s): median {median:.1f} s, {products / median:.1f} products/s; runs "
              f"{', '.join(f'{t:.1f}' for t in times)} s; chunks per worker {shares}; "
              f"load average {load_before:.1f} -> {load_after:.1f}"
              + (f"; index dropped and rebuilt: {rebuilt}" if args.job == "embed" else ""), flush=True)

    base = rows[0][2]
    print("\n| workers | wall time (median of %d) | products/s | speed-up | runs (s) | chunks per worker | "
          "load average (1 min, before → after) |" % args.runs)
    print("|---|---|---|---|---|---|---|")
    for count, median, rate, times, shares, before, after in rows:
        print(f"| {count} | {median:.1f} s | {rate:.1f} | {rate / base:.2f}x | {', '.join(f'{t:.1f}' for t in times)} "
              f"| {shares} | {before:.1f} → {after:.1f} |")


if __name__ == "__main__":
    main()
