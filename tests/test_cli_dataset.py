"""``mtmct-reid dataset info|export`` through the real entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _dataset_files import make_split_folders

from mtmct_reid.cli import main
from mtmct_reid.data.readers import read_dataset, read_manifest

MARKET = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg",
        "0002_c2s3_000100_01.jpg",
        "0003_c1s1_000500_01.jpg",
    ],
    "query": ["0002_c6s4_000007_00.jpg", "0003_c1s1_000900_00.jpg"],
    "bounding_box_test": [
        "-1_c1s1_000401_03.jpg",
        "0000_c3s2_000010_02.jpg",
        "0002_c2s3_000100_02.jpg",
        "0003_c1s1_001000_01.jpg",
    ],
}


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err


def test_info_prints_the_table_and_warnings(tmp_path, capsys):
    root = make_split_folders(tmp_path / "Market", MARKET)
    assert main(["dataset", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"dataset: {root.resolve()} (market1501)" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    # split, images, ids, junk, distractors, cameras, time range
    assert lines["train"][:6] == ["train", "3", "2", "0", "0", "2"]
    assert lines["query"][:6] == ["query", "2", "2", "0", "0", "2"]
    assert lines["gallery"][:6] == ["gallery", "4", "2", "1", "1", "3"]
    assert " ".join(lines["gallery"][6:]) == "401 .. 328468"
    assert lines["total"][:6] == ["total", "9", "2", "1", "1", "4"]
    # Person 3 is queried from camera 1 and the gallery only has them in camera 1.
    assert (
        "warning: 1 of 2 queries have no gallery image of the same person in another camera" in out
    )
    assert "0003_c1s1_000900_00.jpg" in out


def test_info_json(tmp_path, capsys):
    root = make_split_folders(tmp_path / "Market", MARKET)
    assert main(["dataset", "info", str(root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"] == "market1501"
    assert summary["splits"]["train"]["time_range"] == [451.0, 328468.0]
    assert summary["splits"]["gallery"]["junk"] == 1
    assert summary["queries_without_cross_camera_match"] == 1
    assert [c["id"] for c in summary["cameras"]] == [1, 2, 3, 6]


def test_info_regex_with_named_cameras(tmp_path, capsys):
    root = make_split_folders(
        tmp_path / "mall",
        {
            "train": ["1_lobby.jpg", "1_door.jpg"],
            "query": ["2_door.jpg"],
            "gallery": ["2_lobby.jpg"],
        },
    )
    pattern = r"^(?P<pid>\d+)_(?P<cam>[a-z]+)\.jpg$"
    assert main(["dataset", "info", str(root), "--pattern", pattern]) == 0
    out = capsys.readouterr().out
    assert "(regex)" in out
    assert "cameras (images): 1 (door): 2, 2 (lobby): 2" in out
    assert "warning: no image has a time: spatial-temporal fusion is impossible" in out


def test_export_writes_a_manifest_that_reads_back(tmp_path, capsys):
    root = make_split_folders(tmp_path / "Market", MARKET)
    out = tmp_path / "exports" / "market.csv"
    assert main(["dataset", "export", str(root), "--out", str(out), "--layout", "market1501"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: 9 images (train 3, query 2, gallery 4) read as market1501" in printed
    original, back = read_dataset(root), read_manifest(out)
    np.testing.assert_array_equal(back.paths, original.paths)
    np.testing.assert_array_equal(back.pids, original.pids)
    np.testing.assert_array_equal(back.cams, original.cams)
    np.testing.assert_array_equal(back.times, original.times)
    np.testing.assert_array_equal(back.splits, original.splits)
    # And the CLI reads the manifest back the same way.
    assert main(["dataset", "info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 9


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["dataset", "info", "{tmp}/missing"], "missing: no such file or folder"),
        (["dataset", "info", "{tmp}/empty"], "no known dataset layout"),
        (
            ["dataset", "info", "{tmp}/Market", "--layout", "duke"],
            "--layout 'duke': expected one of",
        ),
        (["dataset", "info", "{tmp}/Market", "--layout", "dukemtmc"], "do not follow the DukeMTMC"),
        (
            ["dataset", "info", "{tmp}/Market", "--pattern", "(?P<pid>"],
            "not a valid regular expression",
        ),
        (["dataset", "export", "{tmp}/Market", "--out", "{tmp}/empty"], "is a folder, expected"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, expected):
    make_split_folders(tmp_path / "Market", MARKET)
    (tmp_path / "empty").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert err.startswith("mtmct-reid dataset: error: ")
    assert expected in err
