"""Extraction with several processes (Lightning DDP over gloo): the same file as one process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtmct_reid import cli
from mtmct_reid._runtime import usable_cores
from mtmct_reid.distributed import RankBatches
from tests._deploy import checkpoint_file, tiny_model

ROOT = Path(__file__).resolve().parents[1]


def test_rank_batches_cover_every_index_once_in_one_process_batches():
    for length, batch, world in ((0, 3, 2), (7, 2, 2), (10, 3, 3), (5, 8, 4)):
        shards = [list(RankBatches(length, batch, r, world)) for r in range(world)]
        batches = sorted(b for shard in shards for b in shard)
        assert batches == [list(range(s, min(s + batch, length))) for s in range(0, length, batch)]
        assert [len(RankBatches(length, batch, r, world)) for r in range(world)] == list(
            map(len, shards)
        )


@pytest.mark.slow
@pytest.mark.skipif(usable_cores() < 2, reason="two CPU processes need two usable cores")
def test_two_processes_write_the_file_one_process_writes(small_market, tmp_path):
    ckpt = checkpoint_file(tmp_path / "pcb.ckpt", tiny_model("pcb", "resnet18"))
    common = ["--data-dir", str(small_market), "--batch-size", "3"]
    assert cli.main(["extract", str(ckpt), "--out", str(tmp_path / "one.npz"), *common]) == 0
    argv = [*common, "--out", str(tmp_path / "two.npz"), "--devices", "2", "--accelerator", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Its own session, so that the processes Lightning starts are killed with it whatever happens.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtmct_reid", "extract", str(ckpt), *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    assert "wrote" in output and "5 query + 11 gallery features" in output
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert set(two.files) == set(one.files) | {"meta_processes"}
    for key in one.files:
        if key != "meta_checkpoint":
            assert np.array_equal(one[key], two[key]), key
    assert int(two["meta_processes"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.npz", "pcb.ckpt", "two.npz"]


def test_device_counts_beyond_the_machine_are_refused_before_starting(tmp_path, capsys):
    base = ["extract", str(tmp_path / "none.ckpt"), "--data-dir", str(tmp_path), "--out", "f.npz"]
    cases = [
        (["--devices", str(usable_cores() + 1), "--accelerator", "cpu"], "CPU core(s)"),
        (["--devices", "2", "--num-nodes", "0", "--accelerator", "cpu"], "--num-nodes must be"),
        (["--devices", "1000", "--accelerator", "gpu"], "visible GPU(s)"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert cli.main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
