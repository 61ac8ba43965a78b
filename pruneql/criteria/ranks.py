"""Spearman rank correlation, the measure of Molchanov et al.'s criteria study."""
from __future__ import annotations

import numpy as np


def ranks(values) -> np.ndarray:
    """1-based ranks, ties sharing their average rank.

    >>> ranks([3.0, 1.0, 3.0, 2.0]).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.r_[0, np.nonzero(np.diff(ordered))[0] + 1]
    ends = np.r_[starts[1:], len(values)]
    found = np.empty(len(values))
    for start, end in zip(starts, ends):
        found[order[start:end]] = (start + 1 + end) / 2.0
    return found


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); 0.0 if either is constant.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 40]), spearman([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    >>> round(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 6)
    0.948683
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"spearman needs equal lengths, got {a.size} and {b.size}")
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    ra, rb = ranks(a) - (a.size + 1) / 2.0, ranks(b) - (b.size + 1) / 2.0
    denom = np.sqrt(np.sum(ra * ra) * np.sum(rb * rb))
    return float(np.sum(ra * rb) / denom) if denom > 0 else 0.0
