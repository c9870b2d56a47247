"""Dataset readers: every layout on tiny fake datasets, the manifest round trip, and each bad input."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from mtmct_reid.data.readers import (
    MSMT17_SLOT_FRAMES,
    dataset_summary,
    detect_layout,
    format_summary,
    read_dataset,
    read_dukemtmc,
    read_manifest,
    read_market1501,
    read_msmt17,
    read_regex,
    write_manifest,
)
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.protocol import queries_without_cross_camera_match
from tests._dataset_files import (
    make_msmt17,
    make_split_folders,
    market_time_by_definition,
    write_images,
)


def _rows(records: Records) -> dict[str, tuple]:
    """{file name: (pid, cam, time, split)}, times as floats (NaN as None for comparisons)."""
    return {
        os.path.basename(p): (int(pid), int(cam), None if np.isnan(t) else float(t), str(s))
        for p, pid, cam, t, s in zip(
            records.paths, records.pids, records.cams, records.times, records.splits, strict=True
        )
    }


def _assert_same_records(a: Records, b: Records) -> None:
    np.testing.assert_array_equal(a.paths, b.paths)
    np.testing.assert_array_equal(a.pids, b.pids)
    np.testing.assert_array_equal(a.cams, b.cams)
    np.testing.assert_array_equal(a.times, b.times)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(a.splits, b.splits)
    assert dict(a.camera_names) == dict(b.camera_names)


MARKET_BASIC = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s3_000100_01.jpg"],
    "query": ["0002_c6s4_000007_00.jpg"],
    "bounding_box_test": [
        "-1_c1s1_000401_03.jpg",
        "0000_c3s2_000010_02.jpg",
        "0002_c2s3_000100_02.jpg",
        "0007_c7s1_004000_01.jpg",
        "0007_c12s1_000050_01.jpg",
    ],
}


# --------------------------------------------------------------------------------------------------
# Market-1501


def test_market_reads_ids_cameras_global_times_and_splits(tmp_path):
    root = make_split_folders(tmp_path / "Market", MARKET_BASIC)
    records = read_dataset(root)
    rows = _rows(records)
    assert rows["0002_c2s3_000100_01.jpg"] == (2, 2, 328468.0, "train")  # 163691 + 164677 + 100
    assert rows["0002_c1s1_000451_03.jpg"] == (2, 1, 451.0, "train")
    assert rows["0002_c6s4_000007_00.jpg"] == (2, 6, 87551 + 131268 + 95817 + 7.0, "query")
    assert rows["-1_c1s1_000401_03.jpg"] == (-1, 1, 401.0, "gallery")  # junk kept
    assert rows["0000_c3s2_000010_02.jpg"] == (0, 3, 161708 + 10.0, "gallery")  # distractor kept
    # A network of one's own named the Market way: cameras beyond the table, session 1.
    assert rows["0007_c7s1_004000_01.jpg"] == (7, 7, 4000.0, "gallery")
    assert rows["0007_c12s1_000050_01.jpg"] == (7, 12, 50.0, "gallery")
    assert len(records) == 8
    assert records.root == root.resolve()
    for p in records.paths:
        assert Path(p).is_absolute() and Path(p).is_file()
    assert records.splits.tolist()[:3] == ["train", "train", "query"]


def test_market_random_names_match_the_definition(tmp_path):
    rng = np.random.default_rng(7)
    expected = {}
    names = {"bounding_box_train": [], "query": [], "bounding_box_test": []}
    split_of = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}
    for i in range(240):
        folder = list(names)[i % 3]
        cam = int(rng.integers(1, 7))
        session = int(rng.integers(1, len(_session_lengths(cam)) + 1))
        frame = int(rng.integers(0, 999_999))
        pid = int(rng.integers(-1, 1502))
        pid_text = "-1" if pid == -1 else f"{pid:04d}"
        name = f"{pid_text}_c{cam}s{session}_{frame:06d}_{i % 100:02d}.jpg"
        names[folder].append(name)
        expected[name] = (
            pid,
            cam,
            market_time_by_definition(cam, session, frame),
            split_of[folder],
        )
    records = read_market1501(make_split_folders(tmp_path, names))
    assert _rows(records) == expected


def _session_lengths(cam: int) -> tuple[int, ...]:
    from tests._dataset_files import MARKET_SESSION_LENGTHS

    return MARKET_SESSION_LENGTHS[cam]


def test_market_session_outside_the_table_names_the_file(tmp_path):
    names = dict(MARKET_BASIC, query=["0002_c2s4_000100_00.jpg"])
    root = make_split_folders(tmp_path, names)
    with pytest.raises(ReIDError, match=r"query: 1 name\(s\).*'0002_c2s4_000100_00.jpg'.*1\.\.3"):
        read_market1501(root)


def test_market_names_that_do_not_match_are_counted_and_shown(tmp_path):
    names = dict(MARKET_BASIC, query=["0002_c1s1_000451_03.jpg", "person1.jpg", "img_2.png"])
    root = make_split_folders(tmp_path, names)
    with pytest.raises(ReIDError) as info:
        read_dataset(root, layout="market1501")
    message = str(info.value)
    assert "2 of 3 file names" in message
    assert "'img_2.png'" in message and "'person1.jpg'" in message
    assert "0002_c1s1_000451_03.jpg" in message  # the expected form
    assert "\n" not in message


def test_non_images_are_skipped_with_one_warning(tmp_path, caplog):
    root = make_split_folders(tmp_path, MARKET_BASIC)
    (root / "bounding_box_train" / "Thumbs.db").write_bytes(b"\0")
    (root / "query" / ".DS_Store").write_bytes(b"\0")
    (root / "query" / "._0002_c6s4_000007_00.jpg").write_bytes(b"\0")  # macOS resource fork
    (root / "bounding_box_test" / "readme.txt").write_text("hi")
    (root / "bounding_box_test" / "sub").mkdir()
    with caplog.at_level(logging.WARNING, logger="mtmct_reid.data.readers"):
        records = read_dataset(root)
    assert len(records) == 8
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "skipped 4 file(s)" in text and "Thumbs.db" in text and "readme.txt" in text


def test_empty_split_folder_is_an_error(tmp_path):
    root = make_split_folders(tmp_path, dict(MARKET_BASIC, query=[]))
    with pytest.raises(ReIDError, match=r"query: no images in this split folder"):
        read_dataset(root)


def test_missing_market_folder_is_named(tmp_path):
    names = {k: v for k, v in MARKET_BASIC.items() if k != "query"}
    root = make_split_folders(tmp_path, names)
    with pytest.raises(ReIDError, match=r"missing folder 'query'"):
        read_dataset(root, layout="market1501")


# --------------------------------------------------------------------------------------------------
# DukeMTMC-reID and detection


DUKE_BASIC = {
    "bounding_box_train": ["0005_c2_f0046985.jpg", "0005_c5_f0051234.jpg"],
    "query": ["0008_c1_f0000120.jpg"],
    "bounding_box_test": ["0008_c8_f0123456.jpg", "5388_c3_f0000001.jpg"],
}


def test_duke_reads_global_frames_and_is_told_from_market(tmp_path):
    duke = make_split_folders(tmp_path / "duke", DUKE_BASIC)
    market = make_split_folders(tmp_path / "market", MARKET_BASIC)
    assert detect_layout(duke) == "dukemtmc"
    assert detect_layout(market) == "market1501"
    rows = _rows(read_dataset(duke))
    assert rows["0005_c2_f0046985.jpg"] == (5, 2, 46985.0, "train")
    assert rows["0008_c8_f0123456.jpg"] == (8, 8, 123456.0, "gallery")
    assert rows["0008_c1_f0000120.jpg"] == (8, 1, 120.0, "query")
    assert _rows(read_dukemtmc(duke)) == rows
    # Duke names through the Market reader: a clear error, not silent garbage.
    with pytest.raises(ReIDError, match="do not follow the Market-1501 naming"):
        read_dataset(duke, layout="market1501")


def test_market_folders_with_unknown_names_suggest_regex(tmp_path):
    root = make_split_folders(
        tmp_path,
        {"bounding_box_train": ["a.jpg"], "query": ["b.jpg"], "bounding_box_test": ["c.jpg"]},
    )
    with pytest.raises(
        ReIDError, match=r"neither Market-1501 .* nor DukeMTMC-reID .*--layout regex"
    ):
        detect_layout(root)


def test_unknown_folder_says_what_was_tried_and_finds_the_dataset_inside(tmp_path):
    make_split_folders(tmp_path / "Market-1501-v15.09.15", MARKET_BASIC)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ReIDError) as info:
        read_dataset(tmp_path)
    message = str(info.value)
    assert "no known dataset layout" in message
    for tried in ("market1501", "dukemtmc", "msmt17", "manifest", "--layout regex"):
        assert tried in message
    assert f"did you mean {tmp_path / 'Market-1501-v15.09.15'}" in message


def test_nonexistent_root_and_bad_arguments(tmp_path):
    with pytest.raises(ReIDError, match=r"nope: no such file or folder"):
        read_dataset(tmp_path / "nope")
    root = make_split_folders(tmp_path / "m", MARKET_BASIC)
    with pytest.raises(ReIDError, match=r"--layout 'market': expected one of market1501"):
        read_dataset(root, layout="market")
    with pytest.raises(ReIDError, match=r"--pattern is only used with --layout regex"):
        read_dataset(root, layout="market1501", pattern="(?P<pid>\\d+)")
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(ReIDError, match=r"data.txt: is a file but not a .csv manifest"):
        read_dataset(tmp_path / "data.txt")


# --------------------------------------------------------------------------------------------------
# MSMT17


def _msmt_lists():
    return {
        "list_train.txt": [
            ("0000/0000_000_01_0303morning_0015_0.jpg", 0),
            ("0000/0000_001_10_0303noon_0020_0.jpg", 0),
            ("0001/0001_000_15_0113afternoon_0999_1.jpg", 1),
        ],
        "list_val.txt": [("0001/0001_001_02_0113morning_0005_0.jpg", 1)],
        "list_query.txt": [("0000/0000_000_15_0302afternoon_0011_0.jpg", 0)],
        "list_gallery.txt": [
            ("0000/0000_001_10_0303morning_0012_0.jpg", 0),
            ("0002/0002_000_03_0113noon_1500_0.jpg", 2),
        ],
    }


def test_msmt17_two_digit_cameras_lists_and_coarse_clock(tmp_path):
    root = make_msmt17(tmp_path / "MSMT17_V1", _msmt_lists())
    assert detect_layout(root) == "msmt17"
    records = read_dataset(root)
    rows = _rows(records)
    # Dates sorted over the whole dataset: 0113 -> day 0, 0302 -> day 1, 0303 -> day 2;
    # slots morning, noon, afternoon -> 0, 1, 2.
    slot = MSMT17_SLOT_FRAMES

    def t(day, s, frame):
        return float((day * 3 + s) * slot + frame)

    assert rows["0000_000_01_0303morning_0015_0.jpg"] == (1, 1, t(2, 0, 15), "train")
    assert rows["0000_001_10_0303noon_0020_0.jpg"] == (1, 10, t(2, 1, 20), "train")
    assert rows["0001_000_15_0113afternoon_0999_1.jpg"] == (2, 15, t(0, 2, 999), "train")
    assert rows["0001_001_02_0113morning_0005_0.jpg"] == (2, 2, t(0, 0, 5), "train")  # val
    assert rows["0000_000_15_0302afternoon_0011_0.jpg"] == (1, 15, t(1, 2, 11), "query")
    assert rows["0000_001_10_0303morning_0012_0.jpg"] == (1, 10, t(2, 0, 12), "gallery")
    assert rows["0002_000_03_0113noon_1500_0.jpg"] == (3, 3, t(0, 1, 1500), "gallery")
    assert set(records.cams.tolist()) == {1, 2, 3, 10, 15}
    # Train paths under train/, test paths under test/.
    for p, s in zip(records.paths, records.splits, strict=True):
        assert Path(p).is_file()
        assert Path(p).parts[-3] == ("train" if s == "train" else "test")
    assert _rows(read_msmt17(root)) == rows


def test_msmt17_without_val_list_and_missing_lists(tmp_path):
    lists = _msmt_lists()
    del lists["list_val.txt"]
    root = make_msmt17(tmp_path / "a", lists)
    assert len(read_msmt17(root).split("train")) == 3
    (root / "list_gallery.txt").unlink()
    with pytest.raises(ReIDError, match=r"missing list file 'list_gallery.txt'"):
        read_dataset(root, layout="msmt17")


def test_msmt17_bad_list_entries(tmp_path):
    root = make_msmt17(tmp_path / "b", _msmt_lists())
    (root / "list_query.txt").write_text("0000/0000_000_15_0302afternoon_0011_0.jpg zero\n")
    with pytest.raises(
        ReIDError, match=r"list_query.txt, line 1: person id 'zero' is not an integer"
    ):
        read_msmt17(root)
    (root / "list_query.txt").write_text("0000/missing_000_15_0302afternoon_0011_0.jpg 0\n")
    with pytest.raises(ReIDError, match=r"list_query.txt: 1 listed image\(s\) not found"):
        read_msmt17(root)
    write_images(root / "test", ["0000/0000_c15_0302.jpg"])
    (root / "list_query.txt").write_text("0000/0000_c15_0302.jpg 0\n")
    with pytest.raises(ReIDError, match=r"1 of 1 file names do not follow the MSMT17 naming"):
        read_msmt17(root)
    write_images(root / "test", ["0000/0000_000_15_0302noon_123456_0.jpg"])
    (root / "list_query.txt").write_text("0000/0000_000_15_0302noon_123456_0.jpg 0\n")
    with pytest.raises(ReIDError, match=r"frame 123456 of .* is beyond the 100000 frames"):
        read_msmt17(root)
    # The same image listed as train and val.
    root = make_msmt17(tmp_path / "c", _msmt_lists())
    (root / "list_val.txt").write_text("0000/0000_000_01_0303morning_0015_0.jpg 0\n")
    with pytest.raises(ReIDError, match=r"listed more than once.*list_train.txt, list_val.txt"):
        read_msmt17(root)


# --------------------------------------------------------------------------------------------------
# Regex


NAMED_CAM_PATTERN = r"^(?P<pid>-?\d+)_(?P<cam>[a-z]+)_t(?P<time>\d+(\.\d+)?)\.(jpg|png)$"


def test_regex_with_named_cameras_and_times(tmp_path):
    root = make_split_folders(
        tmp_path,
        {
            "train": ["1_lobby_t100.jpg", "1_street_t250.5.jpg", "sub/2_entrance_t30.png"],
            "query": ["3_street_t900.jpg"],
            "gallery": ["3_lobby_t1000.jpg", "-1_lobby_t5.jpg"],
        },
    )
    records = read_dataset(root, pattern=NAMED_CAM_PATTERN)  # a pattern implies the regex layout
    assert dict(records.camera_names) == {1: "entrance", 2: "lobby", 3: "street"}
    rows = _rows(records)
    assert rows == {
        "1_lobby_t100.jpg": (1, 2, 100.0, "train"),
        "1_street_t250.5.jpg": (1, 3, 250.5, "train"),
        "2_entrance_t30.png": (2, 1, 30.0, "train"),
        "3_street_t900.jpg": (3, 3, 900.0, "query"),
        "3_lobby_t1000.jpg": (3, 2, 1000.0, "gallery"),
        "-1_lobby_t5.jpg": (-1, 2, 5.0, "gallery"),
    }
    assert records.camera_label(3) == "street"
    assert _rows(read_regex(root, NAMED_CAM_PATTERN)) == rows


def test_regex_numeric_cameras_without_time_and_market_folder_names(tmp_path):
    root = make_split_folders(
        tmp_path,
        {
            "bounding_box_train": ["p4_cam10.jpg", "p4_cam3.jpg"],
            "bounding_box_test": ["p9_cam3.jpg"],
        },
    )
    records = read_dataset(root, layout="regex", pattern=r"p(?P<pid>\d+)_cam(?P<cam>\d+)")
    rows = _rows(records)
    assert rows == {
        "p4_cam10.jpg": (4, 10, None, "train"),
        "p4_cam3.jpg": (4, 3, None, "train"),
        "p9_cam3.jpg": (9, 3, None, "gallery"),
    }
    assert dict(records.camera_names) == {}
    assert np.isnan(records.times).all()


def test_regex_bad_inputs(tmp_path):
    root = make_split_folders(
        tmp_path / "d",
        {"train": ["1_lobby_t1.jpg", "x.jpg", "y_lobby.jpg"], "query": ["1_a_t2.jpg"]},
    )
    with pytest.raises(ReIDError, match=r"2 of 4 file names do not match --pattern.*'x.jpg'"):
        read_regex(root, NAMED_CAM_PATTERN)
    with pytest.raises(ReIDError, match=r"missing named group\(s\) cam"):
        read_regex(root, r"(?P<pid>\d+)_")
    with pytest.raises(ReIDError, match=r"not a valid regular expression"):
        read_regex(root, r"(?P<pid>\d+")
    with pytest.raises(ReIDError, match=r"regex layout needs a pattern"):
        read_dataset(root, layout="regex")
    letters = make_split_folders(tmp_path / "g", {"query": ["1_lobby_t1.jpg", "y_lobby_tnoon.jpg"]})
    with pytest.raises(ReIDError, match=r"y_lobby_tnoon.jpg: the pid group matched 'y', expected"):
        read_regex(letters, r"^(?P<pid>\w+?)_(?P<cam>[a-z]+)")
    noon = make_split_folders(tmp_path / "h", {"query": ["1_lobby_t1.jpg", "2_lobby_tnoon.jpg"]})
    with pytest.raises(
        ReIDError, match=r"2_lobby_tnoon.jpg: the time group matched 'noon', expected a number"
    ):
        read_regex(noon, r"^(?P<pid>\w+?)_(?P<cam>[a-z]+)_t(?P<time>\w+)\.")
    both = make_split_folders(
        tmp_path / "e", {"train": ["1_a_t1.jpg"], "bounding_box_train": ["1_a_t1.jpg"]}
    )
    with pytest.raises(ReIDError, match=r"both 'train' and 'bounding_box_train' exist"):
        read_regex(both, NAMED_CAM_PATTERN)
    none = tmp_path / "f"
    write_images(none / "images", ["1_a_t1.jpg"])
    with pytest.raises(ReIDError, match=r"no split folder found"):
        read_regex(none, NAMED_CAM_PATTERN)


# --------------------------------------------------------------------------------------------------
# CSV manifest


def _write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_manifest_with_named_cameras_missing_times_and_relative_paths(tmp_path):
    write_images(tmp_path / "imgs", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    manifest = _write_csv(
        tmp_path / "manifest.csv",
        "path,pid,camera,time,split\n"
        "imgs/a.jpg,1,north gate,10.5,train\n"
        "imgs/b.jpg,1,lobby,,train\n"
        "imgs/c.jpg,2,north gate,30,query\n"
        f"{tmp_path / 'imgs' / 'd.jpg'},2,lobby,40,gallery\n",
    )
    for source in (manifest, tmp_path):  # the file, or the folder holding manifest.csv
        assert detect_layout(source) == "manifest"
        records = read_dataset(source)
        assert records.paths.tolist() == [str(tmp_path / "imgs" / f"{n}.jpg") for n in "abcd"]
        assert records.pids.tolist() == [1, 1, 2, 2]
        assert dict(records.camera_names) == {1: "lobby", 2: "north gate"}
        assert records.cams.tolist() == [2, 1, 2, 1]
        np.testing.assert_array_equal(records.times, [10.5, np.nan, 30.0, 40.0])
        assert records.splits.tolist() == ["train", "train", "query", "gallery"]
        assert records.root == tmp_path.resolve()


def test_manifest_without_split_or_time_columns_is_a_training_set(tmp_path):
    write_images(tmp_path, ["x.png", "y.png"])
    manifest = _write_csv(tmp_path / "cams.csv", "camera,path,pid\n3,x.png,5\n7,y.png,6\n")
    assert detect_layout(tmp_path) == "manifest"  # the folder's only .csv
    records = read_manifest(manifest)
    assert records.splits.tolist() == ["train", "train"]
    assert records.cams.tolist() == [3, 7] and dict(records.camera_names) == {}
    assert np.isnan(records.times).all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("path,pid,time\na.jpg,1,3\n", r"missing column\(s\) camera"),
        ("path,pid,camera\na.jpg,one,1\n", r"line 2: pid 'one' is not an integer"),
        (
            "path,pid,camera,time\na.jpg,1,1,3\nb.jpg,1,1,noon\n",
            r"line 3: time 'noon' is not a number",
        ),
        ("path,pid,camera,split\na.jpg,1,1,test\n", r"line 2: split 'test' is not one of train"),
        (
            "path,pid,camera\na.jpg,1,1\nb.jpg,2,1\n./a.jpg,3,2\n",
            r"1 image path\(s\) listed more than once",
        ),
        (
            "path,pid,camera\na.jpg,1,1\nzzz.jpg,1,1\n",
            r"1 listed image\(s\) do not exist.*'zzz.jpg'",
        ),
        ("path,pid,camera\n", r"no rows after the header"),
        ("", r"empty file"),
        ("path,pid,camera\na.jpg,1\n", r"row 2 has 2 cells, expected 3"),
    ],
)
def test_manifest_bad_inputs(tmp_path, text, expected):
    write_images(tmp_path, ["a.jpg", "b.jpg"])
    manifest = _write_csv(tmp_path / "m.csv", text)
    with pytest.raises(ReIDError, match=expected) as info:
        read_dataset(manifest)
    assert str(info.value).startswith(str(manifest.resolve()))
    assert "\n" not in str(info.value)


def test_folder_with_several_csv_files_asks_for_one(tmp_path):
    _write_csv(tmp_path / "a.csv", "path,pid,camera\n")
    _write_csv(tmp_path / "b.csv", "path,pid,camera\n")
    with pytest.raises(ReIDError, match=r"holds 2 CSV files"):
        read_dataset(tmp_path)


# --------------------------------------------------------------------------------------------------
# Export -> read back


def test_export_round_trip_market(tmp_path):
    root = make_split_folders(tmp_path / "Market", MARKET_BASIC)
    records = read_dataset(root)
    inside = write_manifest(records, root / "manifest.csv")
    text = inside.read_text().splitlines()
    assert text[0] == "path,pid,camera,time,split"
    assert "bounding_box_train/0002_c2s3_000100_01.jpg,2,2,328468.0,train" in text  # relative
    _assert_same_records(read_manifest(inside), records)
    outside = write_manifest(records, tmp_path / "elsewhere" / "m.csv")
    assert str(root.resolve()) in outside.read_text()  # absolute when not under the csv's folder
    _assert_same_records(read_dataset(outside), records)
    assert not [p for p in outside.parent.iterdir() if p.name != "m.csv"]  # no temp file left


def test_export_round_trip_named_cameras_and_nan_times(tmp_path):
    root = make_split_folders(
        tmp_path / "mall",
        {
            "train": ["1_lobby_t100.jpg", "2_atrium_t7.jpg"],
            "query": ["1_atrium_t3.jpg"],
            "gallery": ["1_lobby_t1.jpg"],
        },
    )
    records = read_regex(root, NAMED_CAM_PATTERN)
    # Regex with named cameras -> manifest -> records: identical, names written as names.
    exported = write_manifest(records, root / "out.csv")
    assert ",lobby," in exported.read_text()
    _assert_same_records(read_manifest(exported), records)
    no_time = read_regex(root, r"^(?P<pid>\d+)_(?P<cam>[a-z]+)_")
    exported = write_manifest(no_time, root / "no_time.csv")
    back = read_manifest(exported)
    _assert_same_records(back, no_time)
    assert np.isnan(back.times).all()
    # Times that are not round numbers survive exactly.
    odd = Records.from_columns(
        [str(p) for p in no_time.paths],
        [1, 2, 1, 1],
        [1, 2, 2, 1],
        [0.1, 1e12 + 0.5, 1 / 3, 2.0],
        no_time.splits,
        root=root,
    )
    _assert_same_records(read_manifest(write_manifest(odd, root / "odd.csv")), odd)


def test_export_refuses_a_folder(tmp_path):
    records = Records.from_columns(["/x/a.jpg"], [1], [1], None, ["train"])
    with pytest.raises(ReIDError, match=r"is a folder, expected the path of a .csv file"):
        write_manifest(records, tmp_path)


# --------------------------------------------------------------------------------------------------
# Summary and the cross-camera check


def test_summary_counts_and_warnings_on_market(tmp_path):
    root = make_split_folders(tmp_path, MARKET_BASIC)
    records = read_dataset(root)
    summary = dataset_summary(records, queries_without_cross_camera_match(records))
    json.dumps(summary)  # serialisable as is
    assert summary["images"] == 8
    assert summary["ids"] == 2  # people 2 and 7; junk and distractor are not people
    assert summary["splits"]["gallery"] == {
        "images": 5,
        "ids": 2,
        "junk": 1,
        "distractors": 1,
        "cameras": 5,
        "time_range": [50.0, 328468.0],
        "images_without_time": 0,
    }
    assert summary["splits"]["train"]["time_range"] == [451.0, 328468.0]
    assert [c["id"] for c in summary["cameras"]] == [1, 2, 3, 6, 7, 12]
    assert summary["has_times"] is True
    # The query (person 2, camera 6) has gallery images of person 2 in camera 2: matchable.
    assert summary["queries_without_cross_camera_match"] == 0
    assert summary["warnings"] == []
    text = format_summary(summary)
    assert "gallery" in text and "50 .. 328468" in text and "warning" not in text


def test_summary_warns_about_one_camera_no_times_and_unmatchable_queries():
    records = Records.from_columns(
        ["q1.jpg", "q2.jpg", "g1.jpg", "g2.jpg", "t.jpg"],
        [1, 0, 1, 2, 1],
        [4, 4, 4, 4, 4],
        None,
        ["query", "query", "gallery", "gallery", "train"],
        camera_names={4: "door"},
    )
    summary = dataset_summary(records, queries_without_cross_camera_match(records))
    joined = " | ".join(summary["warnings"])
    assert "only one camera (door)" in joined
    assert "no image has a time: spatial-temporal fusion is impossible" in joined
    assert "1 of 1 queries have no gallery image of the same person in another camera" in joined
    assert "(e.g. q1.jpg)" in joined
    assert "1 queries have id -1 or 0" in joined
    assert summary["queries_without_cross_camera_match"] == 1
    assert summary["splits"]["query"]["time_range"] is None
    text = format_summary(summary)
    assert text.count("warning: ") == len(summary["warnings"]) == 4
    assert "4 (door): 5" in text


def test_summary_warns_about_partial_times_and_missing_splits():
    records = Records.from_columns(["a", "b"], [1, 1], [1, 2], [5.0, np.nan], ["train", "train"])
    warnings = dataset_summary(records)["warnings"]
    assert (
        "1 of 2 images have no time: spatial-temporal fusion needs a time for every image"
        in warnings
    )
    assert "no query images: evaluation impossible" in warnings
    assert "no gallery images: evaluation impossible" in warnings
