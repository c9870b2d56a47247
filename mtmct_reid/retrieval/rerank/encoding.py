"""k-reciprocal encoding, query expansion and the Jaccard distance (Zhong et al., CVPR 2017), sparse.

The classic code fills a dense N x N encoding ``V`` and scans its columns. Here ``V`` is a sparse
matrix with a few ``k1`` non-zeros per row, query expansion is a sparse product, and the Jaccard term
is computed for query rows against gallery columns only, from the columns of ``V``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse
from tqdm import tqdm

from mtmct_reid.retrieval.rerank.neighbours import NeighbourTable

# Temporaries are kept well below glibc's largest mmap threshold (32 MiB): bigger ones are fresh
# mappings every time, and first-touch page faults are slow on virtual machines.
#: Upper bound on (query, gallery, feature) triples expanded at once in the Jaccard step.
JACCARD_TRIPLES = 262_144
#: Upper bound on the bytes of the float64 Jaccard accumulator of one query chunk.
JACCARD_BYTES = 8 << 20

#: ``raw_distances(rows, cols)``: float32 distances (before normalisation) of the given sample pairs.
PairDistances = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    position = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[position] == keys


def _reciprocal(neighbours: np.ndarray) -> np.ndarray:
    """``mask[i, p]``: sample ``i`` is itself among the neighbours of its neighbour ``neighbours[i, p]``."""
    n = len(neighbours)
    own = np.arange(n, dtype=np.int64)[:, None]
    keys = np.sort((own * n + neighbours).ravel())
    return _contains(keys, neighbours * n + own)


def expansion_pairs(index: np.ndarray, k1: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every non-zero of the encoding: each sample's expanded reciprocal set.

    R(i): the k1-reciprocal neighbours of i. For each c in R(i), its round(k1/2)-reciprocal set R'(c)
    joins the expansion when more than 2/3 of R'(c) lies in R(i). Pairs are sorted by (row, column).

    Args:
        index: int64 [N, >= k1 + 1] each sample's nearest samples, nearest first (itself first).
        k1: size of the reciprocal neighbourhood.
        block: rows expanded at once.

    Example:
        >>> index = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0]])
        >>> rows, cols = expansion_pairs(index, 1)
        >>> rows.tolist(), cols.tolist()
        ([0, 0, 1, 1, 2], [0, 1, 0, 1, 2])
    """
    n = len(index)
    forward = index[:, : k1 + 1]
    half = index[:, : int(np.around(k1 / 2)) + 1]
    reciprocal = _reciprocal(forward)
    half_reciprocal = _reciprocal(half)
    half_size = half_reciprocal.sum(axis=1)
    own = np.arange(n, dtype=np.int64)[:, None]
    reciprocal_keys = np.sort((own * n + forward)[reciprocal])
    parts = []
    for start in range(0, n, block):
        stop = min(start + block, n)
        mask = reciprocal[start:stop]
        pair_row = np.nonzero(mask)[0] + start
        pair_candidate = forward[start:stop][mask]
        candidate_set = half[pair_candidate]
        candidate_mask = half_reciprocal[pair_candidate]
        shared = _contains(reciprocal_keys, pair_row[:, None] * n + candidate_set) & candidate_mask
        # Same float expression as the dense code, so that borderline counts decide alike.
        joins = shared.sum(axis=1) > 2.0 / 3 * half_size[pair_candidate]
        extra = (pair_row[joins, None] * n + candidate_set[joins])[candidate_mask[joins]]
        own_keys = (own[start:stop] * n + forward[start:stop])[mask]
        parts.append(np.unique(np.concatenate([own_keys, extra])))
    keys = np.concatenate(parts)
    return keys // n, keys % n


def encoding(
    table: NeighbourTable, rows: np.ndarray, cols: np.ndarray, raw: np.ndarray
) -> sparse.csr_matrix:
    """The sparse encoding V: Gaussian-kernel weights over each row's expansion set, summing to 1.

    Args:
        table: the neighbour table (its ``row_max`` normalises the distances).
        rows: row of each non-zero (sorted).
        cols: column of each non-zero.
        raw: distance (before normalisation) of each (row, column) pair.
    """
    n = table.num_total
    dist = raw / table.row_max[rows]
    weight = np.exp(-dist)
    totals = np.bincount(rows, weights=weight, minlength=n).astype(np.float32)
    values = weight / totals[rows]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return sparse.csr_matrix((values, cols, indptr), shape=(n, n))


def query_expansion(encoding: sparse.csr_matrix, nearest: np.ndarray) -> sparse.csr_matrix:
    """Each row replaced by the mean of the rows of its ``k2`` nearest samples (itself included).

    Args:
        encoding: the sparse encoding V [N, N].
        nearest: int64 [N, k2] each sample's nearest samples.

    Example:
        >>> v = sparse.csr_matrix(np.eye(2, dtype=np.float32))
        >>> query_expansion(v, np.array([[0, 1], [1, 0]])).toarray().tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """
    n, k2 = nearest.shape
    averaging = sparse.csr_matrix(
        (np.ones(n * k2, dtype=np.float32), nearest.ravel(), np.arange(0, n * k2 + 1, k2)),
        shape=(n, n),
    )
    expanded = (averaging @ encoding).tocsr()
    expanded.data /= np.float32(k2)
    return expanded


