"""``mtmct-reid train``: configuration (flags over YAML over defaults), bad input as one line and
exit 2, surviving SIGKILL with ``--ckpt-path last``, and train → extract → evaluate."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mtmct_reid.cli import main
from mtmct_reid.errors import ReIDError
from mtmct_reid.features import resolve_device

#: A short CPU run on the tiny network: ResNet18 trunk, random weights, 64×32 images.
FAST = [
    "--model", "pcb", "--backbone", "resnet18", "--weights", "none", "--image-size", "64x32",
    "--batch-size", "16", "--num-workers", "0", "--accelerator", "cpu", "--devices", "1",
]  # fmt: skip


SEED_RANGE = "seed_everything: expected true, false or an integer from 0 to 4294967295"


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines, "no error message"
    return lines[-1]


# ----------------------------------------------------------------------------------------------
# Configuration


def _init(printed: dict) -> dict:
    return printed["model"]["init_args"]


def test_print_config_layers_flags_over_yaml_over_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "model": "resnet50",
                    "optimisation": {"lr": 0.02, "schedule": "warmup_step", "weight_decay": "5e-4"},
                },
                "data": {"batch_size": 8, "sampler": "identity"},
                "trainer": {"max_epochs": 3, "gradient_clip_val": 5.0},
                "seed_everything": 7,
            }
        )
    )
    args = ["train", "--config", str(config), "--print-config", "--data-dir", str(tmp_path)]
    assert main([*args, "--max-epochs", "5", "--image-size", "32x16", "--devices", "0,1"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    optimisation = _init(printed)["optimisation"]
    assert optimisation["lr"] == 0.02 and optimisation["schedule"] == "warmup_step"
    assert optimisation["weight_decay"] == 5e-4  # YAML 1.1 reads "5e-4" as text
    assert _init(printed)["model"] == "resnet50"
    assert _init(printed)["rerank"]["k1"] == 20  # untouched default
    assert printed["data"]["batch_size"] == 8 and printed["data"]["sampler"] == "identity"
    assert printed["data"]["image_size"] == [32, 16]
    assert printed["trainer"]["max_epochs"] == 5  # the flag beats the file
    assert printed["trainer"]["gradient_clip_val"] == 5.0
    assert printed["trainer"]["devices"] == [0, 1]
    assert printed["seed_everything"] == 7
    # Lightning's own spellings reach the same keys.
    assert main([*args, "--trainer.max_epochs", "4", "--model.optimisation.lr", "0.5"]) == 0
    lightning = yaml.safe_load(capsys.readouterr().out)
    assert lightning["trainer"]["max_epochs"] == 4 and _init(lightning)["optimisation"]["lr"] == 0.5
    # The printed configuration is itself a valid --config giving the same result.
    again = tmp_path / "printed.yaml"
    again.write_text(yaml.safe_dump(printed, sort_keys=False))
    assert main(["train", "--config", str(again), "--print_config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == printed


@pytest.mark.parametrize(
    ("model", "size"), [("pcb", [384, 192]), ("resnet50", [256, 128]), ("densenet121", [256, 128])]
)
def test_default_input_size_is_the_models_own(
    model: str, size: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--print-config", "--data-dir", str(tmp_path), "--model", model]
    assert main(args) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["image_size"] == size
    config = tmp_path / "size.yaml"
    config.write_text(yaml.safe_dump({"data": {"image_size": "96x48"}}))
    assert main([*args, "--config", str(config)]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["image_size"] == [96, 48]


def test_class_path_and_init_args_are_honoured(
    tiny_network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cli.yaml"
    config.write_text(
        "model:\n  class_path: mtmct_reid.training.module.ReIDLightningModule\n"
        "  init_args:\n    num_parts: 3\n    backbone: resnet18\n    weights: none\n"
    )
    assert main(["train", "--config", str(config), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].endswith("ReIDLightningModule")
    assert _init(printed)["num_parts"] == 3
    # The model built from it has three parts and the data's classes and input size.
    from mtmct_reid.training.cli import ReIDCLI

    cli = ReIDCLI(["--config", str(config), "--data.data_dir", str(tiny_network), *FAST[6:]])
    assert cli.model.model.num_parts == 3
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes
    assert cli.model.hparams.image_size == [64, 32]
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: mtmct_reid.NoSuchModule\n")
    assert main(["train", "--config", str(bad), "--print-config"]) == 2
    assert "NoSuchModule" in _error_line(capsys)


# ----------------------------------------------------------------------------------------------
# Bad input: one line, exit 2


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--image-size", "64by32"], "image size '64by32': expected HEIGHTxWIDTH"),
        (["--model", "vgg16"], "unknown model 'vgg16'; known: densenet121, pcb, resnet50"),
        (["--backbone", "alexnet"], "unknown backbone 'alexnet'; known:"),
        (["--devices", "two"], "--devices 'two'"),
        (["--devices", "99"], "--devices 99: this machine has"),
        (["--limit-train-batches", "some"], "limit_train_batches: expected int or float, got 'some'"),
        (["--sampler", "identity", "--batch-size", "64", "--num-instances", "2"],
         "identity sampling needs at least 32 identities"),
        (["--accelerator", "tpu"], "trainer options:"),
        (["--batch-size", "0"], "batch_size must be"),
        (["--trainer.max_epochs", "abc"], "trainer.max_epochs: expected int, got 'abc'"),
        (["--seed", "abc"], "seed_everything: expected bool or int, got 'abc'"),
        (["--seed", "-1"], f"{SEED_RANGE}, got -1"),
        (["--seed", "99999999999"], f"{SEED_RANGE}, got 99999999999"),
        (["--seed_everything", "-5"], f"{SEED_RANGE}, got -5"),
        # Raised while the module is built, inside jsonargparse's "ReIDLightningModule | None".
        (["--lr", "-1"], "error: lr must be a finite number > 0, got -1.0"),
        # jsonargparse lists a path alternative before the Union's errors
        (["--trainer.logger", "x"], "trainer.logger: expected one of dot import path string,"),
        (["--lr", "1e400"], "error: lr must be a finite number > 0, got inf"),
        (["--model", "bogus"], "error: unknown model 'bogus'; known: densenet121, pcb, resnet50"),
        (["--weights", "/nonexistent/w.pth"],
         "error: weights '/nonexistent/w.pth': expected 'imagenet', 'none' or the path"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_one_line(
    tiny_network: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    expected: str,
) -> None:
    args = ["train", "--data-dir", str(tiny_network), *FAST, "--out", str(tmp_path), *extra]
    assert main(args) == 2
    line = _error_line(capsys)
    assert line.startswith("mtmct-reid train: error: ")
    assert expected in line
    assert "Union" not in line and "Namespace(" not in line and len(line) < 300
    assert not (tmp_path / "lightning_logs").exists()


def test_weights_precision_and_device_errors_are_one_line(
    tiny_network: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["train", "--data-dir", str(tiny_network), *FAST, "--out", str(tmp_path)]

    def line_of(*extra: str) -> str:
        assert main([*args, *extra]) == 2
        line = _error_line(capsys)
        assert line.startswith("mtmct-reid train: error: ") and "Union" not in line
        return line

    features = tmp_path / "features.npz"
    np.savez(features, features=np.zeros((2, 4), np.float32))
    assert f"{features}: not a state-dict file" in line_of("--weights", str(features))

    # Offline without the file in torch's cache: the hint says where to put it.
    def offline(*_: object, **__: object) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    line = line_of("--weights", "imagenet")
    assert "ImageNet weights for resnet18 are not cached" in line
    assert "put https://download.pytorch.org/models/resnet18-" in line
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in line

    line = line_of("--precision", "13")
    assert line.startswith("mtmct-reid train: error: trainer.precision: expected one of ")
    assert all(name in line for name in ("32-true", "bf16-mixed", "16-mixed", "bf16"))
    assert line.endswith(", got '13'")

    # The same words as extract / search / demo on a machine without CUDA.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    expected = "device 'cuda': CUDA is not available here; use --device cpu or auto"
    assert line_of("--device", "cuda").endswith(expected)
    with pytest.raises(ReIDError, match=re.escape(expected)):
        resolve_device("cuda")
    # A list of one GPU id is one device, not zero.
    assert line_of("--accelerator", "gpu", "--devices", "[0]").endswith(
        "--devices [0]: this machine has 0 visible GPUs"
    )
    assert not (tmp_path / "lightning_logs").exists()


def test_bad_config_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("model:\n  learning_rate: 0.1\n")
    assert main(["train", "--config", str(unknown), "--print-config"]) == 2
    assert "model: unknown option 'learning_rate'" in _error_line(capsys)

    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [lr: 0.1\n")
    assert main(["train", "--config", str(broken), "--print-config"]) == 2
    assert f"--config {broken}: not valid YAML at line" in _error_line(capsys)

    section = tmp_path / "section.yaml"
    section.write_text("optimizer:\n  lr: 0.1\n")
    assert main(["train", "--config", str(section), "--print-config"]) == 2
    assert "unknown option 'optimizer.lr'" in _error_line(capsys)

    trainer = tmp_path / "trainer.yaml"
    trainer.write_text("trainer:\n  max_epoch: 3\n")
    assert main(["train", "--config", str(trainer), "--print-config"]) == 2
    assert "unknown option 'trainer.max_epoch'" in _error_line(capsys)

    for text, expected in (
        ("seed_everything: abc\n", "seed_everything: expected bool or int, got 'abc'"),
        ("trainer: {max_epochs: abc}\n", "trainer.max_epochs: expected int, got 'abc'"),
    ):
        values = tmp_path / "values.yaml"
        values.write_text(text)
        before = values.read_bytes()
        assert main(["train", "--config", str(values), "--print-config"]) == 2
        assert expected in _error_line(capsys)
        assert values.read_bytes() == before
    assert main(["train", "--config", str(tmp_path / "gone.yaml")]) == 2
    assert "gone.yaml: file not found" in _error_line(capsys)


def test_bad_option_values_exit_2(
    tiny_network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "values.yaml"
    config.write_text("model:\n  optimisation:\n    lr: fast\n")
    args = ["train", "--data-dir", str(tiny_network), *FAST, "--out", str(tmp_path)]
    assert main([*args, "--config", str(config)]) == 2
    assert "model.optimisation.lr: expected float, got 'fast'" in _error_line(capsys)
    config.write_text("model:\n  optimisation:\n    lr: -1\n")
    assert main([*args, "--config", str(config)]) == 2
    assert "lr must be a finite number > 0, got -1" in _error_line(capsys)
    config.write_text("data:\n  random_erasing: often\n")
    assert main([*args, "--config", str(config)]) == 2
    assert "data.random_erasing: expected float, got 'often'" in _error_line(capsys)
    assert not (tmp_path / "lightning_logs").exists()


def test_nothing_to_resume_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--data-dir", str(tmp_path), "--ckpt-path", "last", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "--ckpt-path last: nothing to resume" in _error_line(capsys)
    assert main(["train", "--ckpt-path", str(tmp_path / "gone.ckpt")]) == 2
    assert "gone.ckpt" in _error_line(capsys)


def test_empty_query_split_exits_2(
    tiny_network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A manifest without a split column is all training images.
    images = sorted((tiny_network / "bounding_box_train").glob("*.jpg"))
    lines = ["path,pid,camera,time"]
    for path in images:
        pid, cam = path.name.split("_")[:2]
        lines.append(f"{path},{int(pid)},{cam[1]},{len(lines)}")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    assert main(["train", "--data-dir", str(manifest), *FAST, "--out", str(tmp_path)]) == 2
    assert "the query split is empty" in _error_line(capsys)


def _network_copy(tiny_network: Path, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "network"
    shutil.copytree(tiny_network, root)
    victim = sorted((root / "bounding_box_train").glob("*.jpg"))[3]
    victim.write_bytes(b"not a jpeg at all")
    return root, victim


def test_corrupt_image_strict_exits_2_naming_it(
    tiny_network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, victim = _network_copy(tiny_network, tmp_path)
    args = ["train", "--data-dir", str(root), *FAST, "--out", str(tmp_path / "runs")]
    args += ["--max-epochs", "1", "--limit-val-batches", "0", "--skip-test", "--strict-images"]
    assert main(args) == 2
    line = _error_line(capsys)
    assert str(victim) in line and "cannot read image" in line


@pytest.mark.slow
def test_corrupt_image_is_skipped_with_a_warning_count(
    tiny_network: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root, victim = _network_copy(tiny_network, tmp_path)
    args = ["train", "--data-dir", str(root), *FAST, "--out", str(tmp_path / "runs")]
    args += ["--max-epochs", "1", "--limit-val-batches", "0", "--skip-test", "--weights", "none"]
    assert main(args) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(victim) in m and "skipping unreadable image" in m for m in warnings)
    assert any("1 unreadable training image(s) skipped" in m for m in warnings)
    last = tmp_path / "runs" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert last.is_file()


# ----------------------------------------------------------------------------------------------
# Survive SIGKILL, resume with --ckpt-path last


@pytest.mark.slow
def test_sigkill_then_resume_with_ckpt_path_last(tiny_network: Path, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("mtmct-reid")
    epochs, batches = 6, 3
    command = [
        str(cli), "train", "--data-dir", str(tiny_network), *FAST, "--max-epochs", str(epochs),
        "--limit-train-batches", str(batches), "--skip-test", "--out", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 240
        while not last.exists():
            assert process.poll() is None, "training ended before writing last.ckpt"
            assert time.monotonic() < deadline, "no last.ckpt within the time limit"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    killed = torch.load(last, map_location="cpu", weights_only=True)
    assert killed["global_step"] < epochs * batches, "the run finished before it was killed"

    # Everything else (data, model, epochs) comes from the configuration saved with the run.
    assert main(["train", "--ckpt-path", "last", "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "lightning_logs" / "version_1").exists()
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == epochs * batches
    assert final["epoch"] == epochs - 1
    # The scheduler went on counting from the checkpoint's epoch, not from zero.
    assert final["lr_schedulers"][0]["last_epoch"] == epochs
    assert final["hyper_parameters"]["backbone"] == "resnet18"
    assert final["hyper_parameters"]["weights"] == "none"
    events = list((tmp_path / "lightning_logs" / "version_0").glob("events.out.tfevents.*"))
    assert len(events) >= 2  # the killed run's and the resumed run's, in the same folder


# ----------------------------------------------------------------------------------------------
# Train → extract → evaluate


@pytest.mark.slow
def test_train_outputs_feed_extract_and_evaluate(
    tiny_network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mtmct_reid.featureset import FeatureSet
    from mtmct_reid.retrieval.transit import TransitTimeModel

    distribution = tmp_path / "st" / "distribution.npz"
    args = ["train", "--data-dir", str(tiny_network), *FAST, "--out", str(tmp_path / "runs")]
    args += ["--max-epochs", "1", "--limit-train-batches", "4"]
    args += ["--save-distribution", str(distribution)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "visual+st+rerank" in out
    printed = dict(line.split(": ", 1) for line in out.splitlines() if "checkpoint: " in line)
    assert Path(printed["last checkpoint"]).name == "last.ckpt"
    assert Path(printed["last checkpoint"]).is_file()
    assert Path(printed["best checkpoint"].split(" (")[0]).is_file()

    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    hparams = yaml.safe_load((run / "hparams.yaml").read_text())
    assert hparams["model"] == "pcb" and hparams["image_size"] == [64, 32]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["data_dir"] == str(tiny_network.resolve())
    assert list(run.glob("events.out.tfevents.*"))
    saved = TransitTimeModel.load(run / "transit_time.npz")
    np.testing.assert_array_equal(
        saved.probabilities, TransitTimeModel.load(distribution).probabilities
    )
    results = json.loads((run / "test_results.json").read_text())
    assert set(results["modes"]) == {"visual", "visual+st", "visual+rerank", "visual+st+rerank"}
    assert FeatureSet.load(run / "features.npz").dim == 6 * 512

    best = sorted((run / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and (run / "checkpoints" / "last.ckpt").is_file()

    # A checkpoint moved away from its run still knows how it was trained (its hyper-parameters).
    moved = tmp_path / "elsewhere" / "model.ckpt"
    moved.parent.mkdir()
    shutil.copy(best[0], moved)
    assert main(["train", "--ckpt-path", str(moved), "--print-config"]) == 0
    resumed = yaml.safe_load(capsys.readouterr().out)
    assert _init(resumed)["backbone"] == "resnet18" and _init(resumed)["weights"] == "none"
    assert resumed["data"]["image_size"] == [64, 32] and resumed["data"]["batch_size"] == 16
    assert resumed["data"]["data_dir"] == str(tiny_network.resolve())
    assert resumed["ckpt_path"] == str(moved)
    features = tmp_path / "features.npz"
    assert main(["extract", str(best[0]), "--data-dir", str(tiny_network), "--out",
                 str(features), "--device", "cpu"]) == 0  # fmt: skip
    report = tmp_path / "report.json"
    evaluate = ["evaluate", str(features), "--st-model", str(run / "transit_time.npz")]
    assert main([*evaluate, "--json", str(report), "--no-progress"]) == 0
    figures = json.loads(report.read_text())["modes"]
    # The test step evaluated the best checkpoint too: the same figures.
    for mode in ("visual", "visual+st"):
        assert figures[mode]["mAP"] == pytest.approx(results["modes"][mode]["mAP"], abs=1e-5)
