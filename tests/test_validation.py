"""The one input policy (integers within int64, positive counts, finite floats, integer arrays) and
the doctests of the modules that hold the toolkit's cross-cutting policies."""

from __future__ import annotations

import argparse
import doctest
import io
import os
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
import torch

from mtmct_reid import _runtime, errors, validation
from mtmct_reid.cli import main
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


# --- bad files: refused in one line before anything large is allocated ---------------------------


def _features_arrays(n_query: int = 3, n_gallery: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for side, n in (("query", n_query), ("gallery", n_gallery)):
        arrays[f"{side}_features"] = rng.normal(size=(n, 4)).astype(np.float32)
        arrays[f"{side}_pids"] = np.arange(1, n + 1)
        arrays[f"{side}_cams"] = np.ones(n, np.int64)
    return arrays


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _run_cli(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused, never accepted with a Python warning
        assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_huge_declared_shape_is_refused_before_allocating(tmp_path, capsys):
    # query_features declares 1e6 x 8e6 float32 (29.1 TiB) over its 48 bytes of data.
    members = {key: _npy(value) for key, value in _features_arrays().items()}
    members["query_features"] = (
        _header((1000000, 8000000)) + _features_arrays()["query_features"].tobytes()
    )
    path = tmp_path / "huge.npz"
    path.write_bytes(_zip_of(members))
    tracemalloc.start()
    try:
        line = _run_cli(capsys, ["evaluate", str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "array 'query_features' declares shape (1000000, 8000000) of float32 (29.1 TiB)" in line
    assert "truncated or corrupt" in line and peak < 20 * 2**20


def _zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, payload in members.items():
            archive.writestr(f"{name}.npy", payload)
    return out.getvalue()


def _header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_from_its_header_without_decompressing(tmp_path, capsys):
    # 256 MiB of zeros deflated to ~250 KiB, declared as 1-D features: the wrong shape is seen in
    # the header; nothing is decompressed.
    arrays = _features_arrays()
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            if key != "gallery_features":
                archive.writestr(f"{key}.npy", _npy(value))
        with archive.open("gallery_features.npy", "w", force_zip64=True) as fh:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "<f4", "fortran_order": False, "shape": (2**26,)}
            )
            fh.write(header.getvalue())
            zeros = bytes(2**20)
            for _ in range(256):
                fh.write(zeros)
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    try:
        line = _run_cli(capsys, ["evaluate", str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "'gallery_features' has shape (67108864,), expected 2-D [N, D]" in line
    assert peak < 20 * 2**20


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "expected", "never"),
    [
        # a text file: it is text, not "pickled (object) data"
        (lambda p: p.write_text("query,gallery\n1,2\n"), "this file holds text", "pickle"),
        # an array cut short: truncated, not "cannot be read without pickle"
        (
            lambda p: p.write_bytes(
                _zip_of(
                    {
                        **{k: _npy(v) for k, v in _features_arrays().items()},
                        "query_pids": _npy(_features_arrays()["query_pids"])[:-8],
                    }
                )
            ),
            "truncated or corrupt",
            "pickle",
        ),
        # an object array: named as such, never unpickled
        (
            lambda p: p.write_bytes(
                _npz_bytes(
                    **{**_features_arrays(), "query_cams": np.array([1, "a", None], dtype=object)}
                )
            ),
            "array 'query_cams' holds Python objects (dtype object)",
            "Traceback",
        ),
        (lambda p: p.mkdir(), "is a folder, expected a features file", "not found"),
        (
            lambda p: p.write_bytes(
                _npz_bytes(**{**_features_arrays(), "query_pids": np.array([1, -7, 2])})
            ),
            "'query_pids' has -7 at element 1, expected ids >= 0 (0 a distractor) or -1 (junk)",
            "Traceback",
        ),
        (
            lambda p: p.write_bytes(
                _npz_bytes(**{**_features_arrays(), "query_pids": np.array([1, 2, 3 + 1j])})
            ),
            "'query_pids' has dtype complex128, expected integers",
            "Warning",
        ),
        (
            lambda p: p.write_bytes(
                _npz_bytes(**{**_features_arrays(), "gallery_pids": np.array([1, 2, 3, 4, 1e30])})
            ),
            "'gallery_pids' has 1e+30 at element 4, expected integers",
            "Warning",
        ),
        (
            lambda p: p.write_bytes(
                _npz_bytes(
                    **{
                        **_features_arrays(),
                        "query_features": np.array([[1, 2, 3, 4], [0, 0, 0, 1e300], [1, 1, 1, 1]]),
                    }
                )
            ),
            "'query_features' has NaN, inf or values beyond ±3.4028235e+38 in 1 row(s), "
            "first at row 1 (1e+300)",
            "Warning",
        ),
    ],
)
def test_bad_features_files_are_named_truthfully(tmp_path, capsys, make, expected, never):
    path = tmp_path / "F.npz"
    make(path)
    line = _run_cli(capsys, ["evaluate", str(path)])
    assert expected in line and never not in line and str(path) in line


def _checkpoint(path, **hparams) -> None:
    from mtmct_reid.models.registry import build_model

    net = build_model("resnet50", 3, backbone="resnet18", weights="none")
    state = {"model." + k: v for k, v in net.state_dict().items()}
    defaults = {
        "model": "resnet50",
        "backbone": "resnet18",
        "num_classes": 3,
        "image_size": [64, 32],
    }
    state_override = hparams.pop("state", None)
    if state_override is not None:
        state.update(state_override)
    torch.save({"state_dict": state, "hyper_parameters": {**defaults, **hparams}}, path)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(bytes(range(256)) * 40), "not a checkpoint (expected a file"),
        (lambda p: p.write_bytes(b"\x80\x02" + bytes(range(256)) * 4), "not a checkpoint"),
        (
            lambda p: torch.save({"state_dict": {}, "x": argparse.Namespace(a=1)}, p),
            "holds a Python object (argparse.Namespace) that only pickle could rebuild",
        ),
        (lambda p: p.mkdir(), "is a folder, expected a checkpoint file"),
        (
            lambda p: _checkpoint(p, dropout="abc"),
            "dropout must be a finite number in [0.0, 1.0), got 'abc'",
        ),
        (
            lambda p: _checkpoint(p, num_classes=10**13),
            "num_classes must be a positive integer (at most 1000000), got 10000000000000",
        ),
        (
            lambda p: _checkpoint(p, state={"model.head.classifier.weight": [1, 2]}),
            "state_dict entry 'model.head.classifier.weight' is a list, expected a tensor",
        ),
        (
            lambda p: _checkpoint(p, image_size=[10**9, 32]),
            "'image_size' height must be a positive integer (at most 8192)",
        ),
    ],
)
def test_bad_checkpoints_are_one_line_without_torch_pickle_advice(tmp_path, capsys, make, expected):
    path = tmp_path / "CK.ckpt"
    make(path)
    before = sorted(os.listdir(tmp_path))
    line = _run_cli(
        capsys,
        ["extract", str(path), "--data-dir", str(tmp_path), "--out", str(tmp_path / "o.npz")],
    )
    assert expected in line and "weights_only" not in line and str(path) in line
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("lookalike_fraction=abc", "--synth lookalike_fraction='abc': expected a number"),
        ("bin_width=abc", "--synth bin_width='abc': expected a number"),
        ("visits_range=5", "--synth visits_range=5: expected a list, e.g. visits_range=[2, 4]"),
        ("bogus=1", "bogus"),
    ],
)
def test_demo_synth_options_are_typed_before_anything_is_written(tmp_path, capsys, option, message):
    out = tmp_path / "demo"
    line = _run_cli(capsys, ["demo", "--out", str(out), "--synth", option])
    assert message in line and not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # No option may start more worker processes than the cores this process may use.
        (["--num-workers", "100000"], "argument --num-workers: must be an integer in [0, "),
        (["--batch-size", "99999999999999999999"], "argument --batch-size: must be a positive"),
        (["--batch-size", "0"], "argument --batch-size: must be a positive integer (at most 4096)"),
    ],
)
def test_extract_bounds_its_processes_and_batches_in_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(
            ["extract", "CK", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o.npz"), *argv]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"mtmct-reid extract: error: {message}") and os.listdir(tmp_path) == []


def test_argument_errors_of_every_verb_are_one_line(capsys):
    for argv in (["evalute"], ["evaluate"], ["st", "fit"], ["synth", "--ids", "x", "o"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2 and len(err.strip().splitlines()) == 1, err
        assert "error: " in err and "--help" in err
