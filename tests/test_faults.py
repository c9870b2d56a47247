"""Faults: the real command killed (SIGKILL) or interrupted (SIGINT, as Ctrl-C sends it to the whole
process group) at several points of ``synth``, ``evaluate`` and ``extract``.

Afterwards: an interrupted command says ``interrupted`` and exits 130; no output looks valid without
being complete; an earlier output is byte-identical; no process of the group is left; the next run
succeeds and removes what a killed writer left behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mtmct_reid.featureset import FeatureSet, FeatureSide

REPO = Path(__file__).resolve().parents[1]


class Command:
    """``python -m mtmct_reid ARGS`` in its own process group, its stderr collected by a thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mtmct_reid", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own group: signals reach its workers, and cleanup too
        )
        self.stderr = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        while chunk := self.proc.stderr.read1(4096):
            self.stderr += chunk

    def wait_for(self, marker: bytes, timeout: float = 60.0) -> bool:
        """Wait until stderr shows ``marker``; False if the command ended first."""
        deadline = time.monotonic() + timeout
        while marker not in self.stderr:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_for_pattern(self, pattern: bytes, timeout: float = 60.0) -> bool:
        """Wait until stderr matches the regular expression ``pattern``."""
        deadline = time.monotonic() + timeout
        while re.search(pattern, self.stderr) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)

    def finish(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def group_gone(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def command(*args: str):
    cmd = Command(*args)
    try:
        yield cmd
    finally:
        cmd.kill()  # whatever the test asserted, nothing of the group survives it


def _interrupted_as_promised(cmd: Command, code: int) -> None:
    lines = cmd.stderr.decode(errors="replace").replace("\r", "\n").strip().splitlines()
    assert code == 130, cmd.stderr[-2000:]
    assert lines[-1].endswith(": interrupted") and b"Traceback" not in cmd.stderr


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temporaries(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


# --- evaluate ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_features(tmp_path_factory) -> Path:
    """Large enough that evaluation takes a moment (2000 queries × 30000 gallery, 64-d)."""
    rng = np.random.default_rng(0)

    def side(n: int) -> FeatureSide:
        return FeatureSide(
            rng.normal(size=(n, 64)).astype(np.float32),
            rng.integers(1, 300, n),
            rng.integers(1, 7, n),
            rng.uniform(0, 1e5, n),
        )

    path = tmp_path_factory.mktemp("faults") / "F.npz"
    FeatureSet(side(2000), side(30000)).save(path)
    return path


# (signal, what to wait for before sending it): while evaluating, and at the end. (Not during
# Python's own start-up: a signal there stops the interpreter before any of the toolkit runs.)
EVALUATE_POINTS = [
    (signal.SIGINT, b"evaluating:"),
    (signal.SIGKILL, b"evaluating:"),
    (signal.SIGKILL, b"100%"),
    (signal.SIGINT, b"100%"),
]


@pytest.mark.parametrize(("signum", "marker"), EVALUATE_POINTS)
def test_evaluate_killed_or_interrupted_keeps_the_old_json(big_features, tmp_path, signum, marker):
    out = tmp_path / "results.json"
    out.write_text('{"old": "results"}\n')
    old = _digest(out)
    features = _digest(big_features)
    with command("evaluate", str(big_features), "--json", str(out)) as cmd:
        cmd.wait_for(marker)
        cmd.signal(signum)
        code = cmd.finish()
        assert cmd.group_gone()
    if code == 0:  # it had finished (only possible at the last point): then the file is whole
        assert marker == b"100%"
        assert "modes" in json.loads(out.read_text())
    else:
        if _digest(out) != old:  # killed after the rename: then the new file is whole
            assert marker == b"100%" and "modes" in json.loads(out.read_text())
        if signum == signal.SIGINT:
            _interrupted_as_promised(cmd, code)
            assert _temporaries(tmp_path) == []
        else:
            assert code == -signal.SIGKILL
    assert _digest(big_features) == features
    if signum != signal.SIGKILL:
        return
    # The next run succeeds and removes the temporary the killed one left.
    with command("evaluate", str(big_features), "--no-progress", "--json", str(out)) as again:
        assert again.finish() == 0
    assert "modes" in json.loads(out.read_text()) and _temporaries(tmp_path) == []


# --- synth ---------------------------------------------------------------------------------------


def _images_under(folder: Path) -> int:
    return sum(len([f for f in files if f.endswith(".jpg")]) for _, _, files in os.walk(folder))


# (signal, images written before it is sent): as the first image appears, and later.
SYNTH_POINTS = [
    (signal.SIGINT, 1),
    (signal.SIGINT, 20),
    (signal.SIGKILL, 20),
]


@pytest.mark.parametrize(("signum", "images"), SYNTH_POINTS)
def test_synth_killed_or_interrupted_leaves_no_network_that_looks_whole(tmp_path, signum, images):
    out = tmp_path / "net"
    args = ("synth", str(out), "--ids", "60", "--cameras", "4", "--image-size", "64x32")
    with command(*args) as cmd:
        deadline = time.monotonic() + 120
        while _images_under(tmp_path) < images and cmd.proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        cmd.signal(signum)
        code = cmd.finish()
        assert cmd.group_gone()
    # No half network under the name asked for: either nothing, or a whole one.
    assert not out.exists() or (out / "ground_truth.json").is_file()
    if code == 0:  # a fast machine may finish first: then the network is whole
        assert (out / "ground_truth.json").is_file()
    elif signum == signal.SIGINT:
        _interrupted_as_promised(cmd, code)
        assert [p for p in os.listdir(tmp_path) if p != "net"] == []
    else:
        assert code == -signal.SIGKILL


# --- extract -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint of a small model, written as training writes one."""
    import torch

    from mtmct_reid.models.registry import build_model

    net = build_model("resnet50", 4, backbone="resnet18", weights="none")
    hparams = {
        "model": net.model_name,
        "backbone": net.backbone_name,
        "num_classes": 4,
        "image_size": [64, 32],
        "last_stride": net.config["last_stride"],
        "num_parts": net.num_parts,
        "dropout": net.config["dropout"],
    }
    path = tmp_path_factory.mktemp("faults") / "CK.ckpt"
    state = {"model." + k: v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    return path


# While extracting: the tqdm bar on stderr counts at least one image.
EXTRACT_POINTS = [
    (signal.SIGINT, rb"\| *[1-9]\d*/\d+ \["),
    (signal.SIGKILL, rb"\| *[1-9]\d*/\d+ \["),
]


@pytest.mark.parametrize(("signum", "marker"), EXTRACT_POINTS)
def test_extract_killed_or_interrupted_keeps_the_old_features(
    tiny_network, checkpoint, tmp_path, signum, marker
):
    out = tmp_path / "features.npz"
    rng = np.random.default_rng(1)
    side = FeatureSide(np.ones((2, 3)), np.array([1, 2]), np.array([1, 2]), rng.uniform(size=2))
    FeatureSet(side, side).save(out)
    old = _digest(out)
    ckpt = _digest(checkpoint)
    args = ("extract", str(checkpoint), "--data-dir", str(tiny_network), "--out", str(out))
    # One image per batch, so that the signal lands mid-extraction.
    with command(*args, "--num-workers", "1", "--batch-size", "1") as cmd:
        assert cmd.wait_for_pattern(marker, timeout=120), cmd.stderr[-2000:]
        cmd.signal(signum)
        code = cmd.finish()
        assert cmd.group_gone()  # its data-loading worker too
    assert code != 0, cmd.stderr[-2000:]  # the point is mid-extraction
    assert _digest(out) == old
    if signum == signal.SIGINT:
        _interrupted_as_promised(cmd, code)
        assert _temporaries(tmp_path) == []
    assert _digest(checkpoint) == ckpt
