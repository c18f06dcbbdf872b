"""How well the audit's classifier names a product's category from its inputs, on clean labels.

    .venv/bin/python bench/studies/classifier_inputs.py [--dataset bigbasket] [--dims 0,128,256] [--device cpu]
        [--sparse-decay 1e-5]

Out-of-fold (5 folds) top-1 / top-3 of ``audit.core.signals.classifier_probs`` with the embeddings
alone (dims 0) and with ``text_features`` (LSA of name and brand) of each size appended. This is the
evidence behind ``TEXT_DIMS``: the suggested fix can only be as good as the classifier that makes it.
``--sparse-decay`` adds a row for the alternative not shipped: softmax regression on the embeddings and
the full sparse TF-IDF (the same terms as ``text_features``, no SVD), with that L2 weight on the terms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository
# bench/ (common.py) after the repository: bench/audit.py is not the audit app
sys.path.append(str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

from audit.core.scoring import ScoringConfig  # noqa: E402
from audit.core.signals import (  # noqa: E402
    classifier_probs, product_words, stratified_folds, text_features,
)


def sparse_probs(embeddings, texts, labels, n_leaves, decay, seed=0, n_folds=5, iters=100):
    """Out-of-fold probabilities of a softmax regression on [embeddings, full TF-IDF of the texts]."""
    import torch
    import torch.nn.functional as F
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    terms = hstack([
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(texts),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True).fit_transform(texts),
    ]).tocsr().astype(np.float32)
    print(f"  full TF-IDF: {terms.shape[1]} terms, {terms.nnz / terms.shape[0]:.0f} per product", flush=True)

    def csr(m):
        return torch.sparse_csr_tensor(m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data, m.shape)

    keep = np.flatnonzero(labels >= 0)
    folds = stratified_folds(labels[keep], n_folds, np.random.default_rng(seed))
    out = np.zeros((len(labels), n_leaves), np.float32)
    for f in range(n_folds):
        train, test = keep[folds != f], keep[folds == f]
        dense = torch.from_numpy(embeddings[train])
        mean, std = dense.mean(0), dense.std(0) + 1e-6
        xs, xd, y = csr(terms[train]), (dense - mean) / std, torch.from_numpy(labels[train])
        ws = torch.zeros(terms.shape[1], n_leaves, requires_grad=True)
        wd = torch.zeros(embeddings.shape[1], n_leaves, requires_grad=True)
        b = torch.zeros(n_leaves, requires_grad=True)
        opt = torch.optim.LBFGS([ws, wd, b], lr=1, max_iter=iters, history_size=10, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = xs @ ws + xd @ wd + b
            loss = F.cross_entropy(logits, y) + decay * (ws * ws).sum() + 1e-3 * (wd * wd).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            logits = csr(terms[test]) @ ws + ((torch.from_numpy(embeddings[test]) - mean) / std) @ wd + b
            out[test] = torch.softmax(logits, 1).numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="bigbasket")
    parser.add_argument("--flavor", default="precision")
    parser.add_argument("--dims", default="0,128,256")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sparse-decay", type=float, default=None)
    args = parser.parse_args()
    ds = common.load_dataset(args.dataset)
    labels = ds.leaf.astype(np.int64)
    embeddings = common.embed_dataset(ds, args.flavor, args.device)
    texts = [product_words(r["name"], r["brand"]) for r in ds.records]
    n_leaves = int(labels.max()) + 1
    print(f"{args.dataset}: {len(labels)} products, {n_leaves} leaves, {(labels < 0).sum()} uncategorized")
    print("| inputs | top-1 | top-3 | seconds |\n|---|---|---|---|")
    for dims in (int(d) for d in args.dims.split(",")):
        t0 = time.time()
        x = embeddings if dims == 0 else np.hstack([embeddings, text_features(texts, dims=dims)])
        p = classifier_probs(x, labels, n_leaves, n_folds=ScoringConfig.n_folds, seed=0, device=args.device,
                             weight_decay=1e-3)  # the value its figures were measured with
        keep = labels >= 0
        top = np.argsort(-p[keep], axis=1)[:, :3]
        top1 = float((top[:, 0] == labels[keep]).mean())
        top3 = float((top == labels[keep, None]).any(1).mean())
        name = "embeddings" if dims == 0 else f"embeddings + LSA-{dims} of name and brand"
        print(f"| {name} | {top1:.3f} | {top3:.3f} | {time.time() - t0:.0f} |", flush=True)
    if args.sparse_decay is not None:
        t0 = time.time()
        p = sparse_probs(embeddings, texts, labels, n_leaves, args.sparse_decay)
        keep = labels >= 0
        top = np.argsort(-p[keep], axis=1)[:, :3]
        top1 = float((top[:, 0] == labels[keep]).mean())
        top3 = float((top == labels[keep, None]).any(1).mean())
        print(f"| embeddings + full TF-IDF (L2 {args.sparse_decay:g}) | {top1:.3f} | {top3:.3f} | {time.time() - t0:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
