"""MTMC metrics against cases worked out by hand, and the ``track-eval`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtmct_reid.cli import main
from mtmct_reid.mtmc.metrics import build_sequence, clear_matches, evaluate_tracks
from mtmct_reid.mtmc.root import GT, Boxes, Camera, create_root, read_root, write_aicity
from mtmct_reid.mtmc.sct import TRACKS_NAME

pytest.importorskip("trackers")

# Three well-separated places in a 100x100 frame.
PLACE = {"a": (0, 0), "b": (40, 0), "c": (0, 60)}


def _boxes(rows: list[tuple[int, int, int, str]]) -> Boxes:
    """Rows of (camera, frame, id, place)."""
    cams, frames, ids, places = zip(*rows, strict=True)
    xy = np.array([PLACE[p] for p in places], dtype=np.float64)
    n = len(rows)
    return Boxes.from_columns(
        cams=cams,
        frames=frames,
        ids=ids,
        x=xy[:, 0],
        y=xy[:, 1],
        w=np.full(n, 20),
        h=np.full(n, 30),
    )


def _hand_case() -> tuple[Boxes, Boxes]:
    """Camera 1, frames 1-4: A (id 1) at a throughout, B (id 2) at b in frames 1-2. Camera 2,
    frames 1-2: A at a. The prediction follows A as 10 then 11 from frame 3 on in camera 1 and as
    11 in camera 2, B as 20, and adds a false box 30 at c in camera 1's frame 4."""
    gt = _boxes(
        [(1, f, 1, "a") for f in (1, 2, 3, 4)]
        + [(1, f, 2, "b") for f in (1, 2)]
        + [(2, f, 1, "a") for f in (1, 2)]
    )
    pred = _boxes(
        [(1, 1, 10, "a"), (1, 2, 10, "a"), (1, 3, 11, "a"), (1, 4, 11, "a")]
        + [(1, f, 20, "b") for f in (1, 2)]
        + [(1, 4, 30, "c")]
        + [(2, f, 11, "a") for f in (1, 2)]
    )
    return pred, gt


def _scores(scores, *names: str) -> dict[str, float]:
    return {n: getattr(scores, n) for n in names or ("IDP", "IDR", "IDF1", "MOTA")}


def _times(gt: Boxes) -> np.ndarray:
    # Camera 1 at 1 fps from t = 0; camera 2 starts at t = 10: A walks from camera 1 to camera 2.
    return np.where(gt.cams == 1, gt.frames - 1.0, 10.0 + gt.frames - 1.0)


def test_hand_worked_case() -> None:
    pred, gt = _hand_case()
    s = evaluate_tracks(pred, gt, gt_times=_times(gt))
    cam1 = s.cameras[1]
    # Identity: the best one-to-one map is A->10 (or 11) for 2 boxes and B->20 for 2: IDTP = 4 of
    # 6 ground-truth and 7 predicted boxes.
    # CLEAR: every gt box matched (FN 0), one false box, one switch (A: 10 -> 11).
    assert _scores(cam1) == pytest.approx(
        {"IDP": 4 / 7, "IDR": 4 / 6, "IDF1": 2 * 4 / (6 + 7), "MOTA": 1 - (0 + 1 + 1) / 6}
    )
    assert (cam1.counts["FP"], cam1.counts["IDSW"]) == (1, 1)
    assert s.cameras[2].IDF1 == 1.0 and s.cameras[2].MOTA == 1.0
    # Network: camera 2's frames follow camera 1's, so A->11 now covers 4 boxes: IDTP = 4 + 2
    # of 8 ground-truth and 9 predicted boxes.
    assert _scores(s.network, "IDP", "IDR", "IDF1") == pytest.approx(
        {"IDP": 6 / 9, "IDR": 6 / 8, "IDF1": 12 / 17}
    )
    # MCTA: TP 8, FP 1, FN 0 -> F1 16/17; one handover (A into camera 2, kept as 11), seven
    # within-camera steps (TP - handovers) with one mismatch (10 -> 11).
    assert s.mcta_parts == {
        "F1": pytest.approx(16 / 17),
        "within_mismatches": 1,
        "within_steps": 7,
        "handover_mismatches": 0,
        "handovers": 1,
    }
    assert s.mcta == pytest.approx(16 / 17 * (1 - 1 / 7))
    # Give A a new id in camera 2: the handover is a mismatch and MCTA falls to 0.
    relabelled = pred.replace(ids=np.where(pred.cams == 2, 12, pred.ids))
    s2 = evaluate_tracks(relabelled, gt, gt_times=_times(gt))
    assert s2.mcta_parts["handover_mismatches"] == 1 and s2.mcta == 0.0
    # A keeps one of 10, 11, 12 (two boxes each), B keeps 20 (two boxes): IDTP 4.
    assert _scores(s2.network, "IDF1") == pytest.approx({"IDF1": 2 * 4 / 17})
    assert s2.cameras[2].IDF1 == 1.0  # per camera, ids need only be consistent inside it


