"""The stop threshold of the association, chosen on labelled tracklets (a training period): the
merge height of the constrained average linkage whose labels have the best tracklet IDF1."""

from __future__ import annotations

import numpy as np

from mtmct_reid.mtmc.associate import Dendrogram


def tracklet_idf1(labels: np.ndarray, truth: np.ndarray, frames: np.ndarray) -> float:
    """Identity F1 of a labelling of tracklets, each weighing its number of frames: the share of
    frames whose predicted identity is matched (one-to-one, maximum overlap) to its true identity.
    Equal to the multi-camera IDF1 when the tracklets are the ground truth's own tracks.

    Args:
        labels: predicted identity per tracklet [T].
        truth: true identity per tracklet [T].
        frames: frames per tracklet [T].

    Example:
        >>> tracklet_idf1(np.array([0, 0, 1]), np.array([5, 6, 6]), np.array([10, 10, 10]))
        0.6666666666666666
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix

    labels = np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1)
    truth = np.unique(np.asarray(truth), return_inverse=True)[1].reshape(-1)
    frames = np.asarray(frames, dtype=np.float64)
    total = frames.sum()
    if total <= 0:
        return 0.0
    overlap = coo_matrix((frames, (labels, truth))).tocsr()
    overlap.sum_duplicates()
    dense = overlap.toarray()
    rows, cols = linear_sum_assignment(dense, maximize=True)
    return float(dense[rows, cols].sum() / total)


def threshold_grid(dendrogram: Dendrogram, size: int = 400) -> np.ndarray:
    """Thresholds worth trying on a dendrogram: cuts at (quantiles of) its merge linkages, where the
    labels change, and just above the highest one (no merge).

    Example:
        >>> threshold_grid(Dendrogram(3, np.array([0, 0]), np.array([1, 2]), np.array([0.8, 0.3])))
        array([0.3  , 0.8  , 0.801])
    """
    values = np.unique(dendrogram.linkage)
    if values.size > size:
        values = np.unique(np.quantile(values, np.linspace(0.0, 1.0, size)))
    top = values.max() if values.size else 0.5
    above = min(top + 1e-3, 0.5 * (top + 1.0))
    return np.append(values, above)


def choose_threshold(
    dendrogram: Dendrogram,
    truth: np.ndarray,
    frames: np.ndarray,
    grid: np.ndarray | None = None,
) -> tuple[float, float]:
    """The stop threshold with the best :func:`tracklet_idf1` on labelled tracklets.

    Args:
        dendrogram: merges of the labelled tracklets, built down to the grid's lowest value.
        truth: true identity per tracklet.
        frames: frames per tracklet.
        grid: thresholds tried (default :func:`threshold_grid`).

    Returns:
        (threshold, its IDF1); ties go to the highest threshold (fewest merges).

    Example:
        >>> d = Dendrogram(3, np.array([0, 0]), np.array([1, 2]), np.array([0.8, 0.3]))
        >>> choose_threshold(d, np.array([7, 7, 8]), np.ones(3))
        (0.8, 1.0)
    """
    if grid is None:
        grid = threshold_grid(dendrogram)
    best = (float(grid[-1]), -1.0)
    for value in sorted((float(v) for v in grid), reverse=True):
        score = tracklet_idf1(dendrogram.labels(value), truth, frames)
        if score > best[1] + 1e-12:
            best = (value, score)
    return best
