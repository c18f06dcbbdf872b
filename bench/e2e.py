"""A synthetic catalog of N products through the application, stage by stage: each stage's time and the
peak resident memory of this process while it ran.

    .venv/bin/python bench/e2e.py --n 10000 [--flavor precision] [--json PATH]
    .venv/bin/python bench/e2e.py --pages-only     # the pages again, on the last run's database
    bash bench/gpu/e2e.sh 1000000 --until embed     # on the GPU machine (carry .carry/minilm and .carry/app)
    bash bench/gpu/e2e.sh 1000000 --from train      # the next call, on the same warm machine: train, audit, pages
                                                    # (the audit runs with the training: --from audit is refused)

The catalog is the demo's generator scaled (`catalog.demo.generate_demo_catalog`: names, brands, sizes,
descriptions, a three-level grocery tree, 3% of labels moved; deterministic for a seed), written to CSV
and then, as the pipeline runs them: import (`import_catalog`), embed (`embed_products`, leaving a first
load's HNSW index), train + assign (`fit_run`: every product coded in memory, with the index built beside it by
`index_built_beside`, and the audit's texts read and counted beside it by `audit_texts`: `texts_wait_seconds` and
`index_wait_seconds` are how long the stage waited for each after training; the training and coding alone is the
run's `train_seconds`), audit (`run_audit` on the codes in memory, with `store_codes`
beside it writing the codes and their clusters, whose progress is kept as the steps of "codes":
`codes_wait_seconds` is how long the stage waited for it after the audit; then `evaluate_run`, the run's metrics
and churn, `evaluate_seconds`; then the run is activated),
and the pages a reviewer opens (queue, flag, product, cluster tree root and a level-1
prefix; median of 10 requests through Django's test client). Database `semid_bench_e2e` (emptied first)
on the embedded PostgreSQL unless DATABASE_URL. Memory is this process's resident size, sampled every
0.1 s (PostgreSQL's own is not counted).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402


class Stage:
    """Times a block and samples the process's resident memory while it runs."""

    def __init__(self, name: str, rows: list):
        self.name, self.rows = name, rows
        self.process = psutil.Process()

    def __enter__(self):
        self.peak = self.process.memory_info().rss
        self.running = True
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()
        self.started = time.perf_counter()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.1)

    def __exit__(self, *exc):
        seconds = time.perf_counter() - self.started
        self.running = False
        self.sampler.join()
        self.rows.append({"stage": self.name, "seconds": round(seconds, 1), "peak_rss_mib": round(self.peak / 2**20)})
        print(f"{self.name:<28} {seconds:8.1f} s   peak {self.peak / 2**20:7.0f} MiB", flush=True)


FIGURES_LOCK = threading.RLock()


class Steps:
    """A stage's progress messages, each with the seconds since the stage began, printed as they come and kept in
    the figures (written after each one, so a call cut at its time limit still says where the time went)."""

    def __init__(self, stage: str, figures: dict, save):
        self.stage, self.figures, self.save = stage, figures, save
        self.started, self.last = time.perf_counter(), None

    def __call__(self, done, total=1.0, message="", **_):
        message = message or f"{done / total:.0%}"
        if message == self.last:  # an encoder's batches report the same percent many times
            return
        self.last, seconds = message, round(time.perf_counter() - self.started, 1)
        print(f"  {seconds:8.1f} s  {message}", flush=True)
        with FIGURES_LOCK:  # the audit's and the codes' steps come from two threads
            self.figures.setdefault("steps", []).append([self.stage, seconds, message])
            self.save()


def page_times(paths: list[str], user, requests: int = 10) -> dict[str, float]:
    from django.test import Client

    client = Client()
    client.force_login(user)
    out = {}
    for path in paths:
        client.get(path)  # warm
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, (path, response.status_code)
        out[path] = round(1000 * statistics.median(times), 1)
    return out


def pages_of_last_run(rows: list) -> dict:
    from django.contrib.auth.models import User

    from audit.models import Flag
    from catalog.models import Product
    from quantizer.models import SemanticId

    flag = Flag.objects.order_by("-priority", "id").first()
    prefix = SemanticId.objects.filter(run=flag.run).values_list("codes", flat=True).first()[0]
    paths = ["/", f"/flags/{flag.pk}/", f"/products/{Product.objects.order_by('id').first().pk}/",
             "/clusters/", f"/clusters/?prefix={prefix}"]
    with Stage("pages (5 x 11 requests)", rows):
        pages = page_times(paths, User.objects.get(username="e2e-admin"))
    for path, ms in pages.items():
        print(f"  {path:<26} median {ms} ms")
    return pages


