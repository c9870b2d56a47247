"""Tracklet descriptors: the quality-weighted mean of the unit features of a tracklet's boxes.

Tiny boxes and boxes mostly covered by another box of the same frame say little about a person's
appearance: they weigh 0 (:func:`box_quality`); the others weigh by how much of them is visible, and
each tracklet's descriptor is the weighted mean of its boxes' unit features, normalised
(:func:`tracklet_descriptors`).
"""

from __future__ import annotations

import numpy as np

from mtmct_reid.errors import ReIDError

#: Boxes lower than this (pixels) say little about a person's appearance.
DEFAULT_MIN_HEIGHT = 24.0
#: Boxes with more than this fraction of their area covered by another box are dropped.
DEFAULT_MAX_OVERLAP = 0.6


def box_quality(
    frames: np.ndarray,
    boxes: np.ndarray,
    *,
    min_height: float = DEFAULT_MIN_HEIGHT,
    max_overlap: float = DEFAULT_MAX_OVERLAP,
) -> np.ndarray:
    """Weight of each box of one camera in its tracklet's descriptor: the visible fraction of its
    area, 0 for boxes lower than ``min_height`` or covered more than ``max_overlap`` by one other
    box of the same frame.

    Args:
        frames: frame number per box [N].
        boxes: ``x, y, w, h`` per box [N, 4] (pixels).
        min_height: boxes lower than this get weight 0.
        max_overlap: boxes whose largest covered fraction exceeds this get weight 0.

    Returns:
        float64 [N] weights in [0, 1].

    Example:
        >>> box_quality(np.array([1, 1, 2]), np.array([[0, 0, 40, 80], [10, 0, 40, 80], [0, 0, 5, 10]]))
        array([0., 0., 0.])
        >>> box_quality(np.array([1, 1]), np.array([[0, 0, 40, 80], [30, 0, 40, 80]]))
        array([0.75, 0.75])
    """
    frames = np.asarray(frames)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = frames.shape[0]
    if boxes.shape[0] != n:
        raise ReIDError(f"box_quality: {boxes.shape[0]} boxes for {n} frame numbers")
    order = np.argsort(frames, kind="stable")
    f = frames[order]
    x0, y0 = boxes[order, 0], boxes[order, 1]
    x1, y1 = x0 + boxes[order, 2], y0 + boxes[order, 3]
    area = np.maximum(boxes[order, 2] * boxes[order, 3], 1e-9)
    sorted_covered = np.zeros(n)
    if n:
        # Boxes of one frame are neighbours after the sort: compare each with the one `shift` on.
        _, counts = np.unique(f, return_counts=True)
        for shift in range(1, int(counts.max())):
            a, b = np.arange(n - shift), np.arange(shift, n)
            same = f[a] == f[b]
            a, b = a[same], b[same]
            width = np.minimum(x1[a], x1[b]) - np.maximum(x0[a], x0[b])
            height = np.minimum(y1[a], y1[b]) - np.maximum(y0[a], y0[b])
            inter = np.clip(width, 0, None) * np.clip(height, 0, None)
            np.maximum.at(sorted_covered, a, inter / area[a])
            np.maximum.at(sorted_covered, b, inter / area[b])
    covered = np.empty(n)
    covered[order] = sorted_covered
    weights = np.clip(1.0 - covered, 0.0, 1.0)
    weights[(boxes[:, 3] < min_height) | (covered > max_overlap)] = 0.0
    return weights


def tracklet_descriptors(
    features: np.ndarray, tracklet: np.ndarray, weights: np.ndarray, num_tracklets: int
) -> np.ndarray:
    """Quality-weighted mean of the unit features of each tracklet's boxes, normalised.

    A tracklet whose boxes all have weight 0 (all tiny or covered) falls back to the plain mean of
    its boxes: a poor descriptor is better than none.

    Args:
        features: one feature per box [N, D].
        tracklet: tracklet index 0..T-1 per box [N].
        weights: weight per box [N] (e.g. :func:`box_quality`).
        num_tracklets: T.

    Returns:
        float32 [T, D] unit descriptors.

    Raises:
        ReIDError: a tracklet without any box.

    Example:
        >>> tracklet_descriptors(np.array([[1.0, 0], [0, 2], [0, 1]]), np.array([0, 0, 1]),
        ...                      np.array([1.0, 0.0, 1.0]), 2)
        array([[1., 0.],
               [0., 1.]], dtype=float32)
    """
    from scipy.sparse import csr_matrix

    features = np.asarray(features, dtype=np.float32)
    tracklet = np.asarray(tracklet, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    if (
        features.ndim != 2
        or tracklet.shape != (features.shape[0],)
        or weights.shape != tracklet.shape
    ):
        raise ReIDError(
            f"tracklet descriptors: {features.shape} features, {tracklet.shape} tracklet indices "
            f"and {weights.shape} weights do not match"
        )
    boxes_per = np.bincount(tracklet, minlength=num_tracklets)
    if boxes_per.size > num_tracklets or np.any(boxes_per == 0):
        empty = np.flatnonzero(boxes_per[:num_tracklets] == 0)
        which = int(empty[0]) if empty.size else int(tracklet.max())
        raise ReIDError(f"tracklet descriptors: tracklet {which} has no box (of {num_tracklets})")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.maximum(norms, 1e-12)
    total = np.bincount(tracklet, weights=weights, minlength=num_tracklets)
    weights = np.where(total[tracklet] > 0, weights, 1.0)
    matrix = csr_matrix(
        (weights, (tracklet, np.arange(tracklet.size))), shape=(num_tracklets, tracklet.size)
    )
    mean = np.asarray(matrix @ unit, dtype=np.float32)
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return mean
