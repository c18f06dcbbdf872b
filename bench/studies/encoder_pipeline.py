"""Where the GPU encoder's time goes, and whether tokenizing beside the model pays (issue 18's embed goal).

The demo generator's N products' precision texts, sorted by length, encoded by the default model as the
application loads it (`catalog.encoder.load_encoder`: fp16 where the carried folder is fp16): bare
`SentenceTransformer.encode` at batch 256 (what `encode_texts` calls), its tokenization alone, and a loop
that tokenizes the next batches on a thread pool while the model runs the current one, and k encoder processes
(`catalog.encoder.EncoderProcesses`, each with its own model) taking chunks of 5,000 texts as the embed step
hands them out, k at once (the vectors checked against bare `encode`'s). Minimum of two runs each. On the GPU
machine, carry [".carry/minilm", ".carry/app"]:

    tar -xJf .carry/app/appsite.tar.xz -C /tmp
    PYTHONPATH=/tmp/appsite:. SEMID_EMBEDDING_MODEL=$PWD/.carry/minilm python3 bench/studies/encoder_pipeline.py 200000
"""

import csv
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from catalog.demo import generate_demo_catalog, write_csv  # noqa: E402
from catalog.encoder import DEFAULT_MODEL, EncoderProcesses, default_device, load_encoder  # noqa: E402
from catalog.text.builders import precision_text  # noqa: E402


def demo_texts(n: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        write_csv(generate_demo_catalog(n_products=n, seed=0), Path(tmp) / "c.csv")
        with open(Path(tmp) / "c.csv", newline="") as f:
            texts = [precision_text(row) for row in csv.DictReader(f)]
    return sorted(texts, key=len, reverse=True)


def timed(name: str, texts: list[str], fn, reps: int = 2):
    seconds = []
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(reps):
        sync()
        started = time.perf_counter()
        out = fn()
        sync()
        seconds.append(time.perf_counter() - started)
    best = min(seconds)
    print(f"{name:45s} {best:7.2f} s  {len(texts) / best:9.0f} texts/s  ({', '.join(f'{s:.2f}' for s in seconds)})",
          flush=True)
    return out


def main(n: int) -> None:
    texts = demo_texts(n)
    model = load_encoder(os.environ.get("SEMID_EMBEDDING_MODEL", DEFAULT_MODEL))
    print(f"{len(texts)} texts, {np.mean([len(t) for t in texts]):.1f} characters on average; "
          f"model in {next(model.parameters()).dtype}", flush=True)

    def bare(batch):
        return lambda: model.encode(texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)

    def tokenize_only(batch):
        return lambda: [model.tokenize(texts[i : i + batch]) for i in range(0, len(texts), batch)]

    def tokenized_beside(batch, workers):
        def run():
            batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
            dimension = (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
            out = np.empty((len(texts), dimension), np.float32)
            start = 0
            with ThreadPoolExecutor(workers) as pool, torch.inference_mode():
                for features in pool.map(model.tokenize, batches):
                    features = {k: v.to(model.device, non_blocking=True) if torch.is_tensor(v) else v
                                for k, v in features.items()}
                    vectors = torch.nn.functional.normalize(model(features)["sentence_embedding"].float(), dim=1)
                    out[start : start + len(vectors)] = vectors.cpu().numpy()
                    start += len(vectors)
            return out
        return run

    reference = timed("bare encode, batch 256", texts, bare(256))
    timed("bare encode, batch 1024", texts, bare(1024))
    timed("tokenize only, batch 256", texts, tokenize_only(256))
    for batch, workers in ((256, 1), (256, 4), (1024, 8)):
        out = timed(f"tokenized beside, batch {batch}, {workers} thread(s)", texts, tokenized_beside(batch, workers))
    print(f"tokenized beside vs bare encode: min cosine {float((out * reference).sum(1).min()):.6f}")

    def in_processes(pool, chunk=5000):
        def run():
            out, pending = [], []
            for start in range(0, len(texts), chunk):
                pending.append(pool.submit(texts[start : start + chunk], batch_size=256))
                if len(pending) > pool.processes:
                    out.append(pending.pop(0).result())
            return np.concatenate(out + [p.result() for p in pending])
        return run

    name = os.environ.get("SEMID_EMBEDDING_MODEL", DEFAULT_MODEL)
    for processes in (1, 2, 4):
        with EncoderProcesses(name, default_device(), processes) as pool:
            started = time.perf_counter()
            for future in [pool.submit(["warm up"]) for _ in range(processes)]:
                future.result()
            print(f"{processes} encoder process(es) started in {time.perf_counter() - started:.1f} s", flush=True)
            out = timed(f"{processes} encoder process(es), chunks of 5,000", texts, in_processes(pool))
        print(f"  vs bare encode: min cosine {float((out * reference).sum(1).min()):.6f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
