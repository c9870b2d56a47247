"""Association of single-camera tracklets across cameras: one global identity per person.

The stage works on plain arrays so that any tracker's output can feed it:

* **Descriptors.** One unit vector per tracklet (:mod:`mtmct_reid.mtmc.descriptors` makes them from
  the features of its boxes).
* **Times.** Each tracklet has an entry and an exit time on the network's common clock.
* **Pair scores.** Only tracklets of different cameras are compared. The appearance cue is the cosine
  of the descriptors; the timing cue is the transit-time probability of the gap from the exit of the
  earlier tracklet to the entry of the later one, looked up in a
  :class:`~mtmct_reid.retrieval.transit.TransitTimeModel` and divided by the largest probability of
  that camera pair (so that the cue is 1 at the most common transit whatever the bin width). The two
  are fused with the project's logistic fusion (:func:`mtmct_reid.retrieval.fusion.fuse`); without a
  transit-time model the score is the visual logistic alone.
* **Cannot-link.** Two tracklets of one camera that overlap in time are two people; so are two
  tracklets whose gap is shorter than any transit the model has seen for their camera pair
  (probability 0 below the support: nobody walks that fast). A gap *longer* than the model's support
  also has probability 0 but is not forbidden: the person may have lingered or gone through cameras in
  between, so only the fused score drops.
* **Clustering.** Agglomerative, average linkage, over a sparse graph of candidate pairs (each
  tracklet's ``neighbours`` most similar tracklets of other cameras, found chunk by chunk, so no dense
  T×T matrix is ever held). The linkage of two clusters is the sum of their candidate pairs' scores
  divided by the number of their cross-camera pairs (pairs that are not candidates count 0). The best
  pair of clusters whose union breaks no cannot-link is merged while its linkage is at least the stop
  threshold. Constraints are checked on the members of both clusters at merge time, so they hold on
  every output, candidate pair or not.

The stop threshold is chosen on labelled tracklets by :mod:`mtmct_reid.mtmc.threshold`.

Example:
    >>> rng = np.random.default_rng(0)
    >>> people = rng.normal(size=(3, 16))
    >>> person = np.array([0, 1, 2, 0, 1, 2])
    >>> tracklets = Tracklets(
    ...     cams=np.array([1, 1, 1, 2, 2, 2]),
    ...     starts=np.array([0.0, 10, 20, 40, 50, 60]),
    ...     ends=np.array([5.0, 15, 25, 45, 55, 65]),
    ...     descriptors=people[person] + 0.05 * rng.normal(size=(6, 16)),
    ... )
    >>> associate(tracklets, threshold=0.9).tolist()
    [0, 1, 2, 0, 1, 2]
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field

import numpy as np

from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.fusion import DEFAULT_FUSION, FusionParams, fuse, logistic
from mtmct_reid.retrieval.transit import TransitTimeModel

log = logging.getLogger(__name__)

#: Candidate neighbours per tracklet (of other cameras) kept for the clustering.
DEFAULT_NEIGHBOURS = 30
#: Rows of the similarity matrix computed at once (rows × tracklets float32 at a time).
DEFAULT_CHUNK = 1024


# ----------------------------------------------------------------------------------------------
# Tracklets and their descriptors


@dataclass(frozen=True, eq=False)
class Tracklets:
    """Single-camera tracklets: camera, entry and exit times on the common clock, descriptor.

    Args:
        cams: camera id per tracklet, int64 [T].
        starts: entry time (seconds on the common clock) [T].
        ends: exit time [T], at least ``starts``.
        descriptors: one appearance descriptor per tracklet [T, D]; rows are normalised to unit length.

    Example:
        >>> t = Tracklets(np.array([1, 2]), np.array([0.0, 9]), np.array([4.0, 12]), np.eye(2))
        >>> len(t), t.dim
        (2, 2)
    """

    cams: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    descriptors: np.ndarray

    def __post_init__(self) -> None:
        cams = np.asarray(self.cams)
        if cams.ndim != 1:
            raise ReIDError(f"tracklets: cams has shape {cams.shape}, expected [T]")
        if cams.size and not np.issubdtype(cams.dtype, np.integer):
            raise ReIDError(f"tracklets: cams must be integer camera ids, got {cams.dtype}")
        t = cams.size
        starts = np.asarray(self.starts, dtype=np.float64)
        ends = np.asarray(self.ends, dtype=np.float64)
        descriptors = np.asarray(self.descriptors, dtype=np.float32)
        for name, value in (("starts", starts), ("ends", ends)):
            if value.shape != (t,):
                raise ReIDError(f"tracklets: {name} has shape {value.shape}, expected [{t}]")
            if not np.isfinite(value).all():
                raise ReIDError(f"tracklets: {name} has NaN/inf times")
        bad = np.flatnonzero(ends < starts)
        if bad.size:
            raise ReIDError(
                f"tracklets: tracklet {int(bad[0])} ends ({ends[bad[0]]:g}) before it starts "
                f"({starts[bad[0]]:g})"
            )
        if descriptors.ndim != 2 or descriptors.shape[0] != t:
            raise ReIDError(
                f"tracklets: descriptors has shape {descriptors.shape}, expected [{t}, D]"
            )
        if not np.isfinite(descriptors).all():
            raise ReIDError("tracklets: descriptors have NaN/inf values")
        norms = np.linalg.norm(descriptors, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ReIDError(
                f"tracklets: descriptor of tracklet {int(np.flatnonzero(norms == 0)[0])} is zero"
            )
        object.__setattr__(self, "cams", cams.astype(np.int64))
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "ends", ends)
        object.__setattr__(self, "descriptors", descriptors / norms)

    def __len__(self) -> int:
        return int(self.cams.size)

    @property
    def dim(self) -> int:
        """Descriptor dimension D."""
        return int(self.descriptors.shape[1])


# ----------------------------------------------------------------------------------------------
# Pair scores


def check_transit_clock(model: TransitTimeModel, where: str = "transit-time model") -> None:
    """Refuse a model whose times are frames: tracks are timed on the network's clock in seconds.

    A model fitted on Market-1501/DukeMTMC-reID/MSMT17 names (frame numbers, 100 frames a bin)
    would read every gap in seconds as frames and score transits against the wrong curve, silently.
    A model of unknown unit (a manifest's times) is trusted.

    Raises:
        ReIDError: ``where``: the model is in frames.

    Example:
        >>> counts = np.zeros((2, 2, 4)); counts[1, 0, 1] = 2
        >>> model = TransitTimeModel.from_counts(np.array([1, 2]), counts, np.array([[0, 0], [2, 0]]),
        ...                                      bin_width=100.0, sigma_bins=1.0, truncate=3.0,
        ...                                      time_unit="frames")
        >>> check_transit_clock(model, "st.npz")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: st.npz: this transit-time model counts time in frames (fitted on an image dataset's names); tracks are timed in seconds: fit one on the video network with 'mtmct-reid st fit ROOT'
    """
    if model.time_unit == "frames":
        raise ReIDError(
            f"{where}: this transit-time model counts time in frames (fitted on an image "
            "dataset's names); tracks are timed in seconds: fit one on the video network with "
            "'mtmct-reid st fit ROOT'"
        )


class TransitCue:
    """The timing cue of tracklet pairs, from a transit-time model whose time unit is the common
    clock's.

    Cameras the model lacks fall back to appearance: their pairs get the timing cue 1 (plausible)
    and no timing cannot-link; one warning names them.

    Args:
        model: the fitted transit-time model.
        cameras: every camera id that tracklets may have.

    Example:
        >>> counts = np.zeros((2, 2, 20)); counts[1, 0, 10] = 5  # camera 1 -> 2 takes 10 s
        >>> model = TransitTimeModel.from_counts(np.array([1, 2]), counts, np.array([[0, 0], [5, 0]]),
        ...                                      bin_width=1.0, sigma_bins=1.0, truncate=3.0)
        >>> cue = TransitCue(model, np.array([1, 2]))
        >>> timing, too_fast = cue.evaluate(np.array([0, 0]), np.array([0.0, 0]), np.array([5.0, 5]),
        ...                                 np.array([1, 1]), np.array([15.5, 7.5]), np.array([20.0, 12]))
        >>> timing.round(2).tolist(), too_fast.tolist()  # gaps of 10.5 s and 2.5 s
        ([1.0, 0.0], [False, True])
    """

    def __init__(self, model: TransitTimeModel, cameras: np.ndarray) -> None:
        check_transit_clock(model)
        self.model = model
        cameras = np.unique(np.asarray(cameras, dtype=np.int64))
        missing = cameras[~np.isin(cameras, model.camera_ids)]
        if missing.size:
            log.warning(
                "the transit-time model has no camera %s (it knows %s): pairs with %s use "
                "appearance only",
                ", ".join(str(int(c)) for c in missing),
                model.camera_ids.tolist(),
                "it" if missing.size == 1 else "them",
            )
        self.missing = missing
        probabilities = model.probabilities
        self.peak = probabilities.max(axis=2)
        positive = probabilities > 0
        self.first_bin = np.where(positive.any(axis=2), positive.argmax(axis=2), model.num_bins)
        self.observed = model.observed & (self.peak > 0)

    def index(self, cams: np.ndarray) -> np.ndarray:
        """Model index of each camera, -1 for cameras the model lacks."""
        cams = np.asarray(cams, dtype=np.int64)
        index = np.searchsorted(self.model.camera_ids, cams)
        index = np.minimum(index, self.model.num_cameras - 1)
        return np.where(self.model.camera_ids[index] == cams, index, -1)

    @staticmethod
    def order(starts_i, ends_i, starts_j, ends_j):
        """``j_later`` (the tracklet whose middle comes later is the later one), entry of the later,
        exit of the earlier (at most the entry: overlapping visits have gap 0)."""
        j_later = (starts_j + ends_j) >= (starts_i + ends_i)
        entry = np.where(j_later, starts_j, starts_i)
        exit_ = np.minimum(np.where(j_later, ends_i, ends_j), entry)
        return j_later, entry, exit_

    def evaluate(
        self,
        index_i: np.ndarray,
        starts_i: np.ndarray,
        ends_i: np.ndarray,
        index_j: np.ndarray,
        starts_j: np.ndarray,
        ends_j: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Timing cue in [0, 1] and ``too_fast`` mask of pairs of tracklets of different cameras
        given by model indices (:meth:`index`), elementwise.

        Returns:
            (cue float32, too_fast bool): cue = probability of the gap / the pair's largest
            probability; too_fast = the gap is shorter than any transit of the (observed) pair.
        """
        j_later, entry, exit_ = self.order(starts_i, ends_i, starts_j, ends_j)
        later = np.where(j_later, index_j, index_i)
        earlier = np.where(j_later, index_i, index_j)
        known = (later >= 0) & (earlier >= 0)
        cue = np.ones(np.shape(later), dtype=np.float32)
        too_fast = np.zeros(np.shape(later), dtype=bool)
        if known.any():
            li, ei = later[known], earlier[known]
            ids = self.model.camera_ids
            p = self.model.probability(ids[li], entry[known], ids[ei], exit_[known])
            peak = self.peak[li, ei]
            with np.errstate(invalid="ignore", divide="ignore"):
                cue[known] = np.where(peak > 0, p / peak, 0.0)
            gap_bin = np.floor((entry[known] - exit_[known]) / self.model.bin_width)
            too_fast[known] = self.observed[li, ei] & (gap_bin < self.first_bin[li, ei])
        return cue, too_fast


def pair_scores(
    tracklets: Tracklets,
    pair_i: np.ndarray,
    pair_j: np.ndarray,
    *,
    cue: TransitCue | None = None,
    fusion: FusionParams = DEFAULT_FUSION,
    chunk: int = 262_144,
) -> np.ndarray:
    """Fused score in (0, 1) of each candidate pair (tracklets of different cameras).

    Args:
        tracklets: the tracklets.
        pair_i: first tracklet of each pair [P].
        pair_j: second tracklet of each pair [P].
        cue: the timing cue; None scores by appearance alone (the visual logistic of the fusion).
        fusion: the fusion's logistic parameters.
        chunk: pairs scored at once (bounds the memory of the gathered descriptors).

    Returns:
        float32 [P] scores.

    Example:
        >>> t = Tracklets(np.array([1, 2]), np.array([0.0, 9]), np.array([4.0, 12]), np.eye(2))
        >>> pair_scores(t, np.array([0]), np.array([1]))  # cosine 0 -> logistic(0) = 1/2
        array([0.5], dtype=float32)
    """
    scores = np.empty(pair_i.size, dtype=np.float32)
    index = cue.index(tracklets.cams) if cue is not None else None
    d, s, e = tracklets.descriptors, tracklets.starts, tracklets.ends
    for lo in range(0, pair_i.size, chunk):
        i, j = pair_i[lo : lo + chunk], pair_j[lo : lo + chunk]
        cos = np.einsum("pd,pd->p", d[i], d[j])
        if cue is None:
            scores[lo : lo + chunk] = logistic(cos, fusion.lambda0, fusion.gamma0)
        else:
            st, _ = cue.evaluate(index[i], s[i], e[i], index[j], s[j], e[j])
            scores[lo : lo + chunk] = fuse(cos, st, fusion)
    return scores


def candidate_pairs(
    tracklets: Tracklets,
    *,
    neighbours: int = DEFAULT_NEIGHBOURS,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Each tracklet's ``neighbours`` most similar tracklets of other cameras (cosine), as unique
    pairs ``i < j``; the similarity matrix is computed ``chunk`` rows at a time.

    Args:
        tracklets: the tracklets.
        neighbours: neighbours kept per tracklet (all when at least T).
        chunk: rows of the similarity matrix held at once.
        progress: show a progress bar.

    Returns:
        (pair_i, pair_j) int64 arrays, sorted, ``pair_i < pair_j``, cameras differ.

    Example:
        >>> t = Tracklets(np.array([1, 1, 2]), np.zeros(3), np.ones(3), np.eye(3))
        >>> [a.tolist() for a in candidate_pairs(t)]
        [[0, 1], [2, 2]]
    """
    from tqdm import tqdm

    if neighbours < 1 or chunk < 1:
        raise ReIDError(
            f"candidate pairs: neighbours ({neighbours}) and chunk ({chunk}) must be >= 1"
        )
    t = len(tracklets)
    d, cams = tracklets.descriptors, tracklets.cams
    keys = []
    for lo in tqdm(range(0, t, chunk), desc="candidate pairs", disable=not progress, unit="chunk"):
        rows = np.arange(lo, min(lo + chunk, t))
        sims = d[rows] @ d.T
        sims[cams[rows, None] == cams[None, :]] = -np.inf
        if neighbours < t:
            cols = np.argpartition(-sims, neighbours - 1, axis=1)[:, :neighbours]
        else:
            cols = np.broadcast_to(np.arange(t), sims.shape)
        valid = np.isfinite(np.take_along_axis(sims, cols, axis=1))
        r = np.broadcast_to(rows[:, None], cols.shape)[valid]
        c = cols[valid].astype(np.int64)
        keys.append(np.minimum(r, c) * t + np.maximum(r, c))
        del sims
    key = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    return key // max(t, 1), key % max(t, 1)


# ----------------------------------------------------------------------------------------------
# Constrained average-linkage clustering


class CannotLink:
    """The cannot-link rule between two groups of tracklets.

    Args:
        tracklets: the tracklets.
        cue: the timing cue (its too-fast pairs are forbidden); None: only the same-camera rule.

    Example:
        >>> t = Tracklets(np.array([1, 1]), np.array([0.0, 3]), np.array([5.0, 8]), np.eye(2))
        >>> CannotLink(t).violated(np.array([0]), np.array([1]))
        True
    """

    def __init__(self, tracklets: Tracklets, cue: TransitCue | None = None) -> None:
        self.cams = tracklets.cams
        self.starts = tracklets.starts
        self.ends = tracklets.ends
        self.cue = cue
        self.index = cue.index(self.cams) if cue is not None else None

    def violated(self, group_a: np.ndarray, group_b: np.ndarray) -> bool:
        """Whether any tracklet of ``group_a`` cannot be the same person as one of ``group_b``."""
        ca, cb = self.cams[group_a][:, None], self.cams[group_b][None, :]
        sa, ea = self.starts[group_a][:, None], self.ends[group_a][:, None]
        sb, eb = self.starts[group_b][None, :], self.ends[group_b][None, :]
        same = ca == cb
        if np.any(same & (sa <= eb) & (sb <= ea)):
            return True
        if self.cue is None:
            return False
        ia, ib = self.index[group_a][:, None], self.index[group_b][None, :]
        shape = (len(group_a), len(group_b))
        _, too_fast = (
            self.cue.evaluate(*np.broadcast_arrays(ia, sa, ea, ib, sb, eb))
            if shape[0] * shape[1]
            else (None, np.zeros(shape, bool))
        )
        return bool(np.any(too_fast & ~same))


@dataclass(frozen=True)
class Dendrogram:
    """The merges of a constrained agglomerative clustering, in the order they were made.

    Args:
        size: number of tracklets.
        left: a tracklet of the first merged cluster, per merge [M].
        right: a tracklet of the second merged cluster [M].
        linkage: the linkage at which each merge was made [M].

    Example:
        >>> Dendrogram(3, np.array([0]), np.array([2]), np.array([0.8])).labels(0.5).tolist()
        [0, 1, 0]
    """

    size: int
    left: np.ndarray
    right: np.ndarray
    linkage: np.ndarray
    merges_tried: int = field(default=0, compare=False)

    def labels(self, threshold: float) -> np.ndarray:
        """Cluster label per tracklet when merging stops at the first linkage below ``threshold``;
        labels 0..G-1 in order of each cluster's first tracklet."""
        below = np.flatnonzero(self.linkage < threshold)
        stop = int(below[0]) if below.size else self.linkage.size
        parent = np.arange(self.size)

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for a, b in zip(self.left[:stop].tolist(), self.right[:stop].tolist(), strict=True):
            ra, rb = find(a), find(b)
            parent[max(ra, rb)] = min(ra, rb)
        roots = np.array([find(x) for x in range(self.size)], dtype=np.int64)
        _, labels = np.unique(roots, return_inverse=True)
        return labels.reshape(-1)


def agglomerate(
    tracklets: Tracklets,
    pair_i: np.ndarray,
    pair_j: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    *,
    constraints: CannotLink | None = None,
    progress: bool = False,
) -> Dendrogram:
    """Average-linkage agglomeration over a sparse graph of scored pairs, under cannot-link.

    The linkage of clusters A and B is ``Σ scores of their candidate pairs / n_cross(A, B)`` with
    ``n_cross`` the number of pairs of their tracklets in different cameras. The best allowed pair is
    merged while its linkage is at least ``threshold``; a heap with lazy deletion and one score sum per
    pair of neighbouring clusters keep memory linear in the number of pairs.

    Args:
        tracklets: the tracklets (cameras and times, for ``n_cross`` and the constraints).
        pair_i: first tracklet of each scored pair (cameras differ).
        pair_j: second tracklet of each scored pair.
        scores: score per pair (>= 0).
        threshold: stop linkage.
        constraints: the cannot-link rule (default: same camera, overlapping in time).
        progress: show a progress bar over the merges.

    Returns:
        the merges made, in order.

    Example:
        >>> t = Tracklets(np.array([1, 2, 3]), np.array([0.0, 5, 9]), np.array([1.0, 6, 10]), np.eye(3))
        >>> agglomerate(t, np.array([0, 1]), np.array([1, 2]), np.array([0.9, 0.7]), 0.3).linkage
        array([0.9 , 0.35])
    """
    from tqdm import tqdm

    if constraints is None:
        constraints = CannotLink(tracklets)
    n = len(tracklets)
    cams = tracklets.cams.tolist()
    members: list[list[int]] = [[x] for x in range(n)]
    camcount: list[dict[int, int]] = [{c: 1} for c in cams]
    neighbours: list[dict[int, float]] = [{} for _ in range(n)]
    blocked: list[set[int]] = [set() for _ in range(n)]
    stamp = [0] * n
    alive = [True] * n
    for a, b, s in zip(
        pair_i.tolist(), pair_j.tolist(), np.asarray(scores, np.float64).tolist(), strict=True
    ):
        if a == b or cams[a] == cams[b]:
            continue
        neighbours[a][b] = neighbours[a].get(b, 0.0) + s
        neighbours[b][a] = neighbours[b].get(a, 0.0) + s

    def cross(a: int, b: int) -> int:
        ca, cb = camcount[a], camcount[b]
        if len(ca) > len(cb):
            ca, cb = cb, ca
        same = sum(count * cb.get(c, 0) for c, count in ca.items())
        return len(members[a]) * len(members[b]) - same

    heap = [
        (-total, a, b, 0, 0)
        for a in range(n)
        for b, total in neighbours[a].items()
        if a < b and total >= threshold
    ]
    heapq.heapify(heap)
    left, right, linkage = [], [], []
    tried = 0
    bar = tqdm(total=n - 1, desc="association", disable=not progress, unit="merge")
    while heap:
        negative, a, b, sa, sb = heapq.heappop(heap)
        if -negative < threshold:
            break
        if not (alive[a] and alive[b] and stamp[a] == sa and stamp[b] == sb):
            continue
        if b in blocked[a]:
            continue
        tried += 1
        if constraints.violated(np.asarray(members[a]), np.asarray(members[b])):
            blocked[a].add(b)
            blocked[b].add(a)
            continue
        left.append(a)
        right.append(b)
        linkage.append(-negative)
        bar.update(1)
        # Keep the cluster with more neighbours so the dictionaries move the least.
        if len(neighbours[a]) < len(neighbours[b]):
            a, b = b, a
        members[a].extend(members[b])
        for c, count in camcount[b].items():
            camcount[a][c] = camcount[a].get(c, 0) + count
        neighbours[a].pop(b, None)
        for x, total in neighbours[b].items():
            if x == a:
                continue
            merged = neighbours[a].get(x, 0.0) + total
            neighbours[a][x] = merged
            del neighbours[x][b]
            neighbours[x][a] = merged
        blocked[a].discard(b)
        for x in blocked[b]:
            if x == a:
                continue
            blocked[a].add(x)
            blocked[x].discard(b)
            blocked[x].add(a)
        alive[b] = False
        members[b], camcount[b], neighbours[b], blocked[b] = [], {}, {}, set()
        stamp[a] += 1
        for x, total in neighbours[a].items():
            if x in blocked[a]:
                continue
            value = total / cross(a, x)
            if value >= threshold:
                lo, hi = (a, x) if a < x else (x, a)
                heapq.heappush(heap, (-value, lo, hi, stamp[lo], stamp[hi]))
    bar.close()
    return Dendrogram(
        n,
        np.asarray(left, dtype=np.int64),
        np.asarray(right, dtype=np.int64),
        np.asarray(linkage, dtype=np.float64),
        merges_tried=tried,
    )


def check_threshold(threshold: float, where: str = "--threshold") -> float:
    """``threshold`` as a float in (0, 1), else :class:`ReIDError` naming ``where``.

    Example:
        >>> check_threshold(0.5)
        0.5
    """
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ReIDError(f"{where}: expected a number in (0, 1), got {threshold!r}") from None
    if not 0.0 < value < 1.0:
        raise ReIDError(f"{where}: expected a number in (0, 1), got {threshold!r}")
    return value


def build_dendrogram(
    tracklets: Tracklets,
    *,
    transit: TransitTimeModel | None = None,
    threshold: float = 0.05,
    neighbours: int = DEFAULT_NEIGHBOURS,
    fusion: FusionParams = DEFAULT_FUSION,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = False,
) -> Dendrogram:
    """Candidate pairs, their scores and the constrained agglomeration down to ``threshold`` (low
    thresholds keep more merges, so that :meth:`Dendrogram.labels` can cut at any higher one).

    Args:
        tracklets: the tracklets.
        transit: transit-time model on the common clock (None: appearance only).
        threshold: lowest linkage merged.
        neighbours: candidate neighbours per tracklet.
        fusion: the fusion's parameters.
        chunk: similarity rows held at once.
        progress: progress bars.

    Example:
        >>> t = Tracklets(np.array([1, 2, 1, 2]), np.array([0.0, 12, 30, 42]),
        ...               np.array([2.0, 14, 32, 44]), np.array([[1.0, 0], [1, 0.1], [0, 1], [0.1, 1]]))
        >>> dendrogram = build_dendrogram(t)
        >>> dendrogram.labels(0.9).tolist(), dendrogram.labels(0.5).tolist()
        ([0, 0, 1, 1], [0, 0, 0, 0])
    """
    cue = TransitCue(transit, tracklets.cams) if transit is not None else None
    pair_i, pair_j = candidate_pairs(
        tracklets, neighbours=neighbours, chunk=chunk, progress=progress
    )
    scores = pair_scores(tracklets, pair_i, pair_j, cue=cue, fusion=fusion)
    log.info("association: %d tracklets, %d candidate pairs", len(tracklets), pair_i.size)
    return agglomerate(
        tracklets,
        pair_i,
        pair_j,
        scores,
        threshold,
        constraints=CannotLink(tracklets, cue),
        progress=progress,
    )


def associate(
    tracklets: Tracklets,
    *,
    transit: TransitTimeModel | None = None,
    threshold: float = 0.5,
    neighbours: int = DEFAULT_NEIGHBOURS,
    fusion: FusionParams = DEFAULT_FUSION,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = False,
) -> np.ndarray:
    """One identity label per tracklet (0..G-1, in order of each identity's first tracklet).

    Args:
        tracklets: the tracklets of every camera.
        transit: transit-time model on the common clock (None: appearance only).
        threshold: stop linkage in (0, 1).
        neighbours: candidate neighbours per tracklet.
        fusion: the fusion's parameters.
        chunk: similarity rows held at once.
        progress: progress bars.

    Example:
        >>> t = Tracklets(np.array([1, 2, 1, 2]), np.array([0.0, 12, 30, 42]),
        ...               np.array([2.0, 14, 32, 44]), np.array([[1.0, 0], [1, 0.1], [0, 1], [0.1, 1]]))
        >>> associate(t, threshold=0.9).tolist()
        [0, 0, 1, 1]
    """
    threshold = check_threshold(threshold, "association threshold")
    return build_dendrogram(
        tracklets,
        transit=transit,
        threshold=threshold,
        neighbours=neighbours,
        fusion=fusion,
        chunk=chunk,
        progress=progress,
    ).labels(threshold)
