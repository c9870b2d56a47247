"""Cross-camera association: the sparse constrained average linkage against the dense definition,
noise-free identities, cannot-link on every output, the transit-time model on look-alikes, and the
transit fit from labelled and unlabelled tracks."""

from __future__ import annotations

import doctest
import re

import numpy as np
import pytest

from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc import associate as associate_module
from mtmct_reid.mtmc import transit_fit as transit_fit_module
from mtmct_reid.mtmc.associate import (
    CannotLink,
    Tracklets,
    TransitCue,
    agglomerate,
    associate,
    build_dendrogram,
    candidate_pairs,
    check_threshold,
    pair_scores,
)
from mtmct_reid.mtmc.descriptors import box_quality, tracklet_descriptors
from mtmct_reid.mtmc.threshold import choose_threshold, tracklet_idf1
from mtmct_reid.mtmc.transit_fit import (
    bootstrap_transit,
    fit_transit_from_visits,
    peaked_transits,
)
from tests.reference import mtmc_association as reference


def _tracklets(data: dict) -> Tracklets:
    return Tracklets(data["cams"], data["starts"], data["ends"], data["descriptors"])


def _same_camera_overlaps(tracklets: Tracklets, labels: np.ndarray) -> int:
    bad = 0
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        for a in idx:
            for b in idx:
                if a < b and tracklets.cams[a] == tracklets.cams[b]:
                    bad += (
                        tracklets.starts[a] <= tracklets.ends[b]
                        and tracklets.starts[b] <= tracklets.ends[a]
                    )
    return bad


def _partition(labels: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(labels == label).tolist()) for label in np.unique(labels)}


