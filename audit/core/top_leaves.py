"""A distribution over leaves kept as each row's few most probable leaves: what an audit of a million
products can hold (the whole (N, K) array is 3.7 GiB per signal at 960 leaves).

Exact for everything the audit reads of a distribution: the label's probability and the best leaves
other than the label, as long as fewer than ``k`` of them are asked for (suggestion: 1, evidence: 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TOP_LEAVES = 16  # leaves kept per row: the evidence reads 3 besides the label


@dataclass
class TopLeaves:
    leaves: np.ndarray  # (N, k) int64, most probable first; ties: the lower leaf first (as a stable sort)
    probs: np.ndarray  # (N, k) float32, their probabilities
    label_prob: np.ndarray  # (N,) float32, the probability of the row's label (of leaf 0 where unlabelled)
    n_leaves: int  # K, the leaves of the whole distribution

    @classmethod
    def of(cls, probs: np.ndarray, labels: np.ndarray, k: int = TOP_LEAVES, chunk: int = 8192,
           device: str = "cpu") -> "TopLeaves":
        """The top ``k`` (at most K) of each row of ``probs`` (R, K), non-negative, and of ``labels`` (R,);
        `chunk` rows at a time on ``device`` (``of_rows``)."""
        n, n_leaves = probs.shape
        out = cls.empty(n, n_leaves, k)
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            out.put(rows, cls.of_rows(torch.as_tensor(np.ascontiguousarray(probs[rows], np.float32), device=device),
                                      torch.as_tensor(labels[rows], device=device), k))
        return out

    @classmethod
    def of_rows(cls, probs: torch.Tensor, labels: torch.Tensor, k: int = TOP_LEAVES) -> "TopLeaves":
        """``of`` for rows held as a float32 tensor (R, K) with their labels (R,) on one device; the same leaves
        on any device: every key is distinct."""
        n, n_leaves = probs.shape
        k = min(k, n_leaves)
        # A key per cell that orders like (probability, then the lower leaf): a non-negative float32's
        # bits order like its value, so the top k are exact, ties included, without a full sort.
        tie = torch.arange(n_leaves - 1, -1, -1, device=probs.device)
        key = probs.view(torch.int32).to(torch.int64) * n_leaves + tie  # (R, K)
        leaves = torch.topk(key, k, dim=1, sorted=True).indices
        label_prob = probs[torch.arange(n, device=probs.device), labels.clamp(min=0)]
        return cls(leaves.cpu().numpy(), probs.gather(1, leaves).cpu().numpy(), label_prob.cpu().numpy(), n_leaves)

    @classmethod
    def empty(cls, n: int, n_leaves: int, k: int = TOP_LEAVES) -> "TopLeaves":
        k = min(k, n_leaves)
        return cls(np.empty((n, k), np.int64), np.empty((n, k), np.float32), np.empty(n, np.float32), n_leaves)

    def put(self, rows: np.ndarray, part: "TopLeaves") -> None:
        self.leaves[rows], self.probs[rows], self.label_prob[rows] = part.leaves, part.probs, part.label_prob

    def rows(self, index) -> "TopLeaves":
        return TopLeaves(self.leaves[index], self.probs[index], self.label_prob[index], self.n_leaves)

    def where(self, mask: np.ndarray, other: "TopLeaves") -> "TopLeaves":
        """These rows, with ``other``'s where ``mask``."""
        return TopLeaves(np.where(mask[:, None], other.leaves, self.leaves),
                         np.where(mask[:, None], other.probs, self.probs),
                         np.where(mask, other.label_prob, self.label_prob), self.n_leaves)

    def best_others(self, labels: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(N, k) leaves other than each row's label, most probable first, and their probabilities;
        where fewer than k others exist, the label comes last, as after a stable sort with the label
        masked (``combine.best_other``)."""
        kept = self.leaves.shape[1]
        if k >= kept and kept < self.n_leaves:
            raise ValueError(f"{kept} leaves are kept a row: at most {kept - 1} others can be read, not {k}")
        is_label = self.leaves == np.asarray(labels)[:, None]
        order = np.argsort(is_label, axis=1, kind="stable")[:, :k]  # the label (if kept) moves last
        return np.take_along_axis(self.leaves, order, 1), np.take_along_axis(self.probs, order, 1)
