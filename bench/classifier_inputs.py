"""How well the audit's classifier names a product's category from its inputs, on clean labels.

    .venv/bin/python bench/classifier_inputs.py [--dataset bigbasket] [--dims 0,128,256] [--device cpu]

Out-of-fold (5 folds) top-1 / top-3 of ``audit.core.scoring.classifier_probs`` with the embeddings
alone (dims 0) and with ``text_features`` (LSA of name and brand) of each size appended. This is the
evidence behind ``TEXT_DIMS``: the suggested fix can only be as good as the classifier that makes it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # after the repository: bench/audit.py is not audit/
import common  # noqa: E402

from audit.core.scoring import SignalParams, classifier_probs, product_words, text_features  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="bigbasket")
    parser.add_argument("--flavor", default="precision")
    parser.add_argument("--dims", default="0,128,256")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    ds = common.load_dataset(args.dataset)
    labels = ds.leaf.astype(np.int64)
    embeddings = common.embed_dataset(ds, args.flavor, args.device)
    texts = [product_words(r["name"], r["brand"]) for r in ds.records]
    codes = np.zeros((len(labels), 1), dtype=np.int64)  # no code prefixes in the classifier (the default)
    n_leaves = int(labels.max()) + 1
    print(f"{args.dataset}: {len(labels)} products, {n_leaves} leaves, {(labels < 0).sum()} uncategorized")
    print("| inputs | top-1 | top-3 | seconds |\n|---|---|---|---|")
    for dims in (int(d) for d in args.dims.split(",")):
        t0 = time.time()
        x = embeddings if dims == 0 else np.hstack([embeddings, text_features(texts, dims=dims)])
        p = classifier_probs(x, labels, n_leaves, codes, SignalParams(device=args.device))
        keep = labels >= 0
        top = np.argsort(-p[keep], axis=1)[:, :3]
        top1 = float((top[:, 0] == labels[keep]).mean())
        top3 = float((top == labels[keep, None]).any(1).mean())
        name = "embeddings" if dims == 0 else f"embeddings + LSA-{dims} of name and brand"
        print(f"| {name} | {top1:.3f} | {top3:.3f} | {time.time() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
