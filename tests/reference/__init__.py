"""Plain reference implementations that the fast paths are measured and tested against.

Nothing here is clever on purpose: each function follows the published code or the definition line by
line, so that a benchmark or a test can compare the library's result with it on the same inputs.

- :func:`re_ranking`: the classic dense k-reciprocal re-ranking (Zhong et al., CVPR 2017) as st-ReID's
  ``re_ranking.py`` has it (inputs are similarities turned into d = 2 - 2 * S, each column divided by
  its maximum; several dense N x N matrices). Rows are sorted stably, so ties go by index.
- :func:`dense_rerank_features`: that function on cosine similarities of L2-normalised features.
- :func:`per_query_ranking`: CMC / mAP / mINP with one Python iteration per query (Market-style junk
  removal: same id and same camera, and id -1), standard or st-ReID (trapezoid AP, all queries).
- :func:`market_like_features`: clustered synthetic features with ids, cameras and frame times shaped
  like Market-1501's test split, so that nearest neighbours are meaningful.
"""

from __future__ import annotations

import numpy as np


def re_ranking(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """The classic dense k-reciprocal re-ranking; the ``*_dist`` arguments are SIMILARITIES.

    As st-ReID's ``re_ranking.py``: ``original_dist = 2. - 2 * original_dist`` (its square is commented
    out there; torchreid's copy squares it), columns divided by their maximum, then transposed.
    Returns the re-ranked distances [num_query, num_gallery] (lower = better).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> q, g = rng.random((3, 8)), rng.random((20, 8))
        >>> re_ranking(q @ g.T, q @ q.T, g @ g.T, k1=5, k2=2).shape
        (3, 20)
    """
    original_dist = np.concatenate(
        [
            np.concatenate([q_q_dist, q_g_dist], axis=1),
            np.concatenate([q_g_dist.T, g_g_dist], axis=1),
        ],
        axis=0,
    )
    original_dist = (2.0 - 2 * original_dist).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist, kind="stable").astype(np.int32)
    query_num = q_g_dist.shape[0]
    gallery_num = q_g_dist.shape[0] + q_g_dist.shape[1]
    all_num = gallery_num
    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, : k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, : k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward_k_neigh_index = initial_rank[candidate, : int(np.around(k1 / 2)) + 1]
            candidate_backward_k_neigh_index = initial_rank[
                candidate_forward_k_neigh_index, : int(np.around(k1 / 2)) + 1
            ]
            fi_candidate = np.where(candidate_backward_k_neigh_index == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward_k_neigh_index[fi_candidate]
            if len(
                np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)
            ) > 2.0 / 3 * len(candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(
                    k_reciprocal_expansion_index, candidate_k_reciprocal_index
                )
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num,]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
        del V_qe
    del initial_rank
    invIndex = []
    for i in range(gallery_num):
        invIndex.append(np.where(V[:, i] != 0)[0])
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, gallery_num], dtype=np.float32)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(
                V[i, indNonZero[j]], V[indImages[j], indNonZero[j]]
            )
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    del original_dist, V, jaccard_dist
    return final_dist[:query_num, query_num:]


