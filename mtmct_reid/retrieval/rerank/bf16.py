"""bfloat16 candidate search: whether the CPU has it natively, and rigorous bounds on its error.

A bfloat16 product of the features is about twice as fast as a float32 one on CPUs with native
bfloat16 arithmetic, but its scores are off by up to a few thousandths. The bounds here are what lets
the neighbour search use it without changing any result: a row's candidates are re-scored in float32,
and a candidate list is accepted only when the bound proves that no sample left out could belong to it.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Rows per block of elementwise passes over the features.
_BLOCK_ROWS = 512
#: Bound on |bfloat16(s) - s| for the bfloat16 rounding of any score |s| < 2 (half its spacing).
BF16_ROUNDING = 2.0**-8


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether torch reports native bfloat16 arithmetic on this CPU (AVX512-BF16 or AMX-BF16).

    Without it a bfloat16 product is emulated and slower than float32, so the search uses float32
    products throughout; the results are the same either way.

    Example:
        >>> isinstance(cpu_has_native_bf16(), bool)
        True
    """
    import torch

    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        flags = capabilities()
        return bool(flags.get("avx512_bf16") or flags.get("amx_bf16"))
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def bf16_error_bounds(features: np.ndarray, features_bf16: object) -> np.ndarray:
    """Per row ``i``, a bound on |bf16 score(i, j) - float32 score(i, j)| valid for every ``j``.

    With ``x = x~ + e`` (``x~`` the bfloat16 rounding), ``x_i.x_j - x~_i.x~_j = e_i.x_j + x~_i.e_j``,
    bounded by Cauchy-Schwarz with ``|x~| <= |x| + |e|``; both products accumulate in float32, each
    within ``gamma_D |a| |b|`` of its real value. The product's final rounding to bfloat16 is not
    included (see :func:`bf16_half_ulp`).

    Args:
        features: float32 [N, D] rows.
        features_bf16: the torch bfloat16 copy of ``features``.

    Returns:
        float64 [N] bounds.

    Example:
        >>> import torch
        >>> x = np.eye(3, dtype=np.float32)
        >>> bool((bf16_error_bounds(x, torch.from_numpy(x).bfloat16()) < 1e-5).all())
        True
    """
    dim = features.shape[1]
    num = len(features)
    x_norm = np.empty(num, dtype=np.float32)
    e_norm = np.empty(num, dtype=np.float32)
    for start in range(0, num, _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        x = features[rows]
        # Exact: the bits that the bfloat16 rounding dropped.
        e = x - features_bf16[rows].float().numpy()
        x_norm[rows] = np.sqrt(np.einsum("ij,ij->i", x, x))
        e_norm[rows] = np.sqrt(np.einsum("ij,ij->i", e, e))
    unit = 2.0**-24
    gamma = dim * unit / (1 - dim * unit)
    # The norms were computed in float32: inflate them past their own rounding error.
    x_norm = x_norm.astype(np.float64) * (1 + 2 * gamma)
    e_norm = e_norm.astype(np.float64) * (1 + 2 * gamma)
    x_max, e_max = x_norm.max(), e_norm.max()
    xb_norm = x_norm + e_norm
    bound = e_norm * x_max + xb_norm * e_max + gamma * (xb_norm * (x_max + e_max) + x_norm * x_max)
    # Slack for products flushed to zero (denormals) by the bfloat16 kernels.
    return bound + dim * 2.0**-120


def bf16_half_ulp(values: np.ndarray) -> np.ndarray:
    """Half the bfloat16 spacing at each (bfloat16-representable) value: its rounding error bound.

    Example:
        >>> bf16_half_ulp(np.array([1.0, 0.75]))
        array([0.00390625, 0.00195312])
    """
    _, exponent = np.frexp(np.asarray(values, dtype=np.float64))
    return np.ldexp(1.0, exponent - 9)


def float32_at_least(values: np.ndarray) -> np.ndarray:
    """float32 values rounded up (never below the float64 input), so bounds stay bounds.

    Example:
        >>> bool(float32_at_least(np.array([0.1]))[0] >= 0.1)
        True
    """
    values = np.asarray(values, dtype=np.float64)
    rounded = values.astype(np.float32)
    low = rounded.astype(np.float64) < values
    rounded[low] = np.nextafter(rounded[low], np.float32(np.inf))
    return rounded


def float32_at_most(values: np.ndarray) -> np.ndarray:
    """float32 values rounded down (never above the float64 input).

    Example:
        >>> bool(float32_at_most(np.array([0.1]))[0] <= 0.1)
        True
    """
    values = np.asarray(values, dtype=np.float64)
    rounded = values.astype(np.float32)
    high = rounded.astype(np.float64) > values
    rounded[high] = np.nextafter(rounded[high], np.float32(-np.inf))
    return rounded


def _num_threads() -> int:
    import torch

    return max(1, torch.get_num_threads())


def pair_dots(features: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float32 dot products of the pairs (rows[p], cols[p]); equal rows consecutive (e.g. sorted).

    Example:
        >>> x = np.eye(3, dtype=np.float32)
        >>> pair_dots(x, np.array([0, 0, 2]), np.array([0, 1, 2]))
        array([1., 0., 1.], dtype=float32)
    """
    out = np.empty(len(rows), dtype=np.float32)
    if not len(rows):
        return out
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    stops = np.append(starts[1:], len(rows))

    def work(lo: int, hi: int) -> None:
        # One small gather + matrix-vector product per row: far cheaper than gathering a [p, D]
        # block, and numpy releases the GIL in both, so threads split the rows.
        for start, stop in zip(starts[lo:hi].tolist(), stops[lo:hi].tolist(), strict=True):
            np.matmul(features[cols[start:stop]], features[rows[start]], out=out[start:stop])

    threads = min(_num_threads(), max(1, len(starts) // 64))
    if threads == 1:
        work(0, len(starts))
        return out
    bounds = np.linspace(0, len(starts), threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, bounds[:-1], bounds[1:]))
    return out


def row_dots(features: np.ndarray, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """float32 dot products of ``rows[r]`` with each of ``candidates[r]`` (``rows`` distinct), [b, c].

    Example:
        >>> x = np.eye(3, dtype=np.float32)
        >>> row_dots(x, np.array([0, 1]), np.array([[0, 1], [1, 2]]))
        array([[1., 0.],
               [1., 0.]], dtype=float32)
    """
    pair_rows = np.repeat(rows, candidates.shape[1])
    return pair_dots(features, pair_rows, candidates.reshape(-1)).reshape(candidates.shape)
