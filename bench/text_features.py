"""The audit's text features at scale: the TF-IDF matrices counted in one process and in several
(`audit.core.signals.tfidf_matrix`), beside scikit-learn's TfidfVectorizer (the reference they replace), then
the whole `text_features` (TF-IDF and the SVD). Texts: names and brands of the demo generator's catalog of N
products (no Django, no database: runs on the GPU machine as is). Checks that every worker count gives the
same matrices bit for bit, and the reference the same up to rounding.

    .venv/bin/python bench/text_features.py [--n 200000] [--workers 2] [--no-single] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.core.signals import TEXT_ANALYZERS, TEXT_MIN_DF, text_features, tfidf_matrix  # noqa: E402
from catalog.demo import generate_demo_catalog  # noqa: E402


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    out = function(*args, **kwargs)
    return out, round(time.perf_counter() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 16))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-single", action="store_true", help="skip the one-process count (the tests compare it)")
    args = parser.parse_args()
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [f"{r['name']} {r['brand']}" for r in generate_demo_catalog(n_products=args.n, seed=0).rows]
    figures = {"n": len(texts), "workers": args.workers, "cpus": os.cpu_count(), "seconds": {}}
    for analyzer in TEXT_ANALYZERS:
        name = analyzer.get("analyzer", "word")
        reference, t_ref = timed(TfidfVectorizer(**analyzer, min_df=TEXT_MIN_DF, sublinear_tf=True).fit_transform,
                                 texts)
        many, t_many = timed(tfidf_matrix, texts, analyzer, args.workers)
        row = {"scikit-learn": t_ref, f"{args.workers} processes": t_many}
        if not args.no_single:
            one, row["1 process"] = timed(tfidf_matrix, texts, analyzer, 1)
            assert all(np.array_equal(getattr(one, a), getattr(many, a)) for a in ("indptr", "indices", "data"))
        gap = float(abs(reference - many).max())
        assert gap < 1e-15, gap
        figures["seconds"][name] = {**row, "largest difference from scikit-learn": gap}
        print(f"{name:<8} " + "   ".join(f"{k} {v:.2f} s" for k, v in row.items())
              + f"   ({t_ref / t_many:.2f}x); off scikit-learn by {gap:.1e}", flush=True)
    _, t_all = timed(text_features, texts, workers=args.workers)
    figures["seconds"]["text_features"] = t_all
    print(f"text_features (TF-IDF in {args.workers} processes, then the SVD): {t_all:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
