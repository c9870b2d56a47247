"""The one input policy (integers within int64, positive counts, finite floats, integer arrays) and
the doctests of the modules that hold the toolkit's cross-cutting policies."""

from __future__ import annotations

import argparse
import doctest
import warnings

import numpy as np
import pytest

from mtmct_reid import _runtime, errors, validation
from mtmct_reid.errors import ReIDError
from mtmct_reid.validation import (
    INT64_MAX,
    arg_float,
    arg_int,
    as_float,
    as_int,
    finite_float_array,
    int64_array,
    positive_int,
)


@pytest.mark.parametrize("module", [validation, errors, _runtime])
def test_doctests_of_the_policy_modules_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7, 7),
        (np.int32(-3), -3),
        ("0042", 42),
        (" -1 ", -1),
        ("+5", 5),
        (str(INT64_MAX), INT64_MAX),
    ],
)
def test_as_int_accepts_integers_and_integer_text(value, expected):
    number = as_int("x", value)
    assert number == expected and type(number) is int


@pytest.mark.parametrize(
    "value",
    [
        "99999999999999999999",  # beyond int64: a manifest pid, a Market file name
        str(INT64_MAX + 1),
        "9" * 300,
        INT64_MAX + 1,
        2**64,
        True,
        np.bool_(False),
        1.5,
        3.0,  # floats only with whole_floats
        "1e3",
        "abc",
        "",
        None,
        1 + 2j,
        [1],
    ],
)
def test_as_int_refuses_everything_else_in_one_short_line(value):
    with pytest.raises(ReIDError) as info:
        as_int("manifest.csv row 3 field 'pid'", value)
    message = str(info.value)
    assert message.startswith("manifest.csv row 3 field 'pid' must be an integer within int64, got")
    assert "\n" not in message and len(message) < 160


def test_as_int_bounds_and_whole_floats():
    assert as_int("seed", "1e3", whole_floats=True) == 1000
    assert as_int("epochs", 40.0, minimum=1, whole_floats=True) == 40
    with pytest.raises(ReIDError, match=r"epochs must be a positive integer, got 40.5"):
        as_int("epochs", 40.5, minimum=1, whole_floats=True)
    with pytest.raises(ReIDError, match=r"--cameras must be an integer in \[2, 9\], got 10"):
        as_int("--cameras", 10, minimum=2, maximum=9)
    with pytest.raises(ReIDError, match=r"num_classes must be a positive integer \(at most 10\)"):
        positive_int("num_classes", 10**13, maximum=10)
    with pytest.raises(ReIDError, match=r"k must be a positive integer \(within int64\)"):
        positive_int("k", "99999999999999999999")
    with pytest.raises(ReIDError, match=r"n must be a positive integer, got 0"):
        positive_int("n", 0)


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        ("abc", {}, "x must be a finite number, got 'abc'"),
        (float("nan"), {}, "x must be a finite number, got nan"),
        ("1e999", {}, "x must be a finite number, got '1e999'"),
        (True, {}, "x must be a finite number, got True"),
        (1 + 0j, {}, "x must be a finite number, got (1+0j)"),
        (0.0, {"minimum": 0, "low_open": True}, "x must be a finite number > 0, got 0.0"),
        (1.0, {"minimum": 0, "maximum": 1, "high_open": True}, "in [0, 1), got 1.0"),
        (5, {"maximum": 2}, "x must be a finite number <= 2, got 5"),
    ],
)
def test_as_float_refuses_with_the_expected_range(value, kwargs, message):
    with pytest.raises(ReIDError) as info:
        as_float("x", value, **kwargs)
    assert message in str(info.value)


def test_as_float_accepts_numbers_and_numeric_text():
    assert as_float("lr", "5e-4") == 5e-4
    assert as_float("lr", np.float32(0.5)) == 0.5
    assert as_float("w", 1e-320, minimum=0, low_open=True) == 1e-320  # a bound is the caller's


def test_int64_array_converts_exact_values_and_names_the_first_bad_element():
    np.testing.assert_array_equal(int64_array("p", np.array([1.0, -1.0])), [1, -1])
    assert int64_array("p", np.array([3], np.uint8)).dtype == np.int64
    cases = [
        (np.array([1, 2**63], np.uint64), "p has 9223372036854775808 at element 1"),
        (np.array([1.0, 1e30]), "p has 1e+30 at element 1, expected integers"),
        (np.array([0.5]), "p has 0.5 at element 0"),
        (np.array([np.nan]), "p has nan at element 0"),
        (np.array([1 + 1j]), "p has dtype complex128, expected integers"),
        (np.array(["1"]), "p has dtype <U1, expected integers"),
        (np.array([True]), "p has dtype bool, expected integers"),
    ]
    for array, message in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # refused, not accepted with a numpy warning
            with pytest.raises(ReIDError) as info:
                int64_array("p", array)
        assert message in str(info.value)


def test_finite_float_array_refuses_what_float32_cannot_hold_without_a_warning():
    ok = finite_float_array("f", np.array([[1.0, -2.0]]))
    assert ok.dtype == np.float32
    for bad, row in ((np.array([[0.0], [1e300]]), 1), (np.array([[np.inf]]), 0)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ReIDError, match=f"first at row {row}"):
                finite_float_array("f", bad)
    with pytest.raises(ReIDError, match="dtype complex128, expected real numbers"):
        finite_float_array("f", np.ones((2, 2), complex))


def test_argparse_types_exit_2_with_one_error_line(capsys):
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--top-k", type=arg_int(minimum=1))
    parser.add_argument("--bin-width", type=arg_float(0, 1e9, low_open=True))
    assert parser.parse_args(["--top-k", "3", "--bin-width", "1e-3"]).bin_width == 1e-3
    for argv, message in (
        (["--top-k", "0"], "must be a positive integer, got '0'"),
        (["--top-k", "99999999999999999999"], "(within int64)"),
        (["--bin-width", "abc"], "must be a finite number in (0, 1000000000.0], got 'abc'"),
    ):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("p: error: argument") and message in err[-1]
