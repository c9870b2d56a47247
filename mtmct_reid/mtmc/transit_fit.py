"""Transit-time models of a camera network from tracks: labelled visits, or confident visual matches.

A *visit* is one tracklet: a person in one camera from an entry time to an exit time on the common
clock. With labels, each person's visits are sorted in time and every two consecutive visits in
different cameras add the gap ``entry of the later − exit of the earlier`` to the histogram of the
pair (later camera, earlier camera); each histogram is smoothed with the same truncated Gaussian as
:meth:`~mtmct_reid.retrieval.transit.TransitTimeModel.fit` and normalised, and the result is an
ordinary :class:`~mtmct_reid.retrieval.transit.TransitTimeModel` (its time unit is the common clock's,
seconds). Only consecutive visits count: the gap from camera 1 to camera 3 through camera 2 is not a
transit from 1 to 3.

Without labels, :func:`bootstrap_transit` groups tracklets that are mutual nearest neighbours across
cameras into pseudo-identities, keeps the camera pairs whose gaps pile up in a narrow peak (the
cross-correlation argument of Makris, Ellis and Black, "Bridging the gaps between cameras", CVPR
2004: a walked link shows as a peak in the gaps, chance pairs do not), fits on the peaks, and
repeats with matches gated and ranked by the fused appearance and timing score (hard EM) until the
matches stop changing.
"""

from __future__ import annotations

import logging

import numpy as np

from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc.associate import (
    DEFAULT_NEIGHBOURS,
    Tracklets,
    TransitCue,
    candidate_pairs,
)
from mtmct_reid.retrieval.fusion import DEFAULT_FUSION, FusionParams, fuse
from mtmct_reid.retrieval.transit import (
    MAX_TABLE_ENTRIES,
    TransitTimeModel,
    smoothing_radius,
)
from mtmct_reid.retrieval.transit_counts import check_parameters
from mtmct_reid.validation import as_float, positive_int

log = logging.getLogger(__name__)

#: Seconds per bin of a transit-time model fitted from tracks.
DEFAULT_BIN_WIDTH = 1.0
#: Smoothing σ in bins of a model fitted from tracks.
DEFAULT_SIGMA_BINS = 3.0