def test_doctests_run():
    for module in (associate_module, transit_fit_module):
        result = doctest.testmod(module, extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("with_transit", [False, True])
def test_sparse_linkage_equals_the_dense_definition(seed, with_transit):
    data = reference.synthetic_tracklets(
        14, 4, dim=8, noise=0.9, group_size=2, duration=300.0, graph_seed=seed, seed=seed + 10
    )
    tracklets = _tracklets(data)
    model = None
    if with_transit:
        model = fit_transit_from_visits(
            data["ids"], data["cams"], data["starts"], data["ends"], sigma_bins=1.0
        )
    threshold = 0.45 if with_transit else 0.6
    scores, too_fast = reference.dense_scores(
        data["cams"], data["starts"], data["ends"], data["descriptors"], model
    )
    expected = reference.dense_average_linkage(
        data["cams"], data["starts"], data["ends"], scores, too_fast, threshold
    )
    labels = associate(tracklets, transit=model, threshold=threshold, neighbours=len(tracklets))
    assert _partition(labels) == expected
    assert len(expected) < len(tracklets)  # some merges happened
    # The sparse pair scores are the dense ones.
    i, j = candidate_pairs(tracklets, neighbours=len(tracklets))
    cue = TransitCue(model, tracklets.cams) if model is not None else None
    np.testing.assert_allclose(pair_scores(tracklets, i, j, cue=cue), scores[i, j], atol=1e-5)


def test_noise_free_descriptors_give_idf1_one():
    data = reference.synthetic_tracklets(60, 6, dim=32, noise=0.0, duration=1200.0)
    tracklets = _tracklets(data)
    labels = associate(tracklets, threshold=0.95, neighbours=10)
    assert tracklet_idf1(labels, data["ids"], data["frames"]) == 1.0
    assert _partition(labels) == _partition(np.unique(data["ids"], return_inverse=True)[1])


def test_cannot_link_holds_on_every_output():
    # Many concurrent look-alikes in few cameras: appearance wants to merge overlapping tracklets.
    data = reference.synthetic_tracklets(
        60, 3, dim=8, noise=0.4, group_size=6, group_window=5.0, duration=200.0, seed=5
    )
    tracklets = _tracklets(data)
    model = fit_transit_from_visits(data["ids"], data["cams"], data["starts"], data["ends"])
    for transit in (None, model):
        dendrogram = build_dendrogram(tracklets, transit=transit, threshold=0.05, neighbours=8)
        assert dendrogram.merges_tried > dendrogram.linkage.size  # some merges were refused
        cue = TransitCue(model, tracklets.cams)
        rule = CannotLink(tracklets, cue if transit is not None else None)
        for threshold in (0.05, 0.3, 0.6):
            labels = dendrogram.labels(threshold)
            assert _same_camera_overlaps(tracklets, labels) == 0
            for label in np.unique(labels):
                group = np.flatnonzero(labels == label)
                for k in range(1, group.size):
                    assert not rule.violated(group[:k], group[k:])


def test_transit_model_raises_idf1_over_appearance_on_lookalikes():
    common = dict(dim=16, noise=0.25, group_size=4, jitter=0.02, group_window=40.0, duration=1500.0)
    train = reference.synthetic_tracklets(160, 6, seed=1, **common)
    test = reference.synthetic_tracklets(160, 6, seed=2, **common)
    model = fit_transit_from_visits(train["ids"], train["cams"], train["starts"], train["ends"])
    scores = {}
    for name, transit in (("appearance", None), ("transit", model)):
        dendrogram = build_dendrogram(_tracklets(train), transit=transit, threshold=0.05)
        threshold, _ = choose_threshold(dendrogram, train["ids"], train["frames"])
        labels = associate(_tracklets(test), transit=transit, threshold=threshold)
        scores[name] = tracklet_idf1(labels, test["ids"], test["frames"])
    assert scores["transit"] >= scores["appearance"] + 0.10, scores


def test_labelled_fit_recovers_the_generated_means():
    data = reference.synthetic_tracklets(400, 5, duration=20000.0, seed=3)
    model = fit_transit_from_visits(data["ids"], data["cams"], data["starts"], data["ends"])
    means = model.mean_transit()
    for later, earlier, mean in zip(
        data["link_later"], data["link_earlier"], data["link_mean"], strict=True
    ):
        fitted = means[model.camera_index(later), model.camera_index(earlier)]
        assert abs(fitted - mean) < 0.05 * mean + 1.0, (later, earlier, fitted, mean)
    # Pairs without a link were never walked consecutively: no probability at all.
    linked = set(zip(data["link_later"].tolist(), data["link_earlier"].tolist(), strict=True))
    for a in model.camera_ids:
        for b in model.camera_ids:
            if a != b and (a, b) not in linked:
                assert model.pair_ids[model.camera_index(a), model.camera_index(b)] == 0


@pytest.mark.parametrize("seeds", [(1, 2), (3, 4)])
def test_bootstrapped_transit_is_within_three_points_of_labelled(seeds):
    # Half the people in groups of three look-alikes whose walks are far apart in time.
    common = dict(dim=16, noise=0.25, group_size=3, lookalike_fraction=0.5, group_window=1500.0)
    train = reference.synthetic_tracklets(160, 6, seed=seeds[0], duration=1500.0, **common)
    test = reference.synthetic_tracklets(160, 6, seed=seeds[1], duration=1500.0, **common)
    labelled = fit_transit_from_visits(train["ids"], train["cams"], train["starts"], train["ends"])
    # Bootstrapped on the test period's own tracklets, without any label.
    bootstrapped = bootstrap_transit(_tracklets(test), min_similarity=0.6)
    scores = {}
    for name, transit in (("appearance", None), ("labelled", labelled), ("boot", bootstrapped)):
        dendrogram = build_dendrogram(_tracklets(train), transit=transit, threshold=0.05)
        threshold, _ = choose_threshold(dendrogram, train["ids"], train["frames"])
        labels = associate(_tracklets(test), transit=transit, threshold=threshold)
        scores[name] = tracklet_idf1(labels, test["ids"], test["frames"])
    assert scores["labelled"] >= scores["appearance"] + 0.10, scores
    assert scores["boot"] >= scores["labelled"] - 0.03, scores
    # It finds every generated link; a pair it keeps besides (at most two) is a pile-up of a few
    # wrong matches, thinner than any link. The links' mean transit times are the labelled fit's
    # (wrong matches' gaps, spread over the period, are left out).
    later, earlier = np.nonzero(bootstrapped.observed)
    found = {
        (int(bootstrapped.camera_ids[a]), int(bootstrapped.camera_ids[b])): int(
            bootstrapped.pair_ids[a, b]
        )
        for a, b in zip(later.tolist(), earlier.tolist(), strict=True)
    }
    links = set(zip(test["link_later"].tolist(), test["link_earlier"].tolist(), strict=True))
    others = {pair: count for pair, count in found.items() if pair not in links}
    assert links <= set(found) and len(others) <= 2, (others, links - set(found))
    assert all(count < min(found[link] for link in links) for count in others.values()), found
    boot_means, labelled_means = bootstrapped.mean_transit(), labelled.mean_transit()
    for later, earlier, mean in zip(
        test["link_later"], test["link_earlier"], test["link_mean"], strict=True
    ):
        a, b = bootstrapped.camera_index(later), bootstrapped.camera_index(earlier)
        assert abs(boot_means[a, b] - labelled_means[a, b]) < 0.1 * mean, (later, earlier)


def test_peaked_transits_keep_a_links_peak_and_drop_spread_pairs():
    rng = np.random.default_rng(0)
    # Camera pair (2, 1): a walked link, 12 s ± 1 s, plus 4 wrong matches anywhere in 0..300 s.
    link = rng.normal(12.0, 1.0, size=20)
    wrong = np.array([150.0, 40.0, 260.0, 90.0])

    def transits(spread: int, close: bool):
        # Pair (3, 1): chance matches only, spread evenly over the period; pair (1, 3): two gaps
        # a second apart.
        later = np.array([2] * 24 + [3] * spread + [1] * (2 if close else 0))
        earlier = np.array([1] * 24 + [1] * spread + [3] * (2 if close else 0))
        extra = [30.0, 31.0] if close else []
        return later, earlier, np.concatenate([link, wrong, np.linspace(5, 295, spread), extra])

    keep = peaked_transits(*transits(15, close=False), floor=3.0)
    assert keep[:20].all() and not keep[20:].any()
    # Two close gaps are a link against a quiet background, chance against a busy one.
    assert peaked_transits(*transits(15, close=True), floor=3.0)[-2:].all()
    assert not peaked_transits(*transits(150, close=True), floor=3.0)[-2:].any()
    assert not peaked_transits(*transits(15, close=True), floor=3.0, min_transits=3)[-2:].any()
    assert not peaked_transits(link[:0], link[:0], link[:0], floor=3.0).size


def test_bootstrap_rejects_bad_parameters_and_featureless_tracklets():
    data = reference.synthetic_tracklets(20, 3, dim=8, duration=300.0, seed=5)
    for option, value, expected in (
        ("rounds", 0, "bootstrap: rounds must be a positive integer, got 0"),
        ("rounds", 2.5, "bootstrap: rounds must be a positive integer"),
        ("min_transits", 0, "bootstrap: min_transits must be a positive integer, got 0"),
        ("alpha", 0.0, "bootstrap: alpha must be a finite number in (0.0, 1.0], got 0.0"),
        (
            "min_similarity",
            1.5,
            "bootstrap: min_similarity must be a finite number in [-1.0, 1.0], got 1.5",
        ),
        (
            "margin",
            float("nan"),
            "bootstrap: margin must be a finite number in [0.0, 1.0], got nan",
        ),
    ):
        with pytest.raises(ReIDError, match=re.escape(expected)):
            bootstrap_transit(_tracklets(data), **{option: value})
    with pytest.raises(ReIDError, match="peaked transits: floor must be a finite number > 0"):
        peaked_transits(np.array([2]), np.array([1]), np.array([0.0]), floor=0.0)
    with pytest.raises(ReIDError, match="no mutual nearest tracklets"):
        bootstrap_transit(_tracklets(data), min_similarity=1.0)


def test_box_quality_and_descriptors():
    frames = np.array([1, 1, 1, 2])
    boxes = np.array([[0, 0, 40, 80], [30, 0, 40, 80], [200, 0, 40, 80], [0, 0, 4, 8]])
    np.testing.assert_allclose(box_quality(frames, boxes), [0.75, 0.75, 1.0, 0.0])
    features = np.array([[2.0, 0.0], [0.0, 5.0], [1.0, 1.0], [0.0, 1.0]])
    desc = tracklet_descriptors(features, np.array([0, 0, 1, 1]), np.array([3.0, 1.0, 0, 0]), 2)
    expected0 = np.array([3.0, 1.0]) / np.hypot(3.0, 1.0)
    expected1 = np.array([1 / np.sqrt(2), 1 / np.sqrt(2) + 1]) / np.linalg.norm(
        [1 / np.sqrt(2), 1 / np.sqrt(2) + 1]
    )
    np.testing.assert_allclose(desc, np.stack([expected0, expected1]), rtol=1e-6)
    with pytest.raises(ReIDError, match="tracklet 2 has no box"):
        tracklet_descriptors(features, np.array([0, 0, 1, 1]), np.ones(4), 3)


def test_bad_input_is_one_clear_error():
    with pytest.raises(ReIDError, match="ends"):
        Tracklets(np.array([1]), np.array([5.0]), np.array([4.0]), np.ones((1, 2)))
    with pytest.raises(ReIDError, match=r"expected a number in \(0, 1\)"):
        check_threshold(1.5)
    with pytest.raises(ReIDError, match=r"\(0, 1\)"):
        associate(Tracklets(np.array([1]), np.zeros(1), np.ones(1), np.ones((1, 2))), threshold=0)


def test_camera_missing_from_the_model_falls_back_with_one_warning(caplog):
    data = reference.synthetic_tracklets(30, 4, duration=600.0)
    keep = data["cams"] != 4
    model = fit_transit_from_visits(
        data["ids"][keep], data["cams"][keep], data["starts"][keep], data["ends"][keep]
    )
    tracklets = _tracklets(data)
    with caplog.at_level("WARNING"):
        labels = associate(tracklets, transit=model, threshold=0.6)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "no camera 4" in warnings[0].getMessage()
    assert labels.size == len(tracklets)
    # Pairs with camera 4 score by appearance with a neutral (plausible) timing cue.
    i, j = candidate_pairs(tracklets, neighbours=len(tracklets))
    with_4 = (tracklets.cams[i] == 4) | (tracklets.cams[j] == 4)
    cos = np.einsum("pd,pd->p", tracklets.descriptors[i], tracklets.descriptors[j])
    neutral = 1.0 / (1.0 + 2.0 * np.exp(-5.0))
    scores = pair_scores(tracklets, i, j, cue=TransitCue(model, tracklets.cams))
    np.testing.assert_allclose(scores[with_4], neutral / (1 + np.exp(-5 * cos[with_4])), rtol=1e-5)
    assert not np.allclose(scores[~with_4], neutral / (1 + np.exp(-5 * cos[~with_4])), rtol=1e-3)
    # agglomerate on an empty graph merges nothing
    d = agglomerate(tracklets, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 0.5)
    assert d.labels(0.5).max() == len(tracklets) - 1
