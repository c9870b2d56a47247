"""``synth --video`` read back, ByteTrack per camera, ``dataset info ROOT`` and ``dataset crops``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mtmct_reid.cli import main
from mtmct_reid.mtmc.root import DET, GT, read_root
from mtmct_reid.mtmc.synth_video import VideoSynthConfig, generate_video_network, plan_visits

#: A network that renders in about a second: 2 cameras, 6 people, 16 s periods at 8 fps.
TINY = VideoSynthConfig.small(
    num_ids=6,
    num_cameras=2,
    duration=16.0,
    fps=8.0,
    transit_mean_range=(5.0, 6.0),
    visit_seconds=(3.0, 4.0),
    lookalike_fraction=0.0,
)


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory):
    return generate_video_network(tmp_path_factory.mktemp("video") / "net", TINY, progress=False)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_read_back_gives_the_generated_boxes_cameras_and_times(tiny_video) -> None:
    truth = json.loads((tiny_video.out / "ground_truth.json").read_text())
    for period in ("train", "test"):
        root = read_root(tiny_video.out / period)
        assert root.cameras == tiny_video.cameras[period]
        gt = root.read_boxes(GT)
        assert gt.equals(tiny_video.gt[period]) and len(gt) > 20
        assert root.read_boxes(DET).equals(tiny_video.det[period])
        assert set(np.unique(gt.ids).tolist()) <= set(truth["periods"][period]["ids"])
        # Each box lies within its person's visit to that camera, on the common clock.
        times = root.times(gt)
        visits = [v for v in truth["visits"]]
        for pid, cam, t in zip(gt.ids.tolist(), gt.cams.tolist(), times.tolist(), strict=True):
            assert any(
                v["pid"] == pid
                and v["camera"] == cam
                and v["enter"] - 1e-9 <= t <= v["exit"] + 1e-9
                for v in visits
            ), (pid, cam, t)
        for cam in root.cameras:
            n = root.num_frames(cam.id)
            start = 0.0 if period == "train" else TINY.test_start
            assert start <= cam.offset <= start + TINY.max_start_delay
            assert n == int((start + TINY.duration - cam.offset) * TINY.fps)
        # Boxes sit inside the frame, gt with visibility, det with confidences.
        assert (gt.x >= 0).all() and (gt.x + gt.w <= TINY.frame_size[1]).all()
        assert ((gt.visibility >= 0) & (gt.visibility <= 1)).all()


def test_same_seed_same_bytes(tiny_video, tmp_path: Path) -> None:
    again = generate_video_network(tmp_path / "again", TINY, progress=False)
    assert _digest(again.out) == _digest(tiny_video.out)


def test_lookalikes_walk_far_apart_in_time() -> None:
    from mtmct_reid.data.synth.config import STREAM_GRAPH, STREAM_PEOPLE, stream
    from mtmct_reid.data.synth.graph import build_graph
    from mtmct_reid.data.synth.people import draw_identities

    config = VideoSynthConfig()
    image_config = config.image_config()
    graph = build_graph(image_config, stream(config.seed, STREAM_GRAPH))
    people, groups = draw_identities(image_config, stream(config.seed, STREAM_PEOPLE))
    visits = plan_visits(config, graph, people, groups)
    assert groups and all(len(g) == config.lookalike_group_size for g in groups)
    longest = max(link.quantile_upper(0.9995) for link in graph.links) / 1000
    for members in groups:
        spans = sorted(
            (
                min(v.enter for v in visits if v.pid == p.pid),
                max(v.exit for v in visits if v.pid == p.pid),
            )
            for p in members
        )
        for (_, end), (start, _) in zip(spans[:-1], spans[1:], strict=True):
            assert start - end > longest  # no plausible transit joins two look-alikes
    # A person visits at least two cameras, each visit long enough for several boxes.
    per_person = {}
    for v in visits:
        per_person.setdefault(v.pid, []).append(v)
        assert (v.exit - v.enter) * config.fps >= 20
    assert all(len(vs) >= 2 for vs in per_person.values())


def test_track_sct_follows_the_tiny_network(tiny_video, tmp_path: Path, capsys) -> None:
    pytest.importorskip("trackers")
    import shutil

    root_dir = tmp_path / "train"
    shutil.copytree(tiny_video.out / "train", root_dir)
    assert main(["track-sct", str(root_dir), "--evaluate"]) == 0
    out = capsys.readouterr().out
    root = read_root(root_dir)
    tracks = root.read_boxes("bytetrack")
    assert len(tracks) > 0.6 * len(tiny_video.gt["train"])
    from mtmct_reid.mtmc.metrics import evaluate_tracks

    scores = evaluate_tracks(tracks, root.read_boxes(GT))
    for cam, s in scores.cameras.items():
        assert s.IDF1 > 0.6, (cam, s)
    assert "network" in out


def test_bad_tracking_and_crop_settings_are_one_line_errors(tiny_video, tmp_path: Path) -> None:
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.mtmc.sct import ByteTrackParams
    from mtmct_reid.mtmc.summary import write_crop_dataset

    for settings, message in (
        ({"lost_track_buffer": -1}, "lost track buffer must be an integer >= 0, got -1"),
        ({"minimum_consecutive_frames": 0}, "minimum consecutive frames must be a positive"),
        (
            {"minimum_iou_threshold": 1.5},
            r"minimum iou threshold must be a finite number in \[0, 1\]",
        ),
    ):
        with pytest.raises(ReIDError, match=message):
            ByteTrackParams(**settings).validate()
    root = read_root(tiny_video.out / "train")
    with pytest.raises(ReIDError, match="crops: step must be a positive integer, got 0"):
        write_crop_dataset(root, tmp_path / "crops", step=0)
    with pytest.raises(ReIDError, match="crop batch size must be a positive integer, got 0"):
        next(root.iter_crops(root.read_boxes(GT), batch_size=0))
    assert not (tmp_path / "crops").exists()


def test_dataset_info_and_preview_of_a_root(tiny_video, tmp_path: Path, capsys) -> None:
    from PIL import Image

    assert main(["dataset", "info", str(tiny_video.out / "train"), "--preview", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MTMC root" in out and f"gt: {len(tiny_video.gt['train'])} boxes" in out
    pngs = sorted(tmp_path.glob("camera_*.png"))
    assert [p.name for p in pngs] == ["camera_1.png", "camera_2.png"]
    with Image.open(pngs[0]) as im:
        assert im.width >= 480
    assert main(["dataset", "info", str(tiny_video.out / "train"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sources"]["gt"]["ids"] == len(np.unique(tiny_video.gt["train"].ids))


def test_crop_dataset_times_and_cameras_equal_the_ground_truth(tiny_video, tmp_path: Path) -> None:
    from mtmct_reid.data.layouts import read_dataset

    root = read_root(tiny_video.out / "train")
    out = tmp_path / "crops"
    assert main(["dataset", "crops", str(root.path), "--out", str(out)]) == 0
    records = read_dataset(out, layout="market1501")
    gt = tiny_video.gt["train"]
    expected = sorted(
        zip(gt.ids.tolist(), gt.cams.tolist(), np.rint(root.times(gt) * 100).tolist(), strict=True)
    )
    got = sorted(
        zip(records.pids.tolist(), records.cams.tolist(), records.times.tolist(), strict=True)
    )
    assert got == expected
    assert set(records.splits.tolist()) == {"train", "query", "gallery"}
    # Train and test identities are disjoint.
    train = set(records.pids[records.splits == "train"].tolist())
    assert train.isdisjoint(records.pids[records.splits != "train"].tolist())
    assert main(["dataset", "crops", str(root.path), "--out", str(out)]) == 2  # exists: --force


def test_mp4_cameras_give_the_same_boxes_and_decode(tiny_video, tmp_path: Path) -> None:
    import dataclasses

    pytest.importorskip("av")
    net = generate_video_network(
        tmp_path / "mp4", dataclasses.replace(TINY, video_file=True), progress=False
    )
    root = read_root(net.out / "train")
    assert (root.path / "1" / "video.mp4").is_file() and not (root.path / "1" / "img1").exists()
    assert root.read_boxes(GT).equals(tiny_video.gt["train"])
    cam = root.cameras[0]
    assert root.num_frames(cam.id) == read_root(tiny_video.out / "train").num_frames(cam.id)
    batch = next(root.iter_crops(root.read_boxes(GT).camera(cam.id), batch_size=4, size=(32, 16)))
    assert batch.images.shape == (4, 32, 16, 3)


def test_output_folder_is_never_clobbered(tiny_video, tmp_path: Path) -> None:
    from mtmct_reid.errors import ReIDError

    with pytest.raises(ReIDError, match="holds a synthetic video network; pass --force"):
        generate_video_network(tiny_video.out, TINY, progress=False)

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ReIDError, match="not empty and not a synthetic video network"):
        generate_video_network(tmp_path / "mine", TINY, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ReIDError, match="num_cameras = 12, expected 2..9"):
        generate_video_network(tmp_path / "new", VideoSynthConfig(num_cameras=12), progress=False)
    assert not (tmp_path / "new").exists()
