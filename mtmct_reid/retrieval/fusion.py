"""Logistic smoothing: st-ReID's joint score of a visual similarity and a transit-time probability.

``f(x; λ, γ) = 1 / (1 + λ·exp(−γ·x))`` squashes each cue into (0, 1) so that neither dominates: a
spatial-temporal probability of 0 (same camera, unseen pair, implausible delay) still leaves a joint
score ``f(s; λ0, γ0) / (1 + λ1)`` that ranks by appearance. The joint score is the product of the two
smoothed cues (st-ReID, Wang et al., AAAI 2019, in the README's references; its values
γ0 = γ1 = 5, λ0 = 1, λ1 = 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtmct_reid.errors import ReIDError
from mtmct_reid.validation import as_float


@dataclass(frozen=True)
class FusionParams:
    """Parameters of the two logistic functions (visual: λ0, γ0; spatial-temporal: λ1, γ1).

    Args:
        lambda0: λ of the visual similarity's logistic (> 0).
        gamma0: γ (steepness) of the visual similarity's logistic.
        lambda1: λ of the spatial-temporal probability's logistic (> 0).
        gamma1: γ of the spatial-temporal probability's logistic.

    Example:
        >>> FusionParams(lambda1=1.0).gamma1
        5.0
    """

    lambda0: float = 1.0
    gamma0: float = 5.0
    lambda1: float = 2.0
    gamma1: float = 5.0

    def __post_init__(self) -> None:
        # Stored as floats: "5" read from a YAML config is the number 5 (the one input policy).
        for name in ("lambda0", "gamma0", "lambda1", "gamma1"):
            minimum = 0 if name.startswith("lambda") else None
            value = as_float(f"fusion {name}", getattr(self, name), minimum, low_open=True)
            object.__setattr__(self, name, value)


#: The reference values of st-ReID (the default of :func:`fuse` and of the evaluation).
DEFAULT_FUSION = FusionParams()


def logistic(x: np.ndarray | float, lam: float, gamma: float) -> np.ndarray:
    """``1 / (1 + lam * exp(-gamma * x))`` elementwise, in float32 for float32 input.

    Args:
        x: values (a visual similarity or a spatial-temporal probability).
        lam: λ, the value at ``x = 0`` is ``1 / (1 + λ)``.
        gamma: γ, the steepness.

    Example:
        >>> float(logistic(0.0, 1.0, 5.0))
        0.5
    """
    x = np.asarray(x)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    out = np.asarray(np.multiply(x, -gamma, dtype=dtype))  # 0-d input gives a scalar otherwise
    # exp overflows to inf for very negative x; 1 / inf = 0 is the correct limit.
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out *= lam
    out += 1
    return np.reciprocal(out, out=out)


def logistic_denominator(
    x: np.ndarray | float, lam: float, gamma: float, *, out: np.ndarray | None = None
) -> np.ndarray:
    """``1 + lam * exp(-gamma * x)`` in float32: the reciprocal of :func:`logistic`.

    The joint score is ``1 / (d0 · d1)`` with one denominator per cue, which costs one division
    instead of two; callers that fill the spatial-temporal denominator sparsely build on this.

    Args:
        x: values, any shape.
        lam: λ.
        gamma: γ.
        out: optional float32 array of ``x``'s shape for the result (may be ``x`` itself).

    Example:
        >>> logistic_denominator(np.zeros(2, np.float32), 2.0, 5.0)
        array([3., 3.], dtype=float32)
    """
    x = np.asarray(x)
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    np.multiply(x, np.float32(-gamma), out=out, dtype=np.float32, casting="unsafe")
    # exp overflows to inf for very negative x; the joint score 1 / inf = 0 is the correct limit.
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
        out *= np.float32(lam)
    out += np.float32(1)
    return out


def fuse(
    similarity: np.ndarray,
    st_probability: np.ndarray,
    params: FusionParams = DEFAULT_FUSION,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Joint score ``f(similarity; λ0, γ0) · f(st_probability; λ1, γ1)`` as float32.

    One float32 temporary of ``st_probability``'s size; pass ``out`` (which may be ``similarity``
    itself when it is float32) to write the result in place, chunk by chunk.

    Args:
        similarity: visual similarities (e.g. cosine), any shape.
        st_probability: spatial-temporal probabilities, broadcastable to ``similarity``'s shape.
        params: the logistic parameters.
        out: optional float32 array of ``similarity``'s shape for the result.

    Returns:
        The joint scores, float32, ``similarity``'s shape (``out`` when given).

    Example:
        >>> fuse(np.array([0.0], np.float32), np.array([0.0], np.float32))  # 1/2 * 1/3
        array([0.16666667], dtype=float32)
    """
    similarity = np.asarray(similarity)
    st_probability = np.asarray(st_probability)
    try:
        shape = np.broadcast_shapes(st_probability.shape, similarity.shape)
    except ValueError:
        shape = None
    if shape != similarity.shape:
        raise ReIDError(
            f"spatial-temporal probabilities of shape {st_probability.shape} do not match "
            f"similarities of shape {similarity.shape}"
        )
    if out is None:
        out = np.empty(similarity.shape, dtype=np.float32)
    elif out.shape != similarity.shape or out.dtype != np.float32:
        raise ReIDError(
            f"fuse: out has shape {out.shape} and dtype {out.dtype}, expected float32 {similarity.shape}"
        )
    st_denominator = logistic_denominator(st_probability, params.lambda1, params.gamma1)
    return fuse_denominator(similarity, st_denominator, params, out=out)


def fuse_denominator(
    similarity: np.ndarray, st_denominator: np.ndarray, params: FusionParams, *, out: np.ndarray
) -> np.ndarray:
    """Joint score ``1 / (d0 · st_denominator)`` into ``out``, ``d0`` being the visual cue's
    :func:`logistic_denominator`: the end of :func:`fuse`, for callers that build the
    spatial-temporal denominator themselves (e.g. sparsely). No checks.

    Args:
        similarity: visual similarities, ``out``'s shape.
        st_denominator: float32 spatial-temporal denominators, broadcastable to ``out``'s shape
            (computed before ``out`` is written, as ``out`` may be ``similarity`` itself).
        params: the logistic parameters (λ0, γ0 are used).
        out: float32 array of ``similarity``'s shape for the result.

    Returns:
        ``out``.

    Example:
        >>> d1 = logistic_denominator(np.zeros(1, np.float32), 2.0, 5.0)
        >>> fuse_denominator(np.zeros(1, np.float32), d1, DEFAULT_FUSION, out=np.empty(1, np.float32))
        array([0.16666667], dtype=float32)
    """
    logistic_denominator(similarity, params.lambda0, params.gamma0, out=out)
    # d0 · d1 overflows to inf for very negative inputs; the joint score 1 / inf = 0 is the limit.
    with np.errstate(over="ignore"):
        out *= st_denominator
    return np.reciprocal(out, out=out)