def l2_normalise(features: np.ndarray) -> np.ndarray:
    """Rows divided by their Euclidean norm, float32."""
    features = np.asarray(features, dtype=np.float32)
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def dense_rerank_features(
    query_features: np.ndarray,
    gallery_features: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """:func:`re_ranking` on the cosine similarities of L2-normalised features (float32 products)."""
    q = l2_normalise(query_features)
    g = l2_normalise(gallery_features)
    return re_ranking(q @ g.T, q @ q.T, g @ g.T, k1=k1, k2=k2, lambda_value=lambda_value)


def per_query_ranking(
    scores: np.ndarray,
    query_pids: np.ndarray,
    query_cams: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_cams: np.ndarray,
    max_rank: int = 50,
    divide_by_all: bool = False,
    trapezoid_ap: bool = False,
) -> dict[str, float | np.ndarray]:
    """CMC, mAP and mINP with one loop iteration per query.

    Junk for a query: gallery entries with its id and camera, and entries with id -1. Good: same id
    (> 0: distractors and junk are never a true match), other camera. Queries without a good entry
    are skipped (or, with ``divide_by_all`` as st-ReID does, counted as misses). Ranking: descending
    score, ties by gallery index. AP is non-interpolated, or with ``trapezoid_ap`` st-ReID's (the
    layumi code's): at each hit, the mean of the precision just before it (1 before rank 1) and at
    it. The st-ReID protocol is ``divide_by_all=True, trapezoid_ap=True``.
    """
    cmc_sum = np.zeros(max_rank)
    ap_sum = 0.0
    inp_sum = 0.0
    valid = 0
    for i in range(len(query_pids)):
        order = np.argsort(-scores[i], kind="stable")
        junk = ((gallery_pids[order] == query_pids[i]) & (gallery_cams[order] == query_cams[i])) | (
            gallery_pids[order] == -1
        )
        good = (gallery_pids[order] == query_pids[i]) & ~junk & (query_pids[i] > 0)
        kept_good = good[~junk]
        hits = np.flatnonzero(kept_good)
        if hits.size == 0:
            continue
        valid += 1
        first = hits[0]
        if first < max_rank:
            cmc_sum[first:] += 1
        number = np.arange(1, hits.size + 1)
        precision = number / (hits + 1)
        if trapezoid_ap:
            before = np.where(hits == 0, 1.0, (number - 1) / np.maximum(hits, 1))
            ap_sum += np.mean((before + precision) / 2)
        else:
            ap_sum += precision.mean()
        inp_sum += hits.size / (hits[-1] + 1)
    denominator = len(query_pids) if divide_by_all else max(valid, 1)
    return {
        "mAP": ap_sum / denominator,
        "cmc": cmc_sum / denominator,
        "mINP": inp_sum / denominator,
        "num_valid": valid,
    }


def market_like_features(
    num_query: int,
    num_gallery: int,
    dim: int,
    *,
    num_cameras: int = 6,
    latent_dim: int = 64,
    relu: bool = True,
    num_train_ids: int = 0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Clustered query and gallery features with ids, cameras and frame times, Market-1501-like.

    Each test identity walks through 2..``num_cameras`` cameras along a route (transit times drawn per
    camera pair), leaving a short track of images in each; the query holds one image per identity and
    camera, the gallery the rest, plus distractors (id 0) and junk boxes (id -1). A feature is a ReLU of
    a random projection of (identity latent + camera latent + image noise), L2-normalised, so that
    similarities are positive and same-identity images are near but not identical. ``relu=False`` keeps
    negative components (small ``dim`` with ReLU gives exactly orthogonal pairs, i.e. tied scores).

    Returns:
        dict with ``query_features`` [Nq, dim] float32, ``query_pids``, ``query_cams`` (int64),
        ``query_times`` (float64) and the same four for ``gallery_``; with ``num_train_ids`` also
        ``train_pids``, ``train_cams``, ``train_times`` (labels only: training images of other
        identities crossing the same camera network, for fitting a transit-time model).

    Example:
        >>> data = market_like_features(40, 200, 32, seed=1)
        >>> data["query_features"].shape, data["gallery_features"].shape
        ((40, 32), (200, 32))
    """
    rng = np.random.default_rng(seed)
    num_ids = max(2, int(round(num_query / 4.5)))
    # Transit frames between cameras: a property of the network, shared by every identity.
    transit = rng.uniform(300, 6000, size=(num_cameras, num_cameras))
    id_latent = rng.standard_normal((num_ids + 1, latent_dim))
    cam_latent = 0.6 * rng.standard_normal((num_cameras, latent_dim))
    projection = rng.standard_normal((latent_dim, dim)) / np.sqrt(latent_dim)

    def walk(first_pid: int, count: int, rng: np.random.Generator) -> list[tuple[int, int, float]]:
        walked = []  # (id, camera, entry time)
        for pid in range(first_pid, first_pid + count):
            route = rng.permutation(num_cameras)[: rng.integers(2, num_cameras + 1)]
            time = rng.uniform(0, 400_000)
            for step, cam in enumerate(route):
                if step:
                    time += transit[route[step - 1], cam] * rng.uniform(0.8, 1.25)
                walked.append((pid, int(cam), time))
        return walked

    tracks = walk(1, num_ids, rng)
    order = rng.permutation(len(tracks))
    query_tracks = [tracks[t] for t in order[:num_query]]
    if len(query_tracks) < num_query:
        extra = rng.integers(0, len(tracks), num_query - len(query_tracks))
        query_tracks += [tracks[t] for t in extra]

    num_junk = num_gallery // 20
    num_distractor = num_gallery // 7
    num_true = num_gallery - num_junk - num_distractor
    gallery_tracks = [tracks[t] for t in rng.integers(0, len(tracks), num_true)]

    def images(track_list: list[tuple[int, int, float]], noise: float) -> tuple[np.ndarray, ...]:
        pids = np.array([t[0] for t in track_list], dtype=np.int64)
        cams = np.array([t[1] for t in track_list], dtype=np.int64)
        times = np.array([t[2] for t in track_list]) + rng.uniform(0, 150, len(track_list))
        latent = (
            id_latent[pids]
            + cam_latent[cams]
            + noise * rng.standard_normal((len(track_list), latent_dim))
        )
        return latent, pids, cams, times

    q_lat, q_pids, q_cams, q_times = images(query_tracks, 0.75)
    g_lat, g_pids, g_cams, g_times = images(gallery_tracks, 0.75)
    d_lat = (
        1.3 * rng.standard_normal((num_distractor, latent_dim))
        + cam_latent[rng.integers(0, num_cameras, num_distractor)]
    )
    j_lat = 2.0 * rng.standard_normal((num_junk, latent_dim))
    g_lat = np.concatenate([g_lat, d_lat, j_lat])
    g_pids = np.concatenate(
        [g_pids, np.zeros(num_distractor, np.int64), -np.ones(num_junk, np.int64)]
    )
    g_cams = np.concatenate([g_cams, rng.integers(0, num_cameras, num_distractor + num_junk)])
    g_times = np.concatenate([g_times, rng.uniform(0, 450_000, num_distractor + num_junk)])
    shuffle = rng.permutation(num_gallery)

    def embed(latent: np.ndarray) -> np.ndarray:
        raw = latent.astype(np.float32) @ projection.astype(np.float32)
        raw += 0.35 * rng.standard_normal((len(latent), dim), dtype=np.float32)
        feats = np.maximum(raw, 0) if relu else raw
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    extra: dict[str, np.ndarray] = {}
    if num_train_ids:
        # Its own generator: asking for training labels leaves the test features unchanged.
        train_rng = np.random.default_rng([seed, 1])
        train_tracks = walk(num_ids + 1, num_train_ids, train_rng)
        per_track = train_rng.integers(2, 8, len(train_tracks))
        train = [t for t, k in zip(train_tracks, per_track, strict=True) for _ in range(k)]
        extra = {
            "train_pids": np.array([t[0] for t in train], dtype=np.int64),
            "train_cams": np.array([t[1] for t in train], dtype=np.int64) + 1,
            "train_times": np.array([t[2] for t in train]) + train_rng.uniform(0, 150, len(train)),
        }
    return extra | {
        "query_features": embed(q_lat),
        "query_pids": q_pids,
        "query_cams": q_cams + 1,
        "query_times": q_times,
        "gallery_features": embed(g_lat[shuffle]),
        "gallery_pids": g_pids[shuffle],
        "gallery_cams": g_cams[shuffle] + 1,
        "gallery_times": g_times[shuffle],
    }