def test_matches_agree_with_trackers_clear_counts() -> None:
    pred, gt = _hand_case()
    seq = build_sequence(pred.camera(1), gt.camera(1))
    g, p = clear_matches(seq)
    assert len(g) == 6  # = CLEAR TP of trackers.eval above
    assert sorted(
        zip(gt.camera(1).ids[g].tolist(), pred.camera(1).ids[p].tolist(), strict=True)
    ) == ([(1, 10), (1, 10), (1, 11), (1, 11), (2, 20), (2, 20)])


def test_swapping_two_ids_for_half_their_frames() -> None:
    # One camera, three people over 10 frames; the prediction swaps A's and B's ids in frames 6-10.
    gt = _boxes([(1, f, i, p) for f in range(1, 11) for i, p in ((1, "a"), (2, "b"), (3, "c"))])
    assert evaluate_tracks(gt, gt).cameras[1].IDF1 == 1.0
    swapped_ids = gt.ids.copy()
    late = gt.frames >= 6
    swapped_ids[late & (gt.ids == 1)] = 2
    swapped_ids[late & (gt.ids == 2)] = 1
    s = evaluate_tracks(gt.replace(ids=swapped_ids), gt)
    # A and B are each right for 5 of their 10 boxes, C for all 10: IDF1 = 20/30, down by 1/3.
    # Two switches at frame 6, no misses or false boxes.
    assert _scores(s.cameras[1], "IDF1", "MOTA") == pytest.approx(
        {"IDF1": 20 / 30, "MOTA": 1 - 2 / 30}
    )
    assert 1.0 - _scores(s.cameras[1], "IDF1")["IDF1"] == pytest.approx(1 / 3)


def _gt_root(tmp_path: Path) -> Path:
    pred, gt = _hand_case()
    root = create_root(
        tmp_path / "gt_root",
        [Camera(1, "1", 1.0, 0.0, 100, 100), Camera(2, "2", 1.0, 10.0, 100, 100)],
    )
    root.write_boxes(gt, GT)
    write_aicity(tmp_path / "pred.txt", pred)
    return root.path


def test_track_eval_cli_gt_against_itself_is_one_everywhere(tmp_path: Path, capsys) -> None:
    root = _gt_root(tmp_path)
    assert main(["track-eval", str(root), str(root), "--json", str(tmp_path / "s.json")]) == 0
    out = json.loads((tmp_path / "s.json").read_text())
    for scores in [*out["cameras"].values(), out["network"]]:
        for key in ("IDF1", "IDP", "IDR", "MOTA", "HOTA"):
            assert scores[key] == pytest.approx(1.0), key
    assert out["network"]["MCTA"] == 1.0
    assert "network" in capsys.readouterr().out


def test_track_eval_cli_reads_aicity_predictions(tmp_path: Path, capsys) -> None:
    root = _gt_root(tmp_path)
    assert (
        main(
            [
                "track-eval",
                str(tmp_path / "pred.txt"),
                str(root),
                "--json",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    out = json.loads((tmp_path / "s.json").read_text())
    assert out["network"]["IDF1"] == pytest.approx(12 / 17)
    assert out["network"]["MCTA"] == pytest.approx(16 / 17 * 6 / 7)
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["camera", "IDF1", "IDP", "IDR"]
    assert table[-2].split()[1] == f"{100 * 12 / 17:.1f}"  # network row's IDF1, in percent
    # A predicted camera the network lacks: one line, exit 2.
    (tmp_path / "bad.txt").write_text("1 1 1 0 0 20 30 -1 -1\n5 1 1 0 0 20 30 -1 -1\n")
    assert main(["track-eval", str(tmp_path / "bad.txt"), str(root)]) == 2
    assert "bad.txt: row 2: camera_id 5 is not in cameras.csv" in capsys.readouterr().err


def test_track_eval_local_ids_split_identities_across_cameras(tmp_path: Path) -> None:
    root = _gt_root(tmp_path)
    out = tmp_path / "s.json"
    assert main(["track-eval", str(root), str(root), "--local-ids", "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["cameras"]["1"]["IDF1"] == 1.0 and scores["cameras"]["2"]["IDF1"] == 1.0
    # A in camera 2 is now another identity: IDTP = 4 (A in camera 1) + 2 (B) of 8 and 8 boxes.
    assert scores["network"]["IDF1"] == pytest.approx(2 * 6 / 16)
    assert scores["network"]["MCTA_parts"]["handover_mismatches"] == 1


def test_track_eval_warns_when_single_camera_tracks_are_scored_as_global(
    tmp_path: Path, caplog
) -> None:
    # track-sct's output (ids restart per camera) scored without --local-ids: one warning.
    root = _gt_root(tmp_path)
    read = read_root(root)
    read.write_boxes(read.read_boxes(GT), TRACKS_NAME)
    for extra, warned in (([], True), (["--local-ids"], False)):
        caplog.clear()
        with caplog.at_level("WARNING"):
            argv = ["track-eval", str(root), str(root), "--pred-tracks", TRACKS_NAME, *extra]
            assert main(argv) == 0
        messages = [
            r.getMessage() for r in caplog.records if "single-camera output" in r.getMessage()
        ]
        assert len(messages) == int(warned), messages
