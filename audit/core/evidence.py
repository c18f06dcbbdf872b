"""What a reviewer is shown beside a flag, and the category pairs the catalog cannot tell apart.

Arrays in, JSON-able lists and dicts out (category ids and product row indices; the Django side
turns them into paths and products).
"""

from __future__ import annotations

import numpy as np

from audit.core.noise import prefix_ranks

ISSUE_SIGNAL = "codes"  # the signal whose confusions are the taxonomy issues: what the codes merge
MIN_CLUSTER = 5  # members a code prefix needs to be shown as the product's cluster
SUGGESTIONS = 3  # categories offered on a flag, most probable first


class CodePrefixes:
    """Every code prefix's members, grouped once (a sort per level), so that the cluster evidence of tens of
    thousands of flags does not scan a million codes per flag and level."""

    def __init__(self, codes: np.ndarray):
        self.groups = prefix_ranks(codes)  # each level's prefix ids
        self.orders = [np.argsort(group, kind="stable") for group in self.groups]  # members in row order
        self.starts = [np.concatenate([[0], np.cumsum(np.bincount(group))]) for group in self.groups]

    def members(self, i: int, level: int) -> np.ndarray:
        """Rows sharing product ``i``'s first ``level`` codewords, ascending."""
        g = self.groups[level - 1][i]
        return self.orders[level - 1][self.starts[level - 1][g] : self.starts[level - 1][g + 1]]


def cluster_evidence(codes, labels, i: int, min_cluster: int = MIN_CLUSTER,
                     prefixes: CodePrefixes | None = None) -> dict:
    """The deepest code prefix of product ``i`` with at least ``min_cluster`` members (the product
    included), backing off to coarser levels, and its label make-up (top 5, unlabeled left out).
    ``prefixes``: the same ``codes`` grouped once, for many products (else a scan of ``codes``)."""
    codes = np.asarray(codes)
    labels = np.asarray(labels)
    for level in range(codes.shape[1], 0, -1):
        if prefixes is not None:
            members = prefixes.members(i, level)
        else:
            members = np.flatnonzero((codes[:, :level] == codes[i, :level]).all(axis=1))
        if len(members) >= min_cluster or level == 1:
            break
    member_labels = labels[members]
    values, counts = np.unique(member_labels[member_labels >= 0], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:5]
    return {
        "prefix": "_".join(str(int(c)) for c in codes[i, :level]),
        "level": int(level),
        "size": int(len(members)),
        "composition": [[int(values[j]), int(counts[j])] for j in order],
    }


def neighbour_evidence(neighbours: np.ndarray, sims: np.ndarray, label_ids: np.ndarray) -> list:
    """[[product index, cosine, label id], ...] of one product's nearest labelled products (its rows of
    the (N, k) neighbours and cosines), nearest first."""
    return [[int(j), round(float(s), 4), int(label_ids[j])] for j, s in zip(neighbours, sims) if j >= 0]


def taxonomy_issues(scores, *, top: int = 20, min_overlap: float = 0.0) -> list:
    """Category pairs the codes cannot tell apart, like cleanlab's ``find_overlapping_classes``.

    Joint of (given label a, ``ISSUE_SIGNAL``'s distribution b) over labelled products
    (``scores.confusion``); the overlap of a pair is joint[a, b] + joint[b, a]. Returns
    ``[(label_id_a, label_id_b, overlap, n), ...]`` with n the expected number of products of one
    filed where the other is predicted.
    """
    confusion = scores.confusion.copy()
    keep = scores.labels >= 0
    k = len(scores.leaf_ids)
    np.fill_diagonal(confusion, 0.0)
    sym = confusion + confusion.T
    joint = sym / max(int(keep.sum()), 1)
    a, b = np.triu_indices(k, 1)
    order = np.argsort(-joint[a, b])[:top]
    return [
        (int(scores.leaf_ids[a[j]]), int(scores.leaf_ids[b[j]]), float(joint[a[j], b[j]]), int(round(sym[a[j], b[j]])))
        for j in order
        if joint[a[j], b[j]] > min_overlap
    ]
