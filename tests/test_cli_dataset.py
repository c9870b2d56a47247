"""``mtmct-reid dataset info|export`` through the real entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mtmct_reid.cli import main
from mtmct_reid.data.readers import read_dataset, read_manifest
from tests._dataset_files import make_msmt17, make_split_folders, tiny_jpeg, write_images

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


# --------------------------------------------------------------------------------------------------
# Hostile inputs: one line naming the file, row and field; the inputs untouched; nothing written.

HUGE = "99999999999999999999"  # beyond int64


def _manifest(tmp: Path, text: str | bytes) -> list[str]:
    write_images(tmp / "data", ["a.jpg", "b.jpg"])
    if isinstance(text, bytes):
        (tmp / "data" / "m.csv").write_bytes(text)
    else:
        (tmp / "data" / "m.csv").write_text(text)
    return ["dataset", "info", str(tmp / "data" / "m.csv")]


def _market(tmp: Path, name: str) -> list[str]:
    folders = {folder: list(names) for folder, names in MARKET.items()}
    folders["query"].append(name)
    make_split_folders(tmp / "data", folders)
    return ["dataset", "info", str(tmp / "data")]


def _msmt17(tmp: Path, query_line: bytes) -> list[str]:
    root = make_msmt17(
        tmp / "data",
        {
            "list_train.txt": [("0000/0000_000_01_0303morning_0015_0.jpg", 0)],
            "list_query.txt": [("0000/0000_000_02_0303morning_0020_0.jpg", 0)],
            "list_gallery.txt": [("0000/0000_001_03_0303noon_0030_0.jpg", 0)],
        },
    )
    (root / "list_query.txt").write_bytes(query_line)
    return ["dataset", "info", str(root)]


def _non_utf8_name(tmp: Path) -> list[str]:
    make_split_folders(tmp / "data", {"train": ["1_lobby_t5.jpg"]})
    (tmp / "data" / "train" / "1_lobby_t6_caf\udce9.jpg").write_bytes(tiny_jpeg())
    pattern = r"^(?P<pid>\d+)_(?P<cam>[a-z]+)_t(?P<time>\d+)"
    return ["dataset", "export", str(tmp / "data"), "--pattern", pattern, "--out", f"{tmp}/o.csv"]


def _file_loop(tmp: Path) -> list[str]:
    make_split_folders(tmp / "data", MARKET)
    (tmp / "data" / "query" / "0009_c1s1_000001_00.jpg").symlink_to("0009_c1s1_000001_00.jpg")
    return ["dataset", "info", str(tmp / "data")]


def _folder_loop(tmp: Path) -> list[str]:
    make_split_folders(tmp / "data", {k: v for k, v in MARKET.items() if k != "query"})
    (tmp / "data" / "query").symlink_to("query")
    return ["dataset", "info", str(tmp / "data"), "--layout", "market1501"]


HOSTILE = {
    "manifest pid beyond int64": (
        lambda t: _manifest(t, f"path,pid,camera\na.jpg,{HUGE},1\n"),
        f"m.csv, line 2: pid must be an integer within int64, got '{HUGE}'",
    ),
    "Market name with a pid beyond int64": (
        lambda t: _market(t, f"{HUGE}_c1s1_000451_03.jpg"),
        f"query/{HUGE}_c1s1_000451_03.jpg: person id must be an integer within int64",
    ),
    "Market name with a frame beyond int64": (
        lambda t: _market(t, f"0002_c1s1_{HUGE}_03.jpg"),
        f"query/0002_c1s1_{HUGE}_03.jpg: frame must be an integer within int64",
    ),
    "MSMT17 list with a pid beyond int64": (
        lambda t: _msmt17(t, f"0000/0000_000_02_0303morning_0020_0.jpg {HUGE}\n".encode()),
        f"list_query.txt, line 1: person id must be an integer in [0, 9223372036854775806] (within"
        f" int64), got '{HUGE}'",
    ),
    "MSMT17 list in Latin-1": (
        lambda t: _msmt17(t, b"0000/0000_000_02_0303morning_0020_0.jpg 0\ncaf\xe9.jpg 1\n"),
        "list_query.txt, line 2: not UTF-8 text (byte 0xe9)",
    ),
    "file name that is not UTF-8, exported": (
        _non_utf8_name,
        r"1_lobby_t6_caf\xe9.jpg': file name is not UTF-8 text, which a manifest is",
    ),
    "link loop in a split folder": (
        _file_loop,
        "query/0009_c1s1_000001_00.jpg: cannot be read (Too many levels of symbolic links)",
    ),
    "split folder that is a link loop": (
        _folder_loop,
        "data/query: a link that cannot be followed (a loop, or a missing target)",
    ),
    "manifest with a column twice": (
        lambda t: _manifest(t, "path,pid,camera,pid\na.jpg,1,1,2\n"),
        "m.csv: column 'pid' appears 2 times in the header (path,pid,camera,pid); keep one",
    ),
    "manifest mixing camera 1 and cam1": (
        lambda t: _manifest(t, "path,pid,camera\na.jpg,1,1\nb.jpg,1,cam1\n"),
        "m.csv: line 2 is camera '1' but line 3 is camera 'cam1': camera labels must be all",
    ),
    "manifest with an infinite time": (
        lambda t: _manifest(t, "path,pid,camera,time\na.jpg,1,1,5\nb.jpg,1,2,inf\n"),
        "m.csv, line 3: time 'inf' is not a number",
    ),
    "manifest with a NUL character": (
        lambda t: _manifest(t, "path,pid,camera\na.jpg,1,\x001\n"),
        "m.csv, line 2: holds a NUL character; not a text CSV file",
    ),
    "manifest with a Latin-1 file name on row 3": (
        lambda t: _manifest(t, b"path,pid,camera\na.jpg,1,1\nb_caf\xe9.jpg,1,2\nb.jpg,1,2\n"),
        "m.csv: row 3: not UTF-8 text (invalid continuation byte 0xe9 at byte 6 of the row)",
    ),
    "manifest with a byte-order mark and a bad byte on row 1": (
        lambda t: _manifest(t, b"\xef\xbb\xbfpath,pid,cam\xff\na.jpg,1,1\n"),
        "m.csv: row 1: not UTF-8 text (invalid start byte 0xff at byte 16 of the row)",
    ),
    "manifest with pid -5": (
        lambda t: _manifest(t, "path,pid,camera\na.jpg,-5,1\n"),
        "m.csv, line 2 has person id -5 (expected -1 for junk, 0 for a distractor or a positive",
    ),
    "Market name with pid -5": (
        lambda t: _market(t, "-5_c1s1_000451_03.jpg"),
        "query/-5_c1s1_000451_03.jpg has person id -5",
    ),
}


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under root: file bytes, or a link's target (links are not followed)."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        found[key] = (
            os.readlink(path)
            if path.is_symlink()
            else (path.read_bytes() if path.is_file() else "dir")
        )
    return found


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_one_line_exit_2_and_changes_nothing(tmp_path, capsys, case):
    make, expected = HOSTILE[case]
    argv = make(tmp_path)
    before = _snapshot(tmp_path)
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert err.startswith("mtmct-reid dataset: error: ") and expected in err
    assert _snapshot(tmp_path) == before


def test_export_over_the_manifest_a_folder_was_read_through_is_refused(tmp_path, capsys):
    write_images(tmp_path / "data", ["a.jpg", "b.jpg"])
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.write_text("path,pid,camera,note\na.jpg,1,1,keep this column\nb.jpg,2,2,and this\n")
    before = _snapshot(tmp_path)
    assert main(["dataset", "export", str(tmp_path / "data"), "--out", str(manifest)]) == 2
    err = _one_line_error(capsys)
    assert "is the command's input" in err and str(manifest) in err
    assert _snapshot(tmp_path) == before