def blend_jaccard(
    table: NeighbourTable, encoding: sparse.csr_matrix, lambda_value: float, progress: bool
) -> None:
    """Turn ``table.query_gallery`` (the query rows' scores) into the final blend of their original
    distances with the Jaccard distance.

    For query q and gallery g the dense code sums min(V[q, f], V[g, f]) over the features f where both
    are non-zero; here the pairs come from V's rows (query side) and columns (gallery side).

    Args:
        table: the neighbour table whose ``query_gallery`` is blended in place.
        encoding: the (query-expanded) sparse encoding V [N, N].
        lambda_value: weight of the original distance.
        progress: show a progress bar.
    """
    num_query = table.num_query
    num_gallery = table.num_total - num_query
    query_side = encoding[:num_query]
    gallery_side = encoding[num_query:].tocsc()
    column_count = np.diff(gallery_side.indptr)
    triples = np.bincount(
        np.repeat(np.arange(num_query), np.diff(query_side.indptr)),
        weights=column_count[query_side.indices],
        minlength=num_query,
    )
    max_rows = max(1, JACCARD_BYTES // (8 * num_gallery))
    chunks = []
    start = 0
    while start < num_query:
        stop = start + 1
        budget = triples[start]
        while (
            stop < num_query
            and stop - start < max_rows
            and budget + triples[stop] <= JACCARD_TRIPLES
        ):
            budget += triples[stop]
            stop += 1
        chunks.append((start, stop))
        start = stop
    for start, stop in tqdm(chunks, desc="re-ranking: jaccard", unit="chunk", disable=not progress):
        shared = shared_minimum_sums(query_side[start:stop], gallery_side, num_gallery)
        jaccard = np.float32(1.0) - shared / (np.float32(2.0) - shared)
        out = table.query_gallery[start:stop]
        # Scores to normalised distances, rounded as ``distance(scores) / row_max``.
        np.multiply(out, np.float32(-2.0), out=out)
        out += np.float32(2.0)
        out /= table.row_max[start:stop, None]
        out *= np.float32(lambda_value)
        out += jaccard * np.float32(1 - lambda_value)


def shared_minimum_sums(
    query_rows: sparse.csr_matrix, gallery_columns: sparse.csc_matrix, num_gallery: int
) -> np.ndarray:
    """``out[q, g] = sum_f min(V[q, f], V[g, f])`` over features non-zero in both (float32 [b, Ng]).

    Args:
        query_rows: CSR rows of V for a chunk of queries.
        gallery_columns: CSC matrix of V's gallery rows (its columns are V's features).
        num_gallery: number of gallery samples.

    Example:
        >>> v = sparse.csr_matrix(np.array([[0.5, 0.5], [0.25, 0.75]], np.float32))
        >>> shared_minimum_sums(v[:1], v[1:].tocsc(), 1)
        array([[0.75]], dtype=float32)
    """
    num_rows = query_rows.shape[0]
    features = query_rows.indices
    starts = gallery_columns.indptr[features].astype(np.int64)
    counts = gallery_columns.indptr[features + 1].astype(np.int64) - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros((num_rows, num_gallery), dtype=np.float32)
    # Positions of every gallery entry of every query feature, as one flat ragged range.
    first = np.cumsum(counts) - counts
    positions = np.repeat(starts - first, counts) + np.arange(total)
    gallery = gallery_columns.indices[positions]
    minimum = np.minimum(np.repeat(query_rows.data, counts), gallery_columns.data[positions])
    query = np.repeat(np.repeat(np.arange(num_rows), np.diff(query_rows.indptr)), counts)
    sums = np.bincount(
        query * num_gallery + gallery, weights=minimum, minlength=num_rows * num_gallery
    )
    return sums.reshape(num_rows, num_gallery).astype(np.float32)


def encode_and_rank(
    table: NeighbourTable,
    raw_distances: PairDistances,
    k1: int,
    k2: int,
    lambda_value: float,
    progress: bool,
) -> np.ndarray:
    """The re-ranked distances [num_query, num_gallery] of one filled neighbour table.

    Args:
        table: the neighbour lists and the original query distances (overwritten with the result).
        raw_distances: distances of the few encoding pairs missing from every neighbour list.
        k1: size of the reciprocal neighbourhood.
        k2: number of neighbours averaged by query expansion (1 disables it).
        lambda_value: weight of the original distance in the final blend.
        progress: show a progress bar.
    """
    rows, cols = expansion_pairs(table.index, k1)
    raw, missing = table.lookup(rows, cols)
    if missing.any():
        raw[missing] = raw_distances(rows[missing], cols[missing])
    weights = encoding(table, rows, cols, raw)
    if k2 != 1:
        weights = query_expansion(weights, table.index[:, :k2])
    blend_jaccard(table, weights, lambda_value, progress)
    return table.query_gallery
