"""``mtmct-reid track`` and ``st fit ROOT`` end to end on a tiny hand-made MTMC root: people walk
camera 1 → 2 → 3 with fixed transit times; outputs round-trip through the track-eval functions,
cannot-link holds on the output, bad input is one line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mtmct_reid.cli import main
from mtmct_reid.models import build_model
from mtmct_reid.mtmc.metrics import evaluate_tracks
from mtmct_reid.mtmc.root import GT, Boxes, Camera, create_root, read_aicity, read_mot, read_root
from mtmct_reid.retrieval.transit import TransitTimeModel
from tests._deploy import checkpoint_file

FPS = 10.0
FRAMES = 140
SIZE = (96, 160)  # height, width
#: Transit seconds (exit of the earlier camera → entry of the later).
TRANSITS = {(2, 1): 2.0, (3, 2): 3.0}
COLOURS = [
    (200, 30, 30),
    (30, 200, 30),
    (30, 30, 200),
    (200, 200, 30),
    (30, 200, 200),
    (200, 30, 200),
]


def _make_root(path):
    cameras = [Camera(id=c, name=str(c), fps=FPS, offset=0.0) for c in (1, 2, 3)]
    root = create_root(path, cameras)
    rows = {c: [] for c in (1, 2, 3)}
    for p, colour in enumerate(COLOURS):
        time = 0.8 * p
        for cam in (1, 2, 3):
            if cam > 1:
                time += TRANSITS[(cam, cam - 1)]
            first = int(round(time * FPS)) + 1
            for k in range(15):  # 1.5 s in view
                rows[cam].append((first + k, p + 1, 10 + 8 * k, 20, 24, 56, colour))
            time += 1.4
    for cam in (1, 2, 3):
        folder = path / str(cam) / "img1"
        folder.mkdir(parents=True)
        for frame in range(1, FRAMES + 1):
            image = np.full((*SIZE, 3), 90 + 20 * cam, dtype=np.uint8)
            for f, _, x, y, w, h, colour in rows[cam]:
                if f == frame:
                    image[y : y + h // 2, x : x + w] = colour
                    image[y + h // 2 : y + h, x : x + w] = tuple(255 - v for v in colour)
            Image.fromarray(image).save(folder / f"{frame:06d}.jpg", quality=95)
    gt = Boxes.from_columns(
        cams=[c for c in (1, 2, 3) for _ in rows[c]],
        frames=[r[0] for c in (1, 2, 3) for r in rows[c]],
        ids=[r[1] for c in (1, 2, 3) for r in rows[c]],
        x=[r[2] for c in (1, 2, 3) for r in rows[c]],
        y=[r[3] for c in (1, 2, 3) for r in rows[c]],
        w=[r[4] for c in (1, 2, 3) for r in rows[c]],
        h=[r[5] for c in (1, 2, 3) for r in rows[c]],
    )
    root.write_boxes(gt, GT)
    # A single-camera tracker's output: the same boxes with local ids.
    root.write_boxes(gt.replace(ids=gt.ids * 10 + gt.cams), "mine")
    root.write_boxes(gt.replace(ids=np.full(len(gt), -1)), "det")
    return root


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    base = tmp_path_factory.mktemp("mtmc")
    _make_root(base / "train")
    _make_root(base / "test")
    torch.manual_seed(0)
    net = build_model("pcb", num_classes=5, backbone="resnet18", weights="none", num_parts=2)
    checkpoint_file(base / "model.ckpt", net)
    return base


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_st_fit_root_recovers_the_transit_times(network, capsys):
    out = network / "st.npz"
    argv = ["st", "fit", str(network / "train"), "--out", str(out), "--bin-width", "0.2"]
    code, stdout, _ = _run([*argv, "--sigma", "1"], capsys)
    assert code == 0, stdout
    model = TransitTimeModel.load(out)
    means = model.mean_transit()
    for (later, earlier), gap in TRANSITS.items():
        # Within one 0.2 s bin of the walked transit.
        fitted = means[model.camera_index(later), model.camera_index(earlier)]
        assert abs(fitted - gap) < 0.2, (later, earlier, fitted)
    assert model.num_observed_pairs == 2
    assert model.time_unit == "seconds"


def test_track_writes_global_ids_that_round_trip_through_track_eval(network, capsys, tmp_path):
    st = network / "st_for_track.npz"
    assert main(["st", "fit", str(network / "train"), "--out", str(st)]) == 0
    out = tmp_path / "out"
    argv = ["track", str(network / "test"), "--checkpoint", str(network / "model.ckpt")]
    argv += ["--tracks", "mine", "--st-model", str(st), "--out", str(out), "--device", "cpu"]
    argv += ["--eval", str(network / "test"), "--modes", "--journeys", "1"]
    argv += ["--crops-per-tracklet", "2"]
    code, stdout, stderr = _run(argv, capsys)
    assert code == 0, stderr
    for name in ("mtmc.txt", "identities.csv", "timeline.png", "summary.json", "modes.json"):
        assert (out / name).is_file(), name
    assert len(list(out.glob("journey_*.png"))) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tracklets"] == 18 and summary["threshold_from"] == "training period"
    # The AI City file and the per-camera files hold the same global boxes.
    root = read_root(network / "test")
    mtmc = read_aicity(out / "mtmc.txt", root.cameras)
    per_camera = Boxes.concat([read_mot(out / "tracks" / f"{c}.txt", c) for c in (1, 2, 3)])
    assert np.array_equal(mtmc.sorted().ids, per_camera.sorted().ids)
    gt = root.read_boxes(GT)
    scores = evaluate_tracks(mtmc, gt, root.times(gt))
    assert pytest.approx(summary["eval"]["network"]["IDF1"]) == scores.network.IDF1
    # identities.csv agrees with the tracks, and no identity holds two overlapping visits of one camera.
    with open(out / "identities.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["global_id", "camera", "local_id", "start", "end", "frames"]
    assert len(rows) == 18 and sum(int(r["frames"]) for r in rows) == len(gt)
    visits = {}
    for r in rows:
        visits.setdefault((r["global_id"], r["camera"]), []).append(
            (float(r["start"]), float(r["end"]))
        )
    for spans in visits.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans[:-1], spans[1:], strict=True):
            assert start > end
    modes = json.loads((out / "modes.json").read_text())["modes"]
    assert {"appearance", "+transit (labelled)"} <= set(modes)
    assert "IDF1" in stdout and "+transit (labelled)" in stdout

    # Run again into the same folder, without --modes: nothing of the first run's table is left.
    again = ["track", str(network / "test"), "--checkpoint", str(network / "model.ckpt")]
    again += ["--tracks", "mine", "--st-model", str(st), "--out", str(out), "--device", "cpu"]
    again += ["--threshold", "0.999", "--journeys", "0", "--crops-per-tracklet", "2"]
    code, stdout, stderr = _run(again, capsys)
    assert code == 0, stderr
    assert not (out / "modes.json").exists() and not list(out.glob("journey_*.png"))
    assert "(threshold 0.999, --threshold)" in stdout


def test_bad_input_is_one_line_and_writes_nothing(network, capsys, tmp_path):
    ckpt = str(network / "model.ckpt")
    test = str(network / "test")
    junk = tmp_path / "junk.ckpt"
    junk.write_text("nope")
    out = tmp_path / "never"
    base = ["track", test, "--checkpoint", ckpt, "--tracks", "mine", "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--threshold", "1.5"])
    assert exit_info.value.code == 2 and "--threshold" in capsys.readouterr().err
    # A model of frame numbers (an image dataset's) would time every gap in the wrong unit.
    in_frames = TransitTimeModel(
        camera_ids=np.array([1, 2, 3]),
        probabilities=np.zeros((3, 3, 4)),
        counts=np.zeros((3, 3, 4)),
        pair_ids=np.zeros((3, 3), dtype=np.int64),
        time_unit="frames",
    )
    in_frames.save(tmp_path / "frames.npz")
    cases = [
        (
            ["--st-model", str(tmp_path / "frames.npz")],
            "frames.npz: this transit-time model counts",
        ),
        (["--checkpoint", str(junk)], "junk.ckpt: not a checkpoint"),
        (["--tracks", "nothere"], "no camera has nothere"),
        (["--eval", str(tmp_path / "nowhere")], "nowhere"),
    ]
    for extra, message in cases:
        code, _, stderr = _run([*base, "--threshold", "0.5", *extra], capsys)
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert not out.exists()


def test_transit_model_without_a_camera_falls_back_with_one_warning(
    network, capsys, tmp_path, caplog
):
    # A model that knows cameras 1 and 2 only.
    probabilities = np.zeros((2, 2, 10))
    probabilities[1, 0, 2] = 1.0
    model = TransitTimeModel(
        camera_ids=np.array([1, 2]),
        probabilities=probabilities,
        counts=probabilities.copy(),
        pair_ids=np.array([[0, 0], [1, 0]]),
        bin_width=1.0,
        sigma_bins=0.0,
    )
    model.save(tmp_path / "partial.npz")
    argv = ["track", str(network / "test"), "--checkpoint", str(network / "model.ckpt")]
    # No --tracks and no tracks/bytetrack.txt: ByteTrack runs over det/det.txt.
    argv += ["--st-model", str(tmp_path / "partial.npz"), "--threshold", "0.5"]
    argv += ["--out", str(tmp_path / "out"), "--journeys", "0", "--device", "cpu"]
    argv += ["--crops-per-tracklet", "1"]
    with caplog.at_level("WARNING"):
        code, _, _ = _run(argv, capsys)
    assert code == 0
    warnings = [
        r.getMessage()
        for r in caplog.records
        if "transit-time model has no camera" in r.getMessage()
    ]
    assert len(warnings) == 1 and "no camera 3" in warnings[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tracks"] == "bytetrack" and summary["tracklets"] >= 18
    assert not (network / "test" / "1" / "tracks" / "bytetrack.txt").exists()


def test_demo_tracking_renders_tracks_and_compares_modes(network, tmp_path):
    from mtmct_reid.mtmc.modes import demo_tracking
    from mtmct_reid.mtmc.synth_video import VideoSynthConfig

    config = VideoSynthConfig.small(duration=20.0, num_ids=6, lookalike_fraction=0.0)
    result = demo_tracking(tmp_path, network / "model.ckpt", config=config, per_tracklet=1)
    assert {"appearance", "+transit (labelled)"} <= set(result["modes"])
    for row in result["modes"].values():
        assert 0.0 <= row["IDF1"] <= 1.0 and 0.0 <= row["MCTA"] <= 1.0
    names = sorted(p.name for p in result["pictures"])
    assert names[-1] == "timeline.png" and names[0].startswith("journey_")
    assert json.loads((tmp_path / "tracking_modes.json").read_text())["tracklets"] > 0


def test_st_fit_from_matches_finds_the_walked_links_without_labels(network, capsys):
    out = network / "boot.npz"
    argv = ["st", "fit", str(network / "test"), "--from-matches", "--tracks", "mine"]
    code, _, stderr = _run([*argv, "--out", str(out)], capsys)
    assert code == 2 and "--from-matches needs --checkpoint" in stderr and not out.exists()
    argv += ["--checkpoint", str(network / "model.ckpt"), "--min-similarity", "-1"]
    code, stdout, stderr = _run([*argv, "--out", str(out), "--device", "cpu"], capsys)
    assert code == 0, stderr
    model = TransitTimeModel.load(out)
    later, earlier = np.nonzero(model.observed)
    found = set(
        zip(model.camera_ids[later].tolist(), model.camera_ids[earlier].tolist(), strict=True)
    )
    assert found == set(TRANSITS)
