"""Pure numpy/PyTorch core of the baskets app: no Django imports here (the benchmarks run it on a bare GPU box).

- ``copurchase``: the minimum support and co-purchase counts / lift of products in orders (arrays).
- ``nextitem``: the generative next-item model over semantic IDs (TIGER-style), its prefix trie and the
  constrained beam search; SASRec and the count baselines it is measured against.
"""
