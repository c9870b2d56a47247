"""The MTMC root: cameras.csv, MOTChallenge and AI City files, frames, video and crops."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc.root import (
    DET,
    GT,
    Boxes,
    Camera,
    create_root,
    read_aicity,
    read_cameras,
    read_root,
    write_aicity,
    write_cameras,
    write_video,
)


def _cameras(width: int | None = 40, height: int | None = 30) -> list[Camera]:
    return [
        Camera(id=1, name="1", fps=10.0, offset=0.0, width=width, height=height),
        Camera(id=3, name="3", fps=25.0, offset=12.5, width=width, height=height),
    ]


def _random_boxes(rng: np.random.Generator, n: int, with_ids: bool = True) -> Boxes:
    cams = rng.choice([1, 3], size=n)
    frames = np.arange(n) % 7 + 1
    # Unique (camera, frame, id): the id is the row's position among its frame's rows.
    ids = np.arange(n) + 1 if with_ids else np.full(n, -1)
    return Boxes.from_columns(
        cams=cams,
        frames=frames,
        ids=ids,
        x=rng.uniform(0, 20, n).round(2),
        y=rng.uniform(0, 10, n) / 3,  # floats that need every digit to round-trip
        w=rng.integers(1, 15, n),
        h=rng.uniform(1, 15, n),
        conf=rng.uniform(0, 1, n),
        cls=rng.integers(1, 3, n),
        visibility=rng.uniform(0, 1, n),
    ).sorted()


def _write_frames(folder: Path, count: int, size=(30, 40)) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(1, count + 1):
        image = np.zeros((*size, 3), dtype=np.uint8)
        image[..., 0] = i * 20
        image[:, : size[1] // 2, 1] = 200
        Image.fromarray(image).save(folder / f"{i:06d}.png")
        frames.append(image)
    return frames


def test_cameras_csv_round_trip_with_names_and_sizes(tmp_path: Path) -> None:
    cams = _cameras()
    write_cameras(tmp_path / "cameras.csv", cams)
    assert read_cameras(tmp_path / "cameras.csv") == cams
    (tmp_path / "named.csv").write_text("camera,fps,offset\nwest,30,0.5\neast,15,-2\n")
    named = read_cameras(tmp_path / "named.csv")
    assert [(c.id, c.name, c.fps, c.offset, c.width) for c in named] == [
        (2, "west", 30.0, 0.5, None),
        (1, "east", 15.0, -2.0, None),
    ]
    # Frame 1 is at the offset; frame f at offset + (f - 1) / fps.
    assert named[0].times(np.array([1, 31])).tolist() == [0.5, 1.5]
    assert named[0].frames_at(named[0].times(np.arange(1, 100))).tolist() == list(range(1, 100))


def test_mot_files_round_trip_for_gt_det_and_tracks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    root = create_root(tmp_path / "root", _cameras(width=None, height=None))
    gt = _random_boxes(rng, 40)
    root.write_boxes(gt, GT)
    again = read_root(tmp_path / "root")
    assert again.read_boxes(GT).equals(gt)
    # Detections and tracks keep frame, id, box and confidence; class and visibility read as -1.
    det = _random_boxes(rng, 30, with_ids=False).replace(
        cls=np.full(30, -1), visibility=np.full(30, -1.0)
    )
    root.write_boxes(det, DET)
    assert again.read_boxes(DET).equals(det)
    tracks = gt.replace(cls=np.full(len(gt), -1), visibility=np.full(len(gt), -1.0))
    root.write_boxes(tracks, "bytetrack")
    assert again.read_boxes("bytetrack").equals(tracks)
    assert again.sources() == ["gt", "det", "bytetrack"]
    # Common-clock times follow each camera's fps and offset.
    times = again.times(gt)
    cam3 = gt.cams == 3
    np.testing.assert_array_equal(times[cam3], 12.5 + (gt.frames[cam3] - 1) / 25.0)
    np.testing.assert_array_equal(times[~cam3], (gt.frames[~cam3] - 1) / 10.0)


def test_aicity_file_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    boxes = _random_boxes(rng, 25).replace(
        conf=np.ones(25),
        cls=np.full(25, -1),
        visibility=np.full(25, -1.0),
        xworld=rng.uniform(-5, 5, 25),
        yworld=np.full(25, -1.0),
    )
    write_aicity(tmp_path / "mtmc.txt", boxes)
    first = (tmp_path / "mtmc.txt").read_text().splitlines()[0].split(" ")
    assert len(first) == 9 and first[0] == str(boxes.cams[0])
    assert read_aicity(tmp_path / "mtmc.txt", _cameras()).equals(boxes)
    # Seven columns (no world coordinates) are read with -1 there.
    (tmp_path / "short.txt").write_text("1 4 2 10 20 5 6\n")
    short = read_aicity(tmp_path / "short.txt")
    assert (short.cams[0], short.ids[0], short.frames[0], short.xworld[0]) == (1, 4, 2, -1.0)


def test_frames_and_crops_from_img1(tmp_path: Path) -> None:
    root = create_root(tmp_path, _cameras(width=None, height=None))
    frames = {
        1: _write_frames(tmp_path / "1" / "img1", 5),
        3: _write_frames(tmp_path / "3" / "img1", 3),
    }
    root = read_root(tmp_path)
    assert (root.num_frames(1), root.num_frames(3), root.frame_size(1)) == (5, 3, (40, 30))
    got = list(root.iter_frames(1))
    assert [f for f, _ in got] == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(got[3][1], frames[1][3])
    assert [f for f, _ in root.iter_frames(1, frames=[4, 2])] == [2, 4]
    boxes = Boxes.from_columns(
        cams=[3, 1, 1, 1],
        frames=[2, 5, 1, 5],
        ids=[1, 2, 3, 4],
        x=[0, 18, 25, 0],
        y=[0, 1, 2, 0],
        w=[10, 4, 10, 40],
        h=[5, 6, 7, 30],
    )
    batches = list(root.iter_crops(boxes, batch_size=3))
    assert [len(b.rows) for b in batches] == [3, 1]
    crops = {int(r): im for b in batches for r, im in zip(b.rows, b.images, strict=True)}
    assert sorted(crops) == [0, 1, 2, 3]
    np.testing.assert_array_equal(crops[1], frames[1][4][1:7, 18:22])
    np.testing.assert_array_equal(crops[0], frames[3][1][0:5, 0:10])
    assert crops[3].shape == (30, 40, 3)
    resized = list(root.iter_crops(boxes, batch_size=8, size=(16, 8)))
    assert resized[0].images.shape == (4, 16, 8, 3) and resized[0].images.dtype == np.uint8


def test_video_frames_are_decoded_in_order(tmp_path: Path) -> None:
    pytest.importorskip("av")
    root = create_root(tmp_path, [Camera(id=1, name="1", fps=10.0, offset=0.0)])
    images = []
    for i in range(12):
        image = np.full((48, 64, 3), 30, dtype=np.uint8)
        image[:, :, 0] = 20 * i  # red grows frame by frame: order is visible after lossy coding
        images.append(image)
    write_video(tmp_path / "1" / "video.mp4", iter(images), fps=10.0)
    assert root.num_frames(1) == 12 and root.frame_size(1) == (64, 48)
    reds = [float(im[..., 0].mean()) for _, im in root.iter_frames(1)]
    assert np.allclose(reds, [20 * i for i in range(12)], atol=6)
    assert [f for f, _ in root.iter_frames(1, frames=[3, 7])] == [3, 7]
    crop = next(
        root.iter_crops(
            Boxes.from_columns(cams=[1], frames=[5], ids=[1], x=[8], y=[8], w=[16], h=[16])
        )
    )
    assert (
        crop.images[0].shape == (16, 16, 3) and abs(float(crop.images[0][..., 0].mean()) - 80) < 6
    )


def _root_with_gt(tmp_path: Path, rows: str | bytes, frames: int | None = None) -> Path:
    create_root(tmp_path, _cameras())
    if frames:
        for cam in ("1", "3"):
            _write_frames(tmp_path / cam / "img1", frames)
    (tmp_path / "1" / "gt").mkdir(exist_ok=True)
    gt = tmp_path / "1" / "gt" / "gt.txt"
    gt.write_bytes(rows) if isinstance(rows, bytes) else gt.write_text(rows)
    return tmp_path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            "1,1,0,0,5,5,1,1,1\n2,1,0,0,x,5,1,1,1\n",
            r"gt\.txt: row 2: field 'w' is 'x', expected a number",
        ),
        ("1,1,0,0,5,5,1,1,1\n\n2,1,0,0,5\n", r"gt\.txt: row 3 has 5 fields"),
        (
            b"1,1,0,0,5,5,1,1,1\n2,1,0,0,5,5,1,1,1 \x80\n",
            r"gt\.txt: row 2: not UTF-8 text \(invalid start byte 0x80 at byte 19 of the row\)",
        ),
        ("1,1,0,0,5,0,1,1,1\n", r"gt\.txt: row 1: box size 5x0, expected width and height > 0"),
        (
            "1,1,0,0,5,5,1,1,1\n1,2,0,0,5,5,1,1,1\n1,1,3,3,5,5,1,1,1\n",
            r"gt\.txt: row 3: frame 1 id 1 repeats row 1",
        ),
        ("0,1,0,0,5,5,1,1,1\n", r"gt\.txt: row 1: field 'frame' is 0, expected an integer >= 1"),
        ("1,1.5,0,0,5,5,1,1,1\n", r"gt\.txt: row 1: field 'id' is 1.5"),
        ("1,1,nan,0,5,5,1,1,1\n", r"gt\.txt: row 1: field 'x' is nan, expected a finite number"),
        (
            "1,1,0,0,5,5,1,1,1\n9,1,0,0,5,5,1,1,1\n",
            r"gt\.txt: row 2: frame 9 is past the camera's last frame 4",
        ),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path: Path, rows: str | bytes, message: str) -> None:
    root = read_root(_root_with_gt(tmp_path, rows, frames=4))
    with pytest.raises(ReIDError, match=message):
        root.read_boxes(GT)


def test_boxes_outside_the_frame_are_clipped_with_one_warning(tmp_path: Path, caplog) -> None:
    root = read_root(
        _root_with_gt(tmp_path, "1,1,-5,0,10,10,1,1,1\n2,1,35,25,10,10,1,1,1\n3,1,50,0,5,5,1,1,1\n")
    )
    with caplog.at_level(logging.WARNING):
        gt = root.read_boxes(GT)
    clip = [r for r in caplog.records if "partly" in r.getMessage()]
    assert len(clip) == 1 and "2 box(es) partly outside the 40x30 frame" in clip[0].getMessage()
    assert "1 entirely outside dropped" in clip[0].getMessage()
    assert gt.xywh.tolist() == [[0, 0, 5, 10], [35, 25, 5, 5]]


def test_bad_roots_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ReIDError, match=r"cameras\.csv not found"):
        read_root(tmp_path)
    (tmp_path / "cameras.csv").write_text("camera,fps,offset\n1,10,0\n2,ten,0\n")
    with pytest.raises(ReIDError, match=r"cameras\.csv: row 3: field 'fps' is 'ten'"):
        read_root(tmp_path)
    (tmp_path / "cameras.csv").write_bytes(b"camera,fps,offset\n1,10,0\ncam\xe9ra2,10,0\n")
    with pytest.raises(
        ReIDError, match=r"cameras\.csv: row 3: not UTF-8 text \(invalid .* 0xe9 at byte 4"
    ):
        read_root(tmp_path)
    (tmp_path / "cameras.csv").write_text("camera,fps\n1,10\n")
    with pytest.raises(ReIDError, match=r"missing column\(s\) offset"):
        read_root(tmp_path)
    (tmp_path / "cameras.csv").write_text("camera,fps,offset\n1,10,0\n2,10,0\n")
    (tmp_path / "1").mkdir()
    with pytest.raises(ReIDError, match=r"camera '2' has no folder"):
        read_root(tmp_path)
    (tmp_path / "2").mkdir()
    root = read_root(tmp_path)
    (tmp_path / "aic.txt").write_text("1 1 1 0 0 5 5 -1 -1\n7 1 1 0 0 5 5 -1 -1\n")
    with pytest.raises(ReIDError, match=r"aic\.txt: row 2: camera_id 7 is not in cameras\.csv"):
        read_aicity(tmp_path / "aic.txt", root.cameras)
    frames = tmp_path / "1" / "img1"
    _write_frames(frames, 3)
    (frames / "000002.png").unlink()
    with pytest.raises(ReIDError, match=r"img1: frame 000002 is missing"):
        root.num_frames(1)
    (tmp_path / "2" / "video.mp4").write_bytes(b"not a video at all" * 10)
    pytest.importorskip("av")
    with pytest.raises(ReIDError, match=r"video\.mp4: cannot be decoded"):
        list(root.iter_frames(2))


def test_cli_bad_root_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    from mtmct_reid.cli import main

    root = _root_with_gt(tmp_path, "1,1,0,0,5,5,1,1,1\n2,1,0,0,-3,5,1,1,1\n", frames=3)
    assert main(["dataset", "info", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gt.txt: row 2: box size -3x5" in err[0]
    (root / "1" / "gt" / "gt.txt").write_text("1,1,0,0,5,5,1,1,1\n")
    (root / "3" / "img1" / "000002.png").unlink()
    assert main(["dataset", "info", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "img1: frame 000002 is missing" in err[0]


@pytest.mark.parametrize("camera_file", ["img1", "video.mp4", "det/det.txt"])
def test_cli_root_without_cameras_csv_names_it_in_every_verb(
    tmp_path: Path, capsys, camera_file: str
) -> None:
    # A video network root whose cameras.csv went missing: every verb that takes a root names the
    # missing file (as track-sct does), not "no known dataset layout" of the image layouts.
    from mtmct_reid.cli import main

    root = tmp_path / "net"
    for cam in ("1", "2"):
        if camera_file != "img1":
            (root / cam / camera_file).parent.mkdir(parents=True, exist_ok=True)
            (root / cam / camera_file).write_bytes(b"")
        else:
            (root / cam / camera_file).mkdir(parents=True)
    verbs = [
        ["track-sct", str(root)],
        ["dataset", "info", str(root)],
        ["st", "fit", str(root), "--out", str(tmp_path / "st.npz")],
    ]
    for verb in verbs:
        assert main(verb) == 2, verb
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{root / 'cameras.csv'}: cameras.csv not found" in err[0], verb
        assert "no known dataset layout" not in err[0]
    assert not (tmp_path / "st.npz").exists()


def test_image_folders_are_not_taken_for_a_root_without_cameras_csv(tmp_path: Path, capsys) -> None:
    from mtmct_reid.cli import main

    for folder in ("bounding_box_train", "query", "gt_bbox"):
        (tmp_path / folder).mkdir()
    assert main(["dataset", "info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Market-style folders" in err and "cameras.csv" not in err


def test_a_manifest_of_crops_in_gt_folders_is_read_as_images(tmp_path: Path, capsys) -> None:
    # Image datasets name folders gt/ and det/ too; an explicit --layout is obeyed either way.
    from mtmct_reid.cli import main

    data = tmp_path / "ds"
    rows = ["path,pid,camera,time,split"]
    for i, (pid, cam) in enumerate([(1, 1), (1, 2), (2, 1), (2, 2)]):
        (data / "crops" / "gt").mkdir(parents=True, exist_ok=True)
        (data / "crops" / "gt" / f"{i}.jpg").write_bytes(b"")
        rows.append(f"crops/gt/{i}.jpg,{pid},{cam},{10 * i},train")
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    for extra in ([], ["--layout", "manifest"]):
        assert main(["dataset", "info", str(data), *extra]) == 0, capsys.readouterr().err
        assert "cameras.csv" not in capsys.readouterr().err