STAGES = ["import", "embed", "train", "audit"]  # import includes generating the catalog; audit, the pages


def device_name() -> str:
    """Where the stages that have a device ran: the GPU's name, or the CPU and its cores."""
    import os

    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--flavor", default="precision", choices=["precision", "discovery"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--pages-only", action="store_true", help="time the pages of the last run's database")
    parser.add_argument("--from", dest="start", choices=STAGES, default="import",
                        help="start at this stage, on the database an earlier run left (the rest of a run cut in calls)")
    parser.add_argument("--until", choices=STAGES, help="stop after this stage")
    args = parser.parse_args()

    rows: list[dict] = []
    if args.pages_only:
        _django.use_database("semid_bench_e2e")
        return pages_of_last_run(rows)
    stages = STAGES[STAGES.index(args.start) : STAGES.index(args.until or STAGES[-1]) + 1]
    if "audit" in stages and "train" not in stages:
        parser.error("the audit runs beside the writing of the codes the training holds in memory: --from train")
    if args.start == "import":
        _django.fresh_database("semid_bench_e2e")
    else:  # resume on the database an earlier call left (same machine, still there)
        _django.use_database("semid_bench_e2e")
    print(f"{args.n:,} products on {device_name()}: {', '.join(stages)}", flush=True)
    from django.contrib.auth.models import User

    from audit.runs import AuditInput, audit_texts, run_audit
    from catalog.demo import generate_demo_catalog, write_csv
    from catalog.embeddings import embed_products, index_built_beside
    from catalog.models import Product
    from catalog.services import import_catalog
    from config.database import done_beside
    from quantizer.services import activate_run, create_run, evaluate_run, fit_run, store_codes
    from tests.conftest import make_user

    figures = {"n": args.n, "flavor": args.flavor, "device": device_name(), "stages": rows}

    def save():
        if args.json:
            with FIGURES_LOCK:
                args.json.write_text(json.dumps(figures, indent=1))
    if "import" in stages:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "catalog.csv"
            with Stage("generate", rows):
                write_csv(generate_demo_catalog(n_products=args.n, seed=args.seed), path)
            with Stage("import", rows):
                result = import_catalog(path=path)
        save()
        assert result.created == args.n, result
    elif Product.objects.count() != args.n:
        sys.exit(f"--from {args.start}: the database holds {Product.objects.count():,} products, not {args.n:,}")
    if "embed" in stages:
        with Stage("embed", rows):
            embed_products(flavor=args.flavor, progress=Steps("embed", figures, save), build_index=False)
        save()
    if "train" in stages:
        with Stage("train + assign", rows):
            # as the pipeline does: a first load's index built and the audit's texts counted beside training
            with index_built_beside(args.flavor):
                with done_beside(audit_texts, flavor=args.flavor, name="audit-texts") as texts:
                    run = create_run(flavor=args.flavor, seed=args.seed)
                    trained = fit_run(run, progress=Steps("train", figures, save))
                    fitted = time.perf_counter()
                counted = time.perf_counter()
            index_wait = time.perf_counter() - counted
        rows[-1]["texts_wait_seconds"] = round(counted - fitted, 1)
        rows[-1]["index_wait_seconds"] = round(index_wait, 1)
        rows[-1]["train_seconds"] = round(run.train_seconds or 0.0, 1)
        save()
    if "audit" in stages:
        with Stage("audit", rows):
            # as the pipeline does: the codes and their clusters written beside the audit, then the evaluation
            with done_beside(store_codes, run, trained, progress=Steps("codes", figures, save), name="codes"):
                report = run_audit(run=run, given=AuditInput.of(trained, texts.result()),
                                   progress=Steps("audit", figures, save))
                audited = time.perf_counter()
            codes_wait = time.perf_counter() - audited
            evaluate_run(run, trained)
            evaluated = time.perf_counter()
            activate_run(run)
        rows[-1]["evaluate_seconds"] = round(evaluated - audited - codes_wait, 1)
        rows[-1]["codes_wait_seconds"] = round(codes_wait, 1)
        run.refresh_from_db()
        figures["spearman"] = run.metrics.get("spearman")
        save()
        if not User.objects.filter(username="e2e-admin").exists():
            make_user("e2e-admin", "admin", "e2e-pass-123")
        figures.update(pages_median_ms=pages_of_last_run(rows), flagged=report.stats.get("flagged"))
    print(json.dumps({k: v for k, v in figures.items() if k not in ("stages", "steps")}))
    save()

if __name__ == "__main__":
    main()
