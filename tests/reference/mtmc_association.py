"""Oracle and data for the cross-camera association: a dense, loop-by-loop average-linkage
clustering written from the definition, and synthetic tracklets of a camera network (identities,
look-alike groups, transit times). Imported by tests and benchmarks."""

from __future__ import annotations

import math

import numpy as np


def dense_scores(cams, starts, ends, descriptors, model=None, lambdas=(1.0, 5.0, 2.0, 5.0)):
    """[T, T] score of every pair of tracklets of different cameras (NaN on the same camera) and
    the [T, T] too-fast mask, one pair at a time from the definition."""
    lambda0, gamma0, lambda1, gamma1 = lambdas
    t = len(cams)
    unit = descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)
    scores = np.full((t, t), np.nan)
    too_fast = np.zeros((t, t), dtype=bool)
    for i in range(t):
        for j in range(t):
            if cams[i] == cams[j]:
                continue
            cos = float(unit[i] @ unit[j])
            visual = 1.0 / (1.0 + lambda0 * math.exp(-gamma0 * cos))
            if model is None:
                scores[i, j] = visual
                continue
            # The later tracklet is the one whose middle is later; gap from the earlier's exit.
            if starts[j] + ends[j] >= starts[i] + ends[i]:
                later, earlier = j, i
            else:
                later, earlier = i, j
            gap = max(starts[later] - ends[earlier], 0.0)
            known = set(model.camera_ids.tolist())
            if cams[later] not in known or cams[earlier] not in known:
                cue = 1.0
            else:
                li = model.camera_ids.tolist().index(cams[later])
                ei = model.camera_ids.tolist().index(cams[earlier])
                row = model.probabilities[li, ei]
                b = int(math.floor(gap / model.bin_width))
                p = row[b] if b < row.size else 0.0
                if gap == 0:  # no later camera: the mean of both directions
                    p = 0.5 * (p + model.probabilities[ei, li, 0])
                cue = p / row.max() if row.max() > 0 else 0.0
                support = np.flatnonzero(row > 0)
                if support.size and b < support[0]:
                    too_fast[i, j] = True
            st = 1.0 / (1.0 + lambda1 * math.exp(-gamma1 * cue))
            scores[i, j] = visual * st
    return scores, too_fast


def dense_average_linkage(cams, starts, ends, scores, too_fast, threshold):
    """Greedy constrained average linkage from scratch at every step: the linkage of two clusters
    is the mean score over their cross-camera pairs; a merge is allowed unless two members of one
    camera overlap in time or a cross pair is too fast. Returns the partition as a set of
    frozensets."""
    t = len(cams)
    clusters = [[i] for i in range(t)]
    cannot = np.zeros((t, t), dtype=bool)
    for i in range(t):
        for j in range(t):
            if i != j and cams[i] == cams[j] and starts[i] <= ends[j] and starts[j] <= ends[i]:
                cannot[i, j] = True
            if too_fast[i, j] or too_fast[j, i]:
                cannot[i, j] = True
    while True:
        best, best_pair = -1.0, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                total, count, blocked = 0.0, 0, False
                for i in clusters[a]:
                    for j in clusters[b]:
                        blocked |= bool(cannot[i, j])
                        if cams[i] != cams[j]:
                            total += scores[i, j]
                            count += 1
                if blocked or count == 0:
                    continue
                if total / count > best:
                    best, best_pair = total / count, (a, b)
        if best_pair is None or best < threshold:
            break
        a, b = best_pair
        clusters[a] = clusters[a] + clusters[b]
        del clusters[b]
    return {frozenset(c) for c in clusters}


def synthetic_tracklets(
    num_people: int,
    num_cameras: int,
    *,
    dim: int = 32,
    noise: float = 0.3,
    group_size: int = 1,
    lookalike_fraction: float = 1.0,
    jitter: float = 0.02,
    group_window: float = 30.0,
    duration: float = 3600.0,
    visits: tuple[int, int] = (2, 5),
    fps: float = 10.0,
    graph_seed: int = 0,
    seed: int = 1,
) -> dict[str, np.ndarray]:
    """Tracklets of people walking a camera network.

    Each camera links to two others with a normal transit time (mean 20..90 s, 12 % spread); a
    person enters the network at a uniform time, stays 4..12 s per camera and makes 2..5 visits.
    The first ``lookalike_fraction`` of the people come in groups of ``group_size`` look-alikes (one
    appearance plus ``jitter``) who enter within ``group_window`` seconds of each other. Descriptor = appearance + ``noise``·N(0, 1/dim).

    Returns a dict with cams, starts, ends, descriptors, ids (1..), frames, and the links
    ``link_later``, ``link_earlier``, ``link_mean``, ``link_std``.
    """
    graph = np.random.default_rng(graph_seed)
    successors = {}
    links = {}
    for c in range(1, num_cameras + 1):
        targets = sorted({c % num_cameras + 1, (c + 2) % num_cameras + 1} - {c})
        successors[c] = targets
        for target in targets:
            mean = float(graph.uniform(20.0, 90.0))
            links[(target, c)] = (mean, 0.12 * mean)
    rng = np.random.default_rng(seed)
    cams, starts, ends, ids, looks = [], [], [], [], []
    appearance = None
    group_start = 0.0
    for person in range(num_people):
        grouped = person < lookalike_fraction * num_people
        if not grouped or person % group_size == 0:
            appearance = rng.normal(size=dim)
            group_start = float(rng.uniform(0.0, duration))
        look = appearance + jitter * np.linalg.norm(appearance) * rng.normal(size=dim) / math.sqrt(
            dim
        )
        time = group_start + float(rng.uniform(0.0, group_window))
        camera = int(rng.integers(1, num_cameras + 1))
        for visit in range(int(rng.integers(visits[0], visits[1] + 1))):
            if visit:
                nxt = successors[camera][int(rng.integers(len(successors[camera])))]
                mean, std = links[(nxt, camera)]
                time += max(1.0, float(rng.normal(mean, std)))
                camera = nxt
            dwell = float(rng.uniform(4.0, 12.0))
            cams.append(camera)
            starts.append(round(time * fps) / fps)
            ends.append(round((time + dwell) * fps) / fps)
            ids.append(person + 1)
            looks.append(look)
            time += dwell
    looks = np.asarray(looks)
    unit = looks / np.linalg.norm(looks, axis=1, keepdims=True)
    descriptors = unit + noise * rng.normal(size=unit.shape) / math.sqrt(dim)
    starts_a, ends_a = np.asarray(starts), np.asarray(ends)
    keys = sorted(links)
    return {
        "cams": np.asarray(cams, dtype=np.int64),
        "starts": starts_a,
        "ends": ends_a,
        "descriptors": descriptors.astype(np.float32),
        "ids": np.asarray(ids, dtype=np.int64),
        "frames": np.round((ends_a - starts_a) * fps).astype(np.int64) + 1,
        "link_later": np.asarray([k[0] for k in keys], dtype=np.int64),
        "link_earlier": np.asarray([k[1] for k in keys], dtype=np.int64),
        "link_mean": np.asarray([links[k][0] for k in keys]),
        "link_std": np.asarray([links[k][1] for k in keys]),
    }
