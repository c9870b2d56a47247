"""The evaluation protocol's rules, in one place: which gallery entries are junk, which are good.

Market-1501's rule, used by every re-identification benchmark since and by st-ReID: for a query,

* gallery entries with id ``-1`` (junk boxes) are ignored;
* gallery entries with the query's id seen by the query's own camera are ignored (finding the same
  person in the same camera is not re-identification);
* the good entries are the query's id (> 0) from another camera; id ``0`` (distractors) is never good.

A query without a good entry cannot be evaluated. The metrics, the dataset summary and person search all
ask this module, so the rule cannot drift between them. Features are compared by cosine similarity of
L2-normalised rows (:func:`normalise_rows`).
"""

from __future__ import annotations

import numpy as np

from mtmct_reid.data.records import JUNK_PID, Records

#: Rows normalised at once by :func:`normalise_rows`.
_NORM_BLOCK = 1024


def same_id_pairs(
    query_pids: np.ndarray, gallery_pids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(query row, gallery index) of every pair with the same id > 0, grouped by query row.

    Built from the gallery sorted by id, so the cost is the number of such pairs, not Q x G.

    Args:
        query_pids: [Q] query ids.
        gallery_pids: [G] gallery ids.

    Example:
        >>> rows, cols = same_id_pairs(np.array([5, 0]), np.array([5, 0, 5]))
        >>> rows.tolist(), cols.tolist()
        ([0, 0], [0, 2])
    """
    query_pids, gallery_pids = np.asarray(query_pids), np.asarray(gallery_pids)
    order = np.argsort(gallery_pids, kind="stable")
    sorted_pids = gallery_pids[order]
    lo = np.searchsorted(sorted_pids, query_pids, side="left")
    hi = np.searchsorted(sorted_pids, query_pids, side="right")
    counts = np.where(query_pids > 0, hi - lo, 0)
    rows = np.repeat(np.arange(len(query_pids)), counts)
    block_starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    cols = order[block_starts + np.arange(len(rows))]
    return rows, cols


def good_and_same_camera_pairs(
    query_pids: np.ndarray,
    query_cams: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_cams: np.ndarray,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The good (query row, gallery index) pairs, and the same-id same-camera pairs (junk).

    Together with the columns of id ``-1`` (:func:`junk_columns`), the second list is every ignored
    entry.

    Args:
        query_pids: [Q] query ids.
        query_cams: [Q] query cameras.
        gallery_pids: [G] gallery ids.
        gallery_cams: [G] gallery cameras.

    Returns:
        ``((good_rows, good_cols), (junk_rows, junk_cols))``, each grouped by query row.

    Example:
        >>> good, junk = good_and_same_camera_pairs(
        ...     np.array([7]), np.array([1]), np.array([7, 7, -1]), np.array([1, 2, 2]))
        >>> good[1].tolist(), junk[1].tolist()
        ([1], [0])
    """
    rows, cols = same_id_pairs(query_pids, gallery_pids)
    same_cam = np.asarray(gallery_cams)[cols] == np.asarray(query_cams)[rows]
    return (rows[~same_cam], cols[~same_cam]), (rows[same_cam], cols[same_cam])


def junk_columns(gallery_pids: np.ndarray) -> np.ndarray:
    """bool [G]: gallery entries that are junk for every query (id ``-1``).

    Example:
        >>> junk_columns(np.array([3, -1, 0])).tolist()
        [False, True, False]
    """
    return np.asarray(gallery_pids) == JUNK_PID


def ignored_for_query(
    query_pid: int, query_cam: int, gallery_pids: np.ndarray, gallery_cams: np.ndarray
) -> np.ndarray:
    """bool [G]: the gallery entries one query ignores (junk, and its own id in its own camera).

    Args:
        query_pid: the query's id (``<= 0``: unknown, only id ``-1`` entries are ignored).
        query_cam: the query's camera.
        gallery_pids: [G] gallery ids.
        gallery_cams: [G] gallery cameras.

    Example:
        >>> ignored_for_query(7, 1, np.array([7, 7, -1, 3]), np.array([1, 2, 1, 1])).tolist()
        [True, False, True, False]
    """
    ignored = junk_columns(gallery_pids)
    if query_pid > 0:
        ignored |= (np.asarray(gallery_pids) == query_pid) & (np.asarray(gallery_cams) == query_cam)
    return ignored


def valid_query_mask(
    query_pids: np.ndarray,
    query_cams: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_cams: np.ndarray,
) -> np.ndarray:
    """Which queries have at least one good gallery entry (their id > 0, from another camera).

    Needs labels only, so a caller can warn about (or refuse) queries without a valid match before
    computing any score.

    Args:
        query_pids: [Q] query ids.
        query_cams: [Q] query cameras.
        gallery_pids: [G] gallery ids.
        gallery_cams: [G] gallery cameras.

    Returns:
        [Q] bool.

    Example:
        >>> valid_query_mask(np.array([1, 2]), np.array([1, 1]), np.array([1, 2]), np.array([2, 1]))
        array([ True, False])
    """
    (good_rows, _), _ = good_and_same_camera_pairs(
        query_pids, query_cams, gallery_pids, gallery_cams
    )
    return np.bincount(good_rows, minlength=len(np.asarray(query_pids))) > 0


def queries_without_cross_camera_match(records: Records) -> np.ndarray:
    """Queries that evaluation skips: a real person (id > 0) never seen by another gallery camera.

    Evaluation drops gallery images of the query's own camera, so such a query has nothing left to
    find; on a custom dataset this is the usual reason for "no valid query" (``mtmct-reid dataset
    info`` warns about them).

    Args:
        records: a dataset with ``query`` and ``gallery`` rows.

    Returns:
        Row indices into ``records`` (int64, ascending) of those queries.

    Example:
        >>> r = Records.from_columns(["q", "g"], [1, 1], [1, 1], None, ["query", "gallery"])
        >>> queries_without_cross_camera_match(r).tolist()
        [0]
    """
    query_rows = np.flatnonzero(records.splits == "query")
    gallery = records.split("gallery")
    valid = valid_query_mask(
        records.pids[query_rows], records.cams[query_rows], gallery.pids, gallery.cams
    )
    return query_rows[(records.pids[query_rows] > 0) & ~valid].astype(np.int64)


def normalise_rows(features: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Rows divided by their Euclidean norm (float32); all-zero rows stay zero.

    Args:
        features: [N, D] rows.
        in_place: divide ``features`` itself when it is a writable float32 array (no copy).

    Example:
        >>> normalise_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
        array([[0.6, 0.8],
               [0. , 0. ]], dtype=float32)
    """
    features = np.asarray(features)
    if not (in_place and features.dtype == np.float32 and features.flags.writeable):
        features = np.array(features, dtype=np.float32, copy=True)
    tiny = np.finfo(np.float32).tiny
    # Block by block: a squared copy of all features would be as large as the features.
    for start in range(0, len(features), _NORM_BLOCK):
        block = features[start : start + _NORM_BLOCK]
        norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
        block /= np.maximum(norms, tiny).astype(np.float32)[:, None]
    return features
