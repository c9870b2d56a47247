"""The one input policy: integers, sizes and floats from arguments, files and arrays.

Every number a user can hand the toolkit (a command-line option, a CSV field, a digit run in a file
name, a value in a checkpoint or a YAML config, an array in an ``.npz``) goes through one of these
functions. They accept what a person would call that number, refuse everything else with one line
naming where the value came from and what was expected (:class:`~mtmct_reid.errors.ReIDError`), and
keep integers within int64 so that no later numpy cast overflows or wraps.

``name`` is the label put in front of the message: an option (``"--top-k"``), a field
(``"m.csv row 3 field 'pid'"``), a file (``"0001_c1s1_000151_00.jpg"``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import operator
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mtmct_reid.errors import ReIDError

#: The int64 range every integer of the toolkit lives in (ids, cameras, frames, sizes).
INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)

#: The largest float32 (features are stored as float32): larger values would become inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)

_INT_TEXT = re.compile(r"[+-]?\d+")
_SHOWN = 40  # characters of a bad value quoted in a message (a 300-digit number is not read whole)


def shown(value: Any) -> str:
    """``repr(value)``, shortened to a readable length for messages.

    Example:
        >>> shown("9" * 100)
        "'9999999999999999999999999999999999999… (102 characters)"
    """
    text = repr(value)
    if len(text) <= _SHOWN:
        return text
    return f"{text[: _SHOWN - 2]}… ({len(text)} characters)"


def _expectation(minimum: int | float | None, maximum: int | float | None, kind: str) -> str:
    if minimum == 1 and kind == "an integer":
        return "a positive integer" + ("" if maximum is None else f" (at most {maximum})")
    if minimum is not None and maximum is not None:
        return f"{kind} in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    if maximum is not None:
        return f"{kind} <= {maximum}"
    return kind


def as_int(
    name: str,
    value: Any,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    whole_floats: bool = False,
) -> int:
    """``value`` as a Python int within int64 and ``[minimum, maximum]``.

    Accepted: ints and numpy integers (not booleans), decimal integer text (``"0042"``, ``"-1"``,
    ``" 7 "``) and, with ``whole_floats``, floats and float text with no fractional part
    (``40.0``, ``"1e3"``, as YAML configs write them).

    Args:
        name: what the value is, put in front of the message.
        value: the value to check.
        minimum: smallest allowed value (inclusive), or None for int64's.
        maximum: largest allowed value (inclusive), or None for int64's.
        whole_floats: also accept floats that are whole numbers.

    Raises:
        ReIDError: ``"<name> must be <what was expected>, got <value>"``.

    Example:
        >>> as_int("--top-k", "10", minimum=1)
        10
        >>> as_int("pid", "99999999999999999999")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: pid must be an integer within int64, got '99999999999999999999'
    """
    number: int | None = None
    if isinstance(value, (bool, np.bool_)):
        number = None
    elif isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            # Bounded before int() so a megabyte of digits is not converted (and is refused).
            number = int(text) if len(text.lstrip("+-").lstrip("0")) <= 20 else INT64_MAX + 1
        elif whole_floats:
            number = _whole(_float_or_nan(text))
    else:
        try:
            number = operator.index(value)
        except TypeError:
            if whole_floats and isinstance(value, (float, np.floating)):
                number = _whole(float(value))
    low = INT64_MIN if minimum is None else max(minimum, INT64_MIN)
    high = INT64_MAX if maximum is None else min(maximum, INT64_MAX)
    if number is None or not low <= number <= high:
        kind = "an integer" if minimum is not None or maximum is not None else ""
        what = _expectation(minimum, maximum, "an integer") if kind else "an integer within int64"
        if number is not None and kind and not INT64_MIN <= number <= INT64_MAX:
            what += " (within int64)"
        raise ReIDError(f"{name} must be {what}, got {shown(value)}")
    return number


def positive_int(name: str, value: Any, maximum: int | None = None) -> int:
    """``value`` as an integer ``>= 1`` (and ``<= maximum``); see :func:`as_int`.

    Example:
        >>> positive_int("num_classes", 751)
        751
        >>> positive_int("num_classes", 0)
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: num_classes must be a positive integer, got 0
    """
    return as_int(name, value, minimum=1, maximum=maximum)


def as_bool(name: str, value: Any) -> bool:
    """``value`` if it is a boolean (YAML ``true``/``false``, numpy's bool); anything else, ``1``
    and ``"yes"`` included, is an error.

    Example:
        >>> as_bool("nesterov", True)
        True
        >>> as_bool("flip", "yes")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: flip must be true or false, got 'yes'
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ReIDError(f"{name} must be true or false, got {value!r}")


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _whole(number: float) -> int | None:
    if math.isfinite(number) and number.is_integer() and abs(number) <= 2.0**63:
        return int(number)
    return None


def as_float(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float within ``[minimum, maximum]`` (bounds excluded with ``low_open``
    or ``high_open``).

    Accepted: ints, floats, numpy real scalars and numeric text (``"5e-4"``); not booleans, not
    complex numbers, not NaN or inf.

    Raises:
        ReIDError: ``"<name> must be <what was expected>, got <value>"``.

    Example:
        >>> as_float("weight_decay", "5e-4")
        0.0005
        >>> as_float("--bin-width", "0", minimum=0, low_open=True)
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: --bin-width must be a finite number > 0, got '0'
    """
    number = math.nan
    if isinstance(value, str):
        number = _float_or_nan(value.strip())
    elif not isinstance(value, (bool, np.bool_, complex, np.complexfloating)):
        number = _float_or_nan(value)
    ok = math.isfinite(number)
    if ok and minimum is not None:
        ok = number > minimum if low_open else number >= minimum
    if ok and maximum is not None:
        ok = number < maximum if high_open else number <= maximum
    if not ok:
        if minimum is not None and maximum is not None:
            what = (
                f"a finite number in {'(' if low_open else '['}{minimum}, "
                f"{maximum}{')' if high_open else ']'}"
            )
        elif minimum is not None:
            what = f"a finite number {'>' if low_open else '>='} {minimum}"
        elif maximum is not None:
            what = f"a finite number {'<' if high_open else '<='} {maximum}"
        else:
            what = "a finite number"
        raise ReIDError(f"{name} must be {what}, got {shown(value)}")
    return number


def int64_array(name: str, array: Any) -> np.ndarray:
    """An array of integers as int64, refusing values int64 cannot hold exactly.

    Accepted: integer arrays within int64 (unsigned too) and real float arrays whose values are all
    whole numbers within ±2**53 (where a float is still exact). Refused, naming the first bad
    element: booleans, complex numbers, strings, objects, fractions, NaN/inf, and values beyond int64.

    Example:
        >>> int64_array("query_pids", np.array([1.0, 2.0, -1.0]))
        array([ 1,  2, -1])
        >>> int64_array("query_pids", np.array([1e30]))
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: query_pids has 1e+30 at element 0, expected integers (whole numbers within ±2**53 when stored as floats)
    """
    array = np.asarray(array)
    kind = array.dtype.kind
    if kind == "i":
        return array.astype(np.int64, copy=False)
    if kind == "u":
        if array.size and array.max() > INT64_MAX:
            index = int(np.argmax(array > INT64_MAX))
            raise ReIDError(
                f"{name} has {array.flat[index]} at element {index}, expected integers within int64"
            )
        return array.astype(np.int64)
    if kind == "f":
        limit = 2.0**53
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(array) & (np.abs(array) <= limit) & (np.mod(array, 1) == 0))
        if bad.any():
            index = int(np.flatnonzero(bad.reshape(-1))[0])
            raise ReIDError(
                f"{name} has {array.reshape(-1)[index].item()!r} at element {index}, expected "
                "integers (whole numbers within ±2**53 when stored as floats)"
            )
        return array.astype(np.int64)
    raise ReIDError(f"{name} has dtype {array.dtype}, expected integers")


def finite_float_array(
    name: str, array: Any, dtype: type[np.floating] = np.float32, bound: float | None = None
) -> np.ndarray:
    """A real-valued array as ``dtype``, refusing NaN/inf and values the cast would turn to inf.

    Args:
        name: what the array is, for messages.
        array: the array.
        dtype: the float type it is stored as (float32 for features).
        bound: largest absolute value allowed (defaults to the dtype's largest finite value).

    Example:
        >>> finite_float_array("gallery_features", np.array([[1e300]]))
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: gallery_features has NaN, inf or values beyond ±3.4028235e+38 in 1 row(s), first at row 0 (1e+300)
    """
    array = np.asarray(array)
    if array.dtype.kind not in "iuf":
        raise ReIDError(f"{name} has dtype {array.dtype}, expected real numbers")
    limit = float(np.finfo(dtype).max) if bound is None else bound
    rows = array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)
    bad_rows = np.zeros(len(rows), dtype=bool)
    # Row blocks: temporaries of a few MB instead of copies as large as the array (a features file).
    block = max(1, (1 << 21) // max(rows.shape[1], 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            for start in range(0, len(rows), block):
                part = rows[start : start + block]
                ok = np.isfinite(part) & (np.abs(part) <= limit)
                bad_rows[start : start + block] = ~ok.all(axis=1)
    if bad_rows.any():
        row = int(np.flatnonzero(bad_rows)[0])
        values = rows[row]
        with np.errstate(all="ignore"):
            first = np.flatnonzero(~(np.isfinite(values) & (np.abs(values) <= limit)))[0]
        raise ReIDError(
            f"{name} has NaN, inf or values beyond ±{limit:.8g} in {int(bad_rows.sum())} row(s), "
            f"first at row {row} ({values[first].item()!r})"
        )
    return array.astype(dtype, copy=False)


def arg_int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` for integers within int64 and ``[minimum, maximum]``.

    argparse turns the refusal into its usual one-line ``error:`` and exit status 2.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = parser.add_argument("--top-k", type=arg_int(minimum=1))
        >>> parser.parse_args(["--top-k", "5"]).top_k
        5
    """

    def parse(text: str) -> int:
        try:
            return as_int("value", text, minimum, maximum)
        except ReIDError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value ")) from None

    parse.__name__ = "integer"  # argparse names the type in "invalid integer value"
    return parse


def arg_float(
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """An argparse ``type=`` for finite floats within bounds (see :func:`as_float`).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = parser.add_argument("--bin-width", type=arg_float(0, low_open=True))
        >>> parser.parse_args(["--bin-width", "100"]).bin_width
        100.0
    """

    def parse(text: str) -> float:
        try:
            return as_float("value", text, minimum, maximum, low_open=low_open, high_open=high_open)
        except ReIDError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value ")) from None

    parse.__name__ = "number"
    return parse


#: argparse ``type=`` for options that count something (``--top-k``, ``--batch-size``).
arg_positive_int = arg_int(minimum=1)

#: argparse ``type=`` for options that may be zero (``--num-workers``, ``--seed``).
arg_nonnegative_int = arg_int(minimum=0)


def typed_options(defaults: Any, options: Mapping[str, Any], label: str) -> dict[str, Any]:
    """``KEY=VALUE`` options for a dataclass, each checked against the type of its default.

    An int field takes an integer within int64 (whole floats too), a float field a finite number,
    a bool field true or false, a tuple of numbers a list of as many numbers, a tuple of strings a
    non-empty list of strings; unknown keys are refused. Ranges are the dataclass's to check.

    Args:
        defaults: an instance of the dataclass holding the default values.
        options: the user's options.
        label: how the options are named in messages (``"--synth"``).

    Example:
        >>> @dataclasses.dataclass
        ... class Knobs:
        ...     fraction: float = 0.5
        ...     visits_range: tuple = (2, 4)
        >>> typed_options(Knobs(), {"visits_range": [3, 5]}, "--synth")
        {'visits_range': (3, 5)}
        >>> typed_options(Knobs(), {"fraction": "abc"}, "--synth")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: --synth fraction must be a finite number, got 'abc'
    """
    known = {field.name: getattr(defaults, field.name) for field in dataclasses.fields(defaults)}
    checked = {}
    for key, value in options.items():
        if key not in known:
            raise ReIDError(f"{label} {key}: unknown option; known: {', '.join(sorted(known))}")
        checked[key] = _like(f"{label} {key}", known[key], value)
    return checked


def _like(name: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ReIDError(f"{name} must be true or false, got {shown(value)}")
    if isinstance(default, int):
        return as_int(name, value, whole_floats=True)
    if isinstance(default, float):
        return as_float(name, value)
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ReIDError(f"{name} must be text, got {shown(value)}")
    if isinstance(default, tuple):
        if default and all(isinstance(item, str) for item in default):
            if (
                isinstance(value, (list, tuple))
                and value
                and all(isinstance(item, str) for item in value)
            ):
                return tuple(value)
            raise ReIDError(f"{name} must be a non-empty list of names, got {shown(value)}")
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise ReIDError(
                f"{name} must be a list of {len(default)} numbers like {list(default)}, "
                f"got {shown(value)}"
            )
        return tuple(
            _like(f"{name}[{index}]", item, given)
            for index, (item, given) in enumerate(zip(default, value, strict=True))
        )
    return value
