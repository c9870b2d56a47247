"""Logistic smoothing: the joint score against the formula 1/(1 + λ0 e^(−γ0 s)) · 1/(1 + λ1 e^(−γ1 p))."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.fusion import FusionParams, fuse, logistic, logistic_denominator


def formula(x, lam, gamma):
    return 1.0 / (1.0 + lam * np.exp(-gamma * np.asarray(x, dtype=np.float64)))


def test_logistic_matches_the_formula():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 1000)
    for lam, gamma in ((1.0, 5.0), (2.0, 5.0), (0.3, 12.0), (4.0, -2.0)):
        np.testing.assert_allclose(logistic(x, lam, gamma), formula(x, lam, gamma), rtol=1e-12)
    out32 = logistic(x.astype(np.float32), 2.0, 5.0)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, formula(x, 2.0, 5.0), rtol=1e-6)
    assert float(logistic(0.0, 1.0, 5.0)) == 0.5


def test_logistic_denominator_is_the_reciprocal_and_works_in_place():
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, 300).astype(np.float32)
    denominator = logistic_denominator(x, 2.0, 5.0)
    assert denominator.dtype == np.float32
    np.testing.assert_allclose(1 / denominator, formula(x, 2.0, 5.0), rtol=1e-6)
    assert logistic_denominator(x, 2.0, 5.0, out=x) is x
    np.testing.assert_array_equal(x, denominator)


def test_fuse_matches_the_formula_with_reference_and_custom_parameters():
    rng = np.random.default_rng(1)
    similarity = rng.uniform(-1, 1, (37, 53)).astype(np.float32)
    probability = rng.uniform(0, 0.05, (37, 53)).astype(np.float32)
    probability[rng.random(probability.shape) < 0.3] = 0  # same camera / unseen pairs
    for params in (FusionParams(), FusionParams(lambda0=0.5, gamma0=3, lambda1=4, gamma1=80)):
        joint = fuse(similarity, probability, params)
        expected = formula(similarity, params.lambda0, params.gamma0) * formula(
            probability, params.lambda1, params.gamma1
        )
        assert joint.dtype == np.float32 and joint.shape == similarity.shape
        np.testing.assert_allclose(joint, expected, rtol=2e-6)


def test_zero_probability_keeps_the_visual_order():
    similarity = np.array([0.9, 0.2, 0.5], dtype=np.float32)
    joint = fuse(similarity, np.zeros(3, np.float32))
    np.testing.assert_allclose(joint, formula(similarity, 1, 5) / 3, rtol=1e-6)
    assert np.argsort(-joint).tolist() == [0, 2, 1]


def test_probability_can_overturn_a_visual_ranking():
    # st-ReID's point: a plausible transit time lifts a less similar candidate above a similar one
    # seen at an impossible time.
    joint = fuse(np.array([0.60, 0.55], np.float32), np.array([0.0, 0.3], np.float32))
    assert joint[1] > joint[0]


def test_fuse_in_place_and_broadcasting():
    rng = np.random.default_rng(2)
    similarity = rng.uniform(-1, 1, (4, 6)).astype(np.float32)
    expected = fuse(similarity, np.full((1, 6), 0.01, np.float32))
    buffer = similarity.copy()
    result = fuse(buffer, np.float32(0.01), out=buffer)
    assert result is buffer
    np.testing.assert_allclose(buffer, expected, rtol=1e-6)
    # float64 input still gives float32
    assert fuse(similarity.astype(np.float64), 0.0).dtype == np.float32


def test_extreme_values_saturate_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        joint = fuse(np.array([-1e4, 1e4], np.float32), np.array([0.5, -1e4], np.float32))
        assert joint.tolist() == [0.0, 0.0]
        assert logistic(np.array([-1e4]), 1.0, 5.0).tolist() == [0.0]


def test_shape_mismatch_and_bad_out_are_errors():
    with pytest.raises(ReIDError, match=r"shape \(3,\) do not match similarities of shape \(2,\)"):
        fuse(np.zeros(2, np.float32), np.zeros(3, np.float32))
    with pytest.raises(ReIDError, match="out has shape"):
        fuse(np.zeros(2, np.float32), 0.0, out=np.zeros(2, np.float64))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lambda0": 0.0}, "fusion lambda0 must be a finite number > 0, got 0.0"),
        ({"lambda1": -1.0}, "fusion lambda1 must be a finite number > 0, got -1.0"),
        ({"gamma0": float("nan")}, "fusion gamma0 must be a finite number, got nan"),
        ({"gamma1": "steep"}, "fusion gamma1 must be a finite number, got 'steep'"),
        ({"gamma1": True}, "fusion gamma1 must be a finite number, got True"),
    ],
)
def test_fusion_params_are_validated(kwargs, message):
    with pytest.raises(ReIDError, match=message):
        FusionParams(**kwargs)


def test_fusion_params_from_yaml_text_are_numbers():
    params = FusionParams(lambda0="1", gamma1="5e0")
    assert params == FusionParams() and type(params.lambda0) is float


def test_reference_defaults():
    assert FusionParams() == FusionParams(lambda0=1.0, gamma0=5.0, lambda1=2.0, gamma1=5.0)
