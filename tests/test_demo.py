"""The demo: a tiny end-to-end run (report.md, report.json, pictures), the output-folder rules, the
choice of rank-list queries, and the command's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mtmct_reid import cli
from mtmct_reid.errors import ReIDError
from mtmct_reid.pipelines.demo import (
    MARKER_NAME,
    STAGES,
    DemoConfig,
    choose_rank_list_queries,
    run_demo,
)
from mtmct_reid.retrieval.evaluate import MODES

TINY = DemoConfig(
    ids=16,
    cameras=3,
    epochs=1,
    image_size=(64, 32),
    batch_size=8,
    device="cpu",
    rank_list_queries=2,
    rank_list_length=3,
    video={"duration": 20.0, "num_ids": 6, "lookalike_fraction": 0.0},
    progress=False,
)


@pytest.mark.slow
def test_tiny_demo_writes_the_report_json_and_pictures(tmp_path):
    out = tmp_path / "demo"
    result = run_demo(out, TINY)

    report = json.loads((out / "report.json").read_text())
    assert set(report["modes"]) == set(MODES)
    for figures in report["modes"].values():
        for key in ("mAP", "R1", "R5", "R10", "mINP"):
            assert 0.0 <= figures[key] <= 1.0
        assert figures["R1"] <= figures["R5"] <= figures["R10"]
        assert figures["queries"] == result.evaluation.modes["visual"].num_queries > 0
    assert set(report["seconds"]) == {*STAGES, "total"}
    assert all(value >= 0 for value in report["seconds"].values())
    assert report["seconds"]["total"] >= sum(report["seconds"][s] for s in STAGES) - 0.5

    markdown = (out / "report.md").read_text()
    assert "| visual+st |" in markdown and "tensorboard --logdir" in markdown
    pictures = [out / p for p in report["pictures"]]
    # transit grid, rank lists, then the tracking stage's timeline and journey picture(s)
    assert len(pictures) >= 1 + TINY.rank_list_queries + 2
    assert {"timeline.png"} <= {p.name for p in pictures}
    tracking = report["tracking"]
    assert {"appearance", "+transit (labelled)"} <= set(tracking["modes"])
    assert tracking["tracklets"] > 0 and tracking["identities"] > 0
    assert "## Multi-camera tracking" in markdown and "| +transit (labelled) |" in markdown
    for picture in pictures:
        assert f"]({picture.relative_to(out)})" in markdown
        with Image.open(picture) as image:
            image.load()
            assert image.size[0] > 200 and image.size[1] > 100
    assert result.checkpoint.is_file() and (out / "features.npz").is_file()
    # The demo trains with the toolkit's own module: its checkpoint rebuilds the model that
    # `mtmct-reid extract` and `search` use, and TensorBoard has validation curves of both modes.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mtmct_reid.models import load_model_from_checkpoint

    model, hparams = load_model_from_checkpoint(result.checkpoint)
    assert hparams["model"] == TINY.model and hparams["image_size"] == TINY.image_size
    events = EventAccumulator(str(result.log_dir))
    events.Reload()
    assert {"train/loss_step", "val/mAP", "val_st/R1"} <= set(events.Tags()["scalars"])

    # A second run reuses the network (the same settings) and writes into its own folder again.
    stamp = (out / "network" / "ground_truth.json").stat().st_mtime_ns
    again = run_demo(out, TINY)
    assert (out / "network" / "ground_truth.json").stat().st_mtime_ns == stamp
    assert again.log_dir != result.log_dir


def test_a_foreign_non_empty_folder_is_refused_unless_forced(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(ReIDError, match="not a previous demo"):
        run_demo(foreign, TINY)
    code = cli.main(["demo", "--out", str(foreign), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert not (foreign / MARKER_NAME).exists()
    assert (foreign / "thesis.tex").read_text() == "keep me"


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    cases = [
        (["--epochs", "0"], "epochs"),
        (["--ids", "2"], "ids"),
        (["--synth", "no_such_knob=1"], "no_such_knob"),
        (["--synth", "lookalike_fraction=3"], "lookalike_fraction"),
        (["--synth", "oops"], "KEY=VALUE"),
        (["--image-size", "big"], "image size"),
        (["--synth", "lookalike_fraction=abc"], "lookalike_fraction"),
        (["--synth", "bin_width=abc"], "bin_width"),
        (["--synth", "visits_range=5"], "visits_range"),
        (["--device", "cuda:99"], "cuda:99"),
        (["--device", "tpu"], "device 'tpu'"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "CUDA is not available"))
    for argv, message in cases:
        code = cli.main(["demo", "--out", str(tmp_path / "d"), *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        # Refused before anything is written: no output folder, no network.
        assert not (tmp_path / "d").exists(), argv


def test_settings_follow_the_one_input_policy():
    # Numbers from a config file may be text; they are kept as numbers.
    config = DemoConfig(ids="60", epochs=np.int64(2), lr=1)
    assert (config.ids, config.epochs, config.lr) == (60, 2, 1.0)
    assert type(config.ids) is int and type(config.lr) is float
    for bad, message in (
        ({"epochs": 0}, "demo epochs must be a positive integer, got 0"),
        ({"ids": True}, "demo ids must be an integer >= 4, got True"),
        ({"seed": "x"}, "demo seed must be an integer >= 0, got 'x'"),
        ({"lr": float("nan")}, r"demo lr must be a finite number in \(0, 10\), got nan"),
    ):
        with pytest.raises(ReIDError, match=message):
            DemoConfig(**bad)


def test_bad_video_settings_fail_before_anything_is_written(tmp_path):
    from dataclasses import replace

    from mtmct_reid.errors import ReIDError

    for video, message in (({"no_such_knob": 1}, "no_such_knob"), ({"fps": 0.0}, "fps")):
        with pytest.raises(ReIDError, match=message):
            run_demo(tmp_path / "d", replace(TINY, video=video))
        assert not (tmp_path / "d").exists()


class _Ranked:
    def __init__(self, first_is_match: bool) -> None:
        self.matches = np.array([first_is_match, False])

    def __len__(self) -> int:
        return 2


def test_rank_list_queries_favour_what_fusion_corrects():
    # visual right?, fused right? per query
    table = [
        (True, True),
        (False, True),
        (False, False),
        (True, False),
        (False, True),
        (True, True),
    ]
    visual = [_Ranked(v) for v, _ in table]
    fused = [_Ranked(f) for _, f in table]
    assert choose_rank_list_queries(visual, fused, 4) == [1, 4, 0, 2]
    assert choose_rank_list_queries(visual, fused, 1) == [1]
    assert choose_rank_list_queries(visual, fused, 10) == [1, 4, 0, 2, 5, 3]
    assert choose_rank_list_queries(visual[:1], fused[:1], 3) == [0]


def test_report_files_from_results_without_training(tmp_path):
    """``report.json`` and ``report.md`` are built from the stages' results alone, by a module that
    loads neither Lightning nor the training package."""
    import dataclasses
    import subprocess
    import sys

    from mtmct_reid.report.demo_report import demo_json_report, demo_markdown_report
    from mtmct_reid.retrieval.evaluate import EvaluationReport
    from mtmct_reid.retrieval.metrics import evaluate_scores

    # Visually each query ranks the other person first; fused, its own.
    visual = evaluate_scores(np.eye(2)[:, ::-1], [1, 2], [1, 1], [1, 2], [2, 2])
    fused = evaluate_scores(np.eye(2), [1, 2], [1, 1], [1, 2], [2, 2])
    evaluation = EvaluationReport("streid", {"visual": visual, "visual+st": fused})
    config = dataclasses.replace(TINY, tracking=False)
    settings = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    seconds = {stage: 1.25 for stage in STAGES if stage != "tracking"} | {"total": 7.504}
    network = {
        "cameras": 3,
        "train_ids": 8,
        "test_ids": 8,
        "train_images": 40,
        "query_images": 2,
        "gallery_images": 30,
        "generated": True,
    }
    out = tmp_path / "demo"
    checkpoint = out / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    rank_list = out / "rank_list_1.png"
    report = demo_json_report(
        settings, evaluation, seconds, network, checkpoint, out, [rank_list], None
    )
    assert report["modes"]["visual"]["R1"] == 0.0 and report["modes"]["visual+st"]["R1"] == 1.0
    assert report["seconds"]["total"] == 7.5 and report["config"]["image_size"] == [64, 32]
    assert report["checkpoint"] == "lightning_logs/version_0/checkpoints/last.ckpt"
    assert report["pictures"] == ["rank_list_1.png"] and report["tracking"] is None
    json.dumps(report)  # JSON values only

    markdown = demo_markdown_report(
        settings, evaluation, seconds, network, checkpoint, checkpoint.parents[1], out, [rank_list]
    )
    assert "pcb on a resnet18 trunk (random initialisation), 64×32 input, 1 epochs, seed 0." in (
        markdown
    )
    assert "Spatial-temporal fusion changes R1 by +100.0 points." in markdown
    assert "| **total** | **7.5** |" in markdown and "| tracking |" not in markdown
    assert "![rank_list_1](rank_list_1.png)" in markdown

    code = (
        "import sys\n"
        "import mtmct_reid.report.demo_report, mtmct_reid.report.plots\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', "
        "'pytorch_lightning') or m.startswith('mtmct_reid.training')))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert loaded.stdout.strip() == "[]"