def consecutive_gaps(
    ids: np.ndarray, cams: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gaps between consecutive visits of each identity in different cameras.

    Args:
        ids: identity per visit [V] (visits with ``id <= 0`` are ignored).
        cams: camera per visit [V].
        starts: entry time per visit [V].
        ends: exit time per visit [V].

    Returns:
        (identity, later camera, earlier camera, gap) per transit; gaps of overlapping visits are 0.

    Example:
        >>> [a.tolist() for a in consecutive_gaps(np.array([7, 7, 7]), np.array([1, 2, 1]),
        ...                                        np.array([0.0, 10, 30]), np.array([4.0, 12, 33]))]
        [[7, 7], [2, 1], [1, 2], [6.0, 18.0]]
    """
    ids = np.asarray(ids, dtype=np.int64)
    cams = np.asarray(cams, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    keep = ids > 0
    ids, cams, starts, ends = ids[keep], cams[keep], starts[keep], ends[keep]
    order = np.lexsort((ends, starts, ids))
    ids, cams, starts, ends = ids[order], cams[order], starts[order], ends[order]
    nxt = np.arange(1, ids.size)
    prev = nxt - 1
    transit = (ids[nxt] == ids[prev]) & (cams[nxt] != cams[prev])
    nxt, prev = nxt[transit], prev[transit]
    gaps = np.maximum(starts[nxt] - ends[prev], 0.0)
    return ids[nxt], cams[nxt], cams[prev], gaps


def fit_transit_from_visits(
    ids: np.ndarray,
    cams: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    *,
    camera_ids: np.ndarray | None = None,
    bin_width: float = DEFAULT_BIN_WIDTH,
    sigma_bins: float = DEFAULT_SIGMA_BINS,
    truncate: float = 3.0,
) -> TransitTimeModel:
    """Fit a transit-time model from the consecutive visits of labelled identities.

    Args:
        ids: identity per visit (a tracklet, or a person's whole stay in one camera).
        cams: camera per visit.
        starts: entry time per visit on the common clock.
        ends: exit time per visit.
        camera_ids: every camera of the network (default: those of ``cams``).
        bin_width: time units (seconds) per bin.
        sigma_bins: smoothing σ in bins.
        truncate: the Gaussian is cut at ``truncate · sigma_bins`` bins.

    Raises:
        ReIDError: fewer than two cameras, no identity seen in two cameras, bad parameters.

    Example:
        >>> m = fit_transit_from_visits(np.array([1, 1, 2, 2]), np.array([1, 2, 1, 2]),
        ...                             np.array([0.0, 20, 50, 71]), np.array([5.0, 25, 55, 76]),
        ...                             sigma_bins=0)
        >>> float(m.mean_transit()[1, 0])  # later camera 2 (index 1), earlier camera 1: gaps 15, 16
        16.0
    """
    person, later, earlier, gaps = consecutive_gaps(ids, cams, starts, ends)
    return fit_transit_from_gaps(
        later,
        earlier,
        gaps,
        person=person,
        camera_ids=np.unique(np.asarray(cams, dtype=np.int64))
        if camera_ids is None
        else camera_ids,
        bin_width=bin_width,
        sigma_bins=sigma_bins,
        truncate=truncate,
    )


def fit_transit_from_gaps(
    later: np.ndarray,
    earlier: np.ndarray,
    gaps: np.ndarray,
    *,
    camera_ids: np.ndarray,
    person: np.ndarray | None = None,
    bin_width: float = DEFAULT_BIN_WIDTH,
    sigma_bins: float = DEFAULT_SIGMA_BINS,
    truncate: float = 3.0,
) -> TransitTimeModel:
    """Fit a transit-time model from transits: the later and earlier camera and the gap of each.

    Args:
        later: camera of the later visit per transit.
        earlier: camera of the earlier visit per transit.
        gaps: entry of the later − exit of the earlier (>= 0).
        camera_ids: every camera of the network.
        person: identity per transit, to count identities per pair (default: one per transit).
        bin_width: time units (seconds) per bin.
        sigma_bins: smoothing σ in bins.
        truncate: the Gaussian is cut at ``truncate · sigma_bins`` bins.

    Example:
        >>> m = fit_transit_from_gaps(np.array([2]), np.array([1]), np.array([7.5]),
        ...                           camera_ids=np.array([1, 2]), sigma_bins=0)
        >>> m.probabilities[1, 0].nonzero()[0].tolist()
        [7]
    """
    check_parameters(bin_width, sigma_bins, truncate, "transit fit")
    later = np.asarray(later, dtype=np.int64)
    earlier = np.asarray(earlier, dtype=np.int64)
    gaps = np.asarray(gaps, dtype=np.float64)
    person = np.arange(gaps.size) if person is None else np.asarray(person, dtype=np.int64)
    known = np.unique(np.asarray(camera_ids, dtype=np.int64))
    if known.size < 2:
        raise ReIDError(
            f"transit fit: only {known.size} camera(s); transit times need at least two cameras"
        )
    if gaps.size == 0:
        raise ReIDError(
            "transit fit: no identity visits two different cameras; transit times cannot be learned"
        )
    outside = np.setdiff1d(np.concatenate([later, earlier]), known)
    if outside.size:
        raise ReIDError(f"transit fit: camera {int(outside[0])} is not in the camera list")
    c = known.size
    li, ei = np.searchsorted(known, later), np.searchsorted(known, earlier)
    bins = np.floor(gaps / bin_width).astype(np.int64)
    radius = smoothing_radius(sigma_bins, truncate)
    num_bins = int(bins.max()) + radius + 1
    if c * c * num_bins > MAX_TABLE_ENTRIES:
        raise ReIDError(
            f"transit fit: gaps up to {gaps.max():g} need {num_bins} bins of width {bin_width:g} "
            f"for {c} cameras; use a larger bin width"
        )
    pair = li * c + ei
    counts = np.bincount(pair * num_bins + bins, minlength=c * c * num_bins).astype(np.float64)
    counts = counts.reshape(c, c, num_bins)
    distinct = np.unique(np.stack([person, pair]), axis=1)
    pair_ids = np.bincount(distinct[1], minlength=c * c).reshape(c, c)
    model = TransitTimeModel.from_counts(
        known,
        counts,
        pair_ids,
        bin_width=bin_width,
        sigma_bins=sigma_bins,
        truncate=truncate,
        time_unit="seconds",
    )
    log.info(
        "transit model from tracks: %d transits of %d identities, %d of %d camera pairs observed",
        gaps.size,
        np.unique(person).size,
        model.num_observed_pairs,
        c * (c - 1),
    )
    return model


def mutual_matches(
    tracklets: Tracklets,
    pair_i: np.ndarray,
    pair_j: np.ndarray,
    scores: np.ndarray,
    *,
    margin: float = 0.0,
) -> np.ndarray:
    """Mask of the confident matches: pairs whose two tracklets are each other's best-scored
    tracklet in the other's camera, each by at least ``margin`` over the second best there (a
    look-alike makes a match ambiguous, whichever of the two is right).

    Example:
        >>> t = Tracklets(np.array([1, 2, 2]), np.zeros(3), np.ones(3), np.eye(3))
        >>> mutual_matches(t, np.array([0, 0]), np.array([1, 2]), np.array([0.9, 0.5])).tolist()
        [True, False]
        >>> mutual_matches(t, np.array([0, 0]), np.array([1, 2]), np.array([0.9, 0.85]),
        ...                margin=0.1).tolist()
        [False, False]
    """
    cams = tracklets.cams
    if pair_i.size == 0:
        return np.zeros(0, dtype=bool)
    # Directed edges grouped by (source, camera of the target): the first of each sorted group is
    # its best, the next its runner-up.
    source = np.concatenate([pair_i, pair_j])
    target = np.concatenate([pair_j, pair_i])
    value = np.concatenate([scores, scores]).astype(np.float64)
    _, camera = np.unique(cams, return_inverse=True)
    group = source * (int(camera.max()) + 1) + camera.reshape(-1)[target]
    order = np.lexsort((-value, group))
    g, v = group[order], value[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    runner_up = np.full(order.size, -np.inf)
    has_next = np.zeros(order.size, dtype=bool)
    has_next[:-1] = g[1:] == g[:-1]
    runner_up[:-1] = np.where(has_next[:-1], v[1:], -np.inf)
    best = np.zeros(source.size, dtype=bool)
    best[order] = first & (v - runner_up >= margin)
    half = pair_i.size
    return best[:half] & best[half:]


def peaked_transits(
    later: np.ndarray,
    earlier: np.ndarray,
    gaps: np.ndarray,
    *,
    floor: float,
    min_transits: int = 2,
    alpha: float = 0.05,
    k: float = 3.0,
    max_spread: float = 0.25,
    num_pairs: int | None = None,
) -> np.ndarray:
    """Mask of the transits that lie in their camera pair's peak, for pairs that have one.

    A walked link gives gaps around its transit time; matches of two different people, and visits
    chained through an unmatched camera, give gaps spread over the period. Each pair's peak is found
    by the Hampel identifier iterated from all its gaps to a fixed point: the gaps within
    ``max(k · σ, floor)`` of their median, σ = 1.4826 · their median absolute deviation. A peak is
    a link when it is narrow (σ at most ``max_spread`` times its median, or ``floor``), holds at
    least ``min_transits`` gaps, and more than chance would put there: the gaps outside every peak
    are the background, spread evenly over the longest gap and the camera pairs, and a peak whose
    count a Poisson variable of the background's mean over the peak's width reaches with
    probability above ``alpha / num_pairs`` is left out (Bonferroni over the pairs).

    Args:
        later: camera of the later visit per transit.
        earlier: camera of the earlier visit per transit.
        gaps: gap per transit.
        floor: least half-width of a peak, > 0 (e.g. the smoothing σ, in the gaps' unit).
        min_transits: fewest gaps in a peak.
        alpha: chance of keeping a pair of background transits as a link, over all pairs.
        k: half-width of the peak in robust σ.
        max_spread: widest peak as a fraction of its median.
        num_pairs: ordered camera pairs of the network (default: those with a transit).

    Example:
        >>> later, earlier = np.array([2] * 5 + [3] * 3), np.array([1] * 5 + [1] * 3)
        >>> gaps = np.array([10.0, 11, 12, 11.5, 90, 5, 60, 140])
        >>> peaked_transits(later, earlier, gaps, floor=3.0).tolist()
        [True, True, True, True, False, False, False, False]
    """
    from scipy.stats import poisson

    floor = as_float("peaked transits: floor", floor, 0.0, low_open=True)
    later = np.asarray(later, dtype=np.int64)
    earlier = np.asarray(earlier, dtype=np.int64)
    gaps = np.asarray(gaps, dtype=np.float64)
    keep = np.zeros(gaps.size, dtype=bool)
    if gaps.size == 0:
        return keep
    _, pair = np.unique(np.stack([later, earlier]), axis=1, return_inverse=True)
    pair = pair.reshape(-1)
    peaks = []  # (rows of the peak, its width)
    for rows in np.split(np.argsort(pair, kind="stable"), np.cumsum(np.bincount(pair))[:-1]):
        g = gaps[rows]
        inside = np.ones(g.size, dtype=bool)
        for _ in range(50):
            median = np.median(g[inside])
            sigma = 1.4826 * np.median(np.abs(g[inside] - median))
            moved = np.abs(g - median) <= max(k * sigma, floor)
            if np.array_equal(moved, inside) or not moved.any():
                break  # ``inside`` is unchanged: its median and sigma stand
            inside = moved
        else:
            median = np.median(g[inside])
            sigma = 1.4826 * np.median(np.abs(g[inside] - median))
        if inside.sum() >= max(min_transits, 1) and sigma <= max(max_spread * median, floor):
            peaks.append((rows[inside], 2.0 * max(k * sigma, floor)))
    pairs = max(int(pair.max()) + 1 if num_pairs is None else num_pairs, 1)
    background = gaps.size - sum(rows.size for rows, _ in peaks)
    rate = background / (pairs * max(float(gaps.max()), floor))
    for rows, width in peaks:
        if poisson.sf(rows.size - 1, rate * width) <= alpha / pairs:
            keep[rows] = True
    return keep


def _components(n: int, pair_i: np.ndarray, pair_j: np.ndarray) -> np.ndarray:
    """Connected component (0..) of each of ``n`` tracklets in the graph of matched pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(pair_i.size), (pair_i, pair_j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def bootstrap_transit(
    tracklets: Tracklets,
    *,
    min_similarity: float = 0.5,
    margin: float = 0.0,
    min_transits: int = 2,
    alpha: float = 0.05,
    rounds: int = 5,
    neighbours: int = DEFAULT_NEIGHBOURS,
    fusion: FusionParams = DEFAULT_FUSION,
    camera_ids: np.ndarray | None = None,
    bin_width: float = DEFAULT_BIN_WIDTH,
    sigma_bins: float = DEFAULT_SIGMA_BINS,
    truncate: float = 3.0,
) -> TransitTimeModel:
    """A transit-time model from unlabelled tracklets, by hard expectation-maximisation.

    Round 0 matches tracklets of different cameras that are mutual nearest neighbours by cosine
    (cosine at least ``min_similarity``); the connected components of the matches are
    pseudo-identities, and their consecutive visits the transits. A camera pair becomes a link only
    where its transits pile up in a narrow peak (:func:`peaked_transits`: wrong matches spread
    their gaps over the period, a walked link does not), and the model is fitted on the peaks'
    transits alone, as with labels. Each later round matches again by the fused appearance and
    timing score, among pairs the current model finds plausible (a link's gap inside its support),
    and re-fits the links (it may drop one, never add one); it stops when the matches no longer
    change, or after ``rounds`` fits.

    Args:
        tracklets: tracklets of every camera.
        min_similarity: cosine a match needs.
        margin: lead a match needs over the runner-up in its camera, in percentiles of the round's
            scores of all candidate pairs (0: plain mutual nearest neighbours).
        min_transits: fewest transits in a camera pair's peak for it to become a link.
        alpha: chance of taking a pile-up of wrong matches for a link, over all camera pairs.
        rounds: most fits (at least 1).
        neighbours: candidate neighbours per tracklet.
        fusion: the fusion's parameters.
        camera_ids: every camera of the network (default: those of the tracklets).
        bin_width: seconds per bin.
        sigma_bins: smoothing σ in bins (also the least half-width of a peak).
        truncate: smoothing cut in σ.

    Raises:
        ReIDError: no confident cross-camera match, or no camera pair with a peak.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> looks, enter = rng.normal(size=(12, 8)), np.arange(12) * 30.0
        >>> starts = np.concatenate([enter, enter + 15 + rng.normal(0, 0.5, 12)])  # 5 s in view
        >>> tracklets = Tracklets(np.repeat([1, 2], 12), starts, starts + 5,
        ...                       np.tile(looks, (2, 1)) + 0.1 * rng.normal(size=(24, 8)))
        >>> model = bootstrap_transit(tracklets)  # no labels: who is who is never given
        >>> model.num_observed_pairs, round(float(model.mean_transit()[1, 0]))  # 1 -> 2, 10 s
        (1, 10)
    """
    rounds = positive_int("bootstrap: rounds", rounds)
    min_transits = positive_int("bootstrap: min_transits", min_transits)
    alpha = as_float("bootstrap: alpha", alpha, 0.0, 1.0, low_open=True)
    min_similarity = as_float("bootstrap: min_similarity", min_similarity, -1.0, 1.0)
    margin = as_float("bootstrap: margin", margin, 0.0, 1.0)
    pair_i, pair_j = candidate_pairs(tracklets, neighbours=neighbours)
    d, cams = tracklets.descriptors, tracklets.cams
    starts, ends = tracklets.starts, tracklets.ends
    cosine = np.einsum("pd,pd->p", d[pair_i], d[pair_j]) if pair_i.size else np.zeros(0)
    confident = cosine >= min_similarity
    j_later, _, _ = TransitCue.order(starts[pair_i], ends[pair_i], starts[pair_j], ends[pair_j])
    later_of = np.where(j_later, pair_j, pair_i)
    earlier_of = np.where(j_later, pair_i, pair_j)
    camera_ids = np.unique(cams if camera_ids is None else np.asarray(camera_ids, dtype=np.int64))
    model, previous = None, None
    for round_ in range(rounds):
        if model is None:
            scores = cosine
            allowed = confident
        else:
            cue = TransitCue(model, cams)
            index = cue.index(cams)
            timing, too_fast = cue.evaluate(
                index[pair_i],
                starts[pair_i],
                ends[pair_i],
                index[pair_j],
                starts[pair_j],
                ends[pair_j],
            )
            # What ``pair_scores`` would compute, from the cosines and timings already at hand.
            scores = fuse(cosine, timing, fusion)
            # The E-step's gate: a match must cross a link of the model inside its support, so
            # look-alikes at implausible times step aside and the right tracklet becomes the
            # nearest. (Pairs whose cameras the model lacks have timing 1 and stay allowed.)
            li, ei = index[later_of], index[earlier_of]
            known = (li >= 0) & (ei >= 0)
            link = np.zeros(pair_i.size, dtype=bool)
            link[known] = cue.observed[li[known], ei[known]]
            allowed = confident & ~too_fast & ((link & (timing > 0)) | ~known)
        sel = np.flatnonzero(allowed)
        # The margin is on percentiles of the round's scores, so that it means the same for a
        # model whose cosines all lie near 0.9 as for one that spreads them over [-1, 1].
        ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable") / max(scores.size, 1)
        mutual = sel[mutual_matches(tracklets, pair_i[sel], pair_j[sel], ranks[sel], margin=margin)]
        if mutual.size == 0:
            raise ReIDError(
                f"bootstrap: no mutual nearest tracklets of two cameras with cosine >= "
                f"{min_similarity:g}; lower the similarity"
            )
        # Pseudo-identities: tracklets joined by matches; their consecutive visits are the
        # transits, as with labels (a match of cameras 1 and 3 through a matched visit in camera 2
        # counts 1 -> 2 and 2 -> 3, not 1 -> 3).
        labels = _components(len(tracklets), pair_i[mutual], pair_j[mutual]) + 1
        person, later, earlier, gaps = consecutive_gaps(labels, cams, starts, ends)
        if model is not None:
            # Later rounds refine the links of round 0 and may drop some, never add one: chains of
            # gated matches put transits between other cameras too, and with the background gated
            # away any two close ones would pass for a peak.
            li, ei = model.camera_index(later), model.camera_index(earlier)
            linked = model.observed[li, ei]
            person, later, earlier, gaps = (
                person[linked],
                later[linked],
                earlier[linked],
                gaps[linked],
            )
        keep = peaked_transits(
            later,
            earlier,
            gaps,
            # A peak is at least one bin wide, however little the smoothing.
            floor=max(sigma_bins, 1.0) * bin_width,
            min_transits=min_transits,
            alpha=alpha,
            num_pairs=camera_ids.size * (camera_ids.size - 1),
        )
        if not keep.any():
            raise ReIDError(
                f"bootstrap: round {round_ + 1}: no camera pair has a narrow peak of at least "
                f"{min_transits} matched transits above chance ({mutual.size} matches); more "
                "tracks, or a better model"
            )
        model = fit_transit_from_gaps(
            later[keep],
            earlier[keep],
            gaps[keep],
            person=person[keep],
            camera_ids=camera_ids,
            bin_width=bin_width,
            sigma_bins=sigma_bins,
            truncate=truncate,
        )
        log.info(
            "bootstrap round %d: %d matches, %d of %d transits in the peaks of %d camera pairs",
            round_ + 1,
            mutual.size,
            int(keep.sum()),
            gaps.size,
            model.num_observed_pairs,
        )
        matched = mutual.tolist()
        if matched == previous:
            break
        previous = matched
    return model
