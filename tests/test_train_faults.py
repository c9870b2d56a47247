"""``mtmct-reid train`` under faults: Ctrl-C (SIGINT) at two points of training, and resuming with
``--ckpt-path last`` several times in a row. Tiny: the session's network, a ResNet18 trunk, 64×32
images, two or three batches an epoch, no validation."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mtmct_reid.cli import main

FAST = [
    "--model", "pcb", "--backbone", "resnet18", "--weights", "none", "--image-size", "64x32",
    "--batch-size", "16", "--num-workers", "0", "--accelerator", "cpu", "--devices", "1",
    "--limit-val-batches", "0", "--skip-test",
]  # fmt: skip


def _checkpoints(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "lightning_logs").glob("version_*/checkpoints/*"))


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_resume_three_times_keeps_one_last_checkpoint(tiny_network: Path, tmp_path: Path) -> None:
    run = ["train", "--data-dir", str(tiny_network), *FAST, "--limit-train-batches", "2"]
    assert main([*run, "--out", str(tmp_path), "--max-epochs", "1"]) == 0
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    for epochs in (2, 3, 4):
        # Only the root and the new length: the rest comes from the run's saved configuration.
        resume = ["train", "--ckpt-path", "last", "--out", str(tmp_path), "--max-epochs"]
        assert main([*resume, str(epochs)]) == 0
        state = _load(last)
        assert state["epoch"] == epochs - 1 and state["global_step"] == 2 * epochs
        # One last.ckpt and one latest epoch checkpoint, overwritten rather than versioned.
        assert _checkpoints(tmp_path) == [f"epoch{epochs - 1:03d}.ckpt", "last.ckpt"]
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"]


def _start(tiny_network: Path, root: Path, epochs: int) -> subprocess.Popen:
    cli = Path(sys.executable).with_name("mtmct-reid")
    command = [
        str(cli), "train", "--data-dir", str(tiny_network), *FAST, "--limit-train-batches", "3",
        "--max-epochs", str(epochs), "--out", str(root),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Output into files (a full pipe would stall the run); a session of its own, so that the test
    # kills the whole group whatever happens.
    with open(root / "stdout.txt", "w") as out, open(root / "stderr.txt", "w") as err:
        return subprocess.Popen(
            [*command, "--trainer.enable_progress_bar", "false"],
            stdout=out,
            stderr=err,
            env=env,
            cwd=root,
            start_new_session=True,
        )


def _stderr(root: Path) -> str:
    return (root / "stderr.txt").read_text()


def _wait_for(path: Path, process: subprocess.Popen, root: Path, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert process.poll() is None, f"ended before {path.name}: {_stderr(root)}"
        assert time.monotonic() < deadline, f"no {path.name} within {limit} s"
        time.sleep(0.02)


def _interrupt(process: subprocess.Popen, root: Path) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=300)
    return process.returncode, _stderr(root)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.slow
def test_sigint_during_training_exits_130_and_resumes(tiny_network: Path, tmp_path: Path) -> None:
    run = tmp_path / "lightning_logs" / "version_0"
    last = run / "checkpoints" / "last.ckpt"
    process = _start(tiny_network, tmp_path, epochs=40)
    try:
        _wait_for(last, process, tmp_path)
        # Past the checkpoint's own write: a Ctrl-C that lands while Lightning is saving it was
        # seen lost once (the run went on to its last epoch); this test is about training.
        time.sleep(1.0)
        code, err = _interrupt(process, tmp_path)
    finally:
        _kill_group(process)
    assert code == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "mtmct-reid train: interrupted"
    assert "Traceback" not in err
    # Nothing that looks like a finished run, and the checkpoint is whole.
    assert not (run / "test_results.json").exists() and not (run / "features.npz").exists()
    stopped = _load(last)["epoch"]
    assert stopped < 39
    assert main(["train", "--ckpt-path", "last", "--out", str(tmp_path), "--max-epochs",
                 str(stopped + 2)]) == 0  # fmt: skip
    assert _load(last)["epoch"] == stopped + 1
    assert _checkpoints(tmp_path) == [f"epoch{stopped + 1:03d}.ckpt", "last.ckpt"]


@pytest.mark.slow
def test_sigint_before_the_first_checkpoint_leaves_nothing_to_resume(
    tiny_network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "lightning_logs" / "version_0"
    process = _start(tiny_network, tmp_path, epochs=40)
    try:
        # The transit-time model is written as training starts, before the first step.
        _wait_for(run / "transit_time.npz", process, tmp_path)
        code, err = _interrupt(process, tmp_path)
    finally:
        _kill_group(process)
    assert code == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "mtmct-reid train: interrupted"
    assert not list(run.glob("checkpoints/*.ckpt"))
    assert main(["train", "--ckpt-path", "last", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ckpt-path last: nothing to resume" in err[0]
