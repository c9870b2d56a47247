"""The one output-path policy, verb by verb: special files are written into, links write their
target, an output that is an input or a file of another kind is refused, impossible places are one
line. Each refusal: exit 2, one line on stderr, the inputs byte-identical, no stray file left."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from mtmct_reid import _io
from mtmct_reid._io import atomic_path, check_output, write_json
from mtmct_reid.cli import main
from mtmct_reid.data.readers import read_dataset, write_manifest
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSet, FeatureSide


def _side(rng: np.random.Generator, n: int) -> FeatureSide:
    return FeatureSide(
        features=rng.normal(size=(n, 8)).astype(np.float32),
        pids=rng.integers(1, 5, n),
        cams=rng.integers(1, 4, n),
        times=rng.uniform(0, 1000, n),
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_network) -> dict[str, Path]:
    """One input of each kind the verbs read: a features file, a checkpoint, a manifest, a
    transit-time model."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    FeatureSet(_side(rng, 6), _side(rng, 20), {"model": "x"}).save(root / "F.npz")
    torch.save({"state_dict": {"w": torch.zeros(3)}}, root / "CK.ckpt")
    write_manifest(read_dataset(tiny_network), root / "m.csv")
    assert main(["st", "fit", str(root / "m.csv"), "--out", str(root / "st.npz")]) == 0
    return {
        "F": root / "F.npz",
        "CK": root / "CK.ckpt",
        "m": root / "m.csv",
        "st": root / "st.npz",
        "data": tiny_network,
    }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(capsys, argv: list[str], inputs: list[Path], folder: Path | None = None) -> str:
    """Run a command that must be refused; check the contract; return the error line."""
    before = {p: _digest(p) for p in inputs}
    listing = sorted(os.listdir(folder)) if folder is not None else None
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"mtmct-reid {argv[0]}: error: ")
    assert {p: _digest(p) for p in inputs} == before
    if folder is not None:
        assert sorted(os.listdir(folder)) == listing  # no temporary left behind
    return lines[0]


# --- (c) an output that is one of the command's inputs ------------------------------------------

SAME_AS_INPUT = {
    "evaluate F --json F": (["evaluate", "{F}", "--json", "{F}"], "F"),
    "extract CK --out CK": (["extract", "{CK}", "--data-dir", "{data}", "--out", "{CK}"], "CK"),
    "st fit m.csv --out m.csv": (["st", "fit", "{m}", "--out", "{m}"], "m"),
    "st plot st --out st": (["st", "plot", "{st}", "--out", "{st}"], "st"),
    "dataset export m.csv --out m.csv": (["dataset", "export", "{m}", "--out", "{m}"], "m"),
    "search --cache CK": (
        ["search", "--features", "{F}", "--query-index", "0", "--cache", "{F}"],
        "F",
    ),
    "export CK --out CK": (["export", "{CK}", "--out", "{CK}"], "CK"),
    "index build F --out F": (["index", "build", "{F}", "--out", "{F}"], "F"),
    "track-eval m m --json m": (["track-eval", "{m}", "{m}", "--json", "{m}"], "m"),
}


def _argv(template: list[str], files: dict[str, Path], **extra: Path) -> list[str]:
    names = {k: str(v) for k, v in {**files, **extra}.items()}
    return [part.format(**names) for part in template]


@pytest.mark.parametrize("case", sorted(SAME_AS_INPUT))
@pytest.mark.parametrize("through_link", [False, True])
def test_an_output_that_is_an_input_is_refused(files, tmp_path, capsys, case, through_link):
    template, key = SAME_AS_INPUT[case]
    argv = _argv(template, files)
    if through_link:  # the same file under another name is still the input
        link = tmp_path / f"link{files[key].suffix}"
        link.symlink_to(files[key])
        last = len(argv) - 1 - argv[::-1].index(str(files[key]))
        argv[last] = str(link)
    line = _refused(capsys, argv, [files[key]], folder=files[key].parent)
    assert "is the command's input" in line and "(the same file)" in line


# --- (d) an existing file of another kind needs --force -----------------------------------------

OTHER_KIND = {
    "search --cache over a checkpoint": (
        ["search", "--features", "{F}", "--query-index", "0", "--cache", "{out}"],
        "CK",
        "a PyTorch checkpoint",
    ),
    "evaluate --json over a checkpoint": (
        ["evaluate", "{F}", "--json", "{out}"],
        "CK",
        "checkpoint",
    ),
    "extract --out over a manifest": (
        ["extract", "{CK}", "--data-dir", "{data}", "--out", "{out}"],
        "m",
        "is text, not a features file (.npz)",
    ),
    # Every .npz result is its own kind: one never silently replaces another.
    "extract --out over a transit-time model": (
        ["extract", "{CK}", "--data-dir", "{data}", "--out", "{out}"],
        "st",
        "is a transit-time model, not a features file (.npz)",
    ),
    "st fit --out over a checkpoint": (["st", "fit", "{m}", "--out", "{out}"], "CK", "checkpoint"),
    "st fit --out over a features file": (
        ["st", "fit", "{m}", "--out", "{out}"],
        "F",
        "is a features file, not a transit-time model (.npz)",
    ),
    "search --cache over a transit-time model": (
        ["search", "--features", "{F}", "--query-index", "0", "--cache", "{out}"],
        "st",
        "is a transit-time model, not a gallery cache (.npz)",
    ),
    "search --cache over a features file": (
        ["search", "--features", "{F}", "--query-index", "0", "--cache", "{out}"],
        "F",
        "is a features file, not a gallery cache (.npz)",
    ),
    "index build --out over a features file": (
        ["index", "build", "{F}", "--out", "{out}"],
        "F",
        "is a features file, not a FAISS index",
    ),
    "index build --out over a transit-time model": (
        ["index", "build", "{F}", "--out", "{out}"],
        "st",
        "is a transit-time model, not a FAISS index",
    ),
    "export --out over a transit-time model": (
        ["export", "{CK}", "--out", "{out}", "--no-check"],
        "st",
        "is a transit-time model, not an ONNX model",
    ),
    "st plot --out over a features file": (
        ["st", "plot", "{st}", "--out", "{out}"],
        "F",
        "a features file, not an image",
    ),
    "dataset export --out over a features file": (
        ["dataset", "export", "{m}", "--out", "{out}"],
        "F",
        "not a CSV text file",
    ),
}


@pytest.mark.parametrize("case", sorted(OTHER_KIND))
def test_an_existing_file_of_another_kind_is_not_overwritten(files, tmp_path, capsys, case):
    template, victim_key, message = OTHER_KIND[case]
    victim = tmp_path / f"victim{files[victim_key].suffix}"
    victim.write_bytes(files[victim_key].read_bytes())
    argv = _argv(template, files, out=victim)
    line = _refused(capsys, argv, [victim, files["F"], files["m"]], folder=tmp_path)
    assert message in line and "pass --force to overwrite it" in line


def test_force_overwrites_a_file_of_another_kind(files, tmp_path, capsys):
    victim = tmp_path / "victim.json"
    victim.write_bytes(files["CK"].read_bytes())
    assert main(["evaluate", str(files["F"]), "--json", str(victim), "--no-progress"]) == 2
    assert main(["evaluate", str(files["F"]), "--json", str(victim), "--force"]) == 0
    assert "mAP" in json.loads(victim.read_text())["modes"]["visual"]
    # A file of the right kind is replaced without --force.
    assert main(["evaluate", str(files["F"]), "--json", str(victim), "--no-progress"]) == 0
    capsys.readouterr()


# --- (e) impossible places: one line, exit 2, nothing left --------------------------------------

PLACES = {
    "a folder": lambda tmp: tmp / "folder",
    "a path under a file": lambda tmp: tmp / "plain" / "out.x",
    "under /proc": lambda tmp: Path("/proc/self/out.x"),
    "a new file under /dev": lambda tmp: Path("/dev/mtmct-reid-test.x"),
}

VERBS = {
    "evaluate --json": (["evaluate", "{F}", "--json", "{out}"], ".json"),
    "extract --out": (["extract", "{CK}", "--data-dir", "{data}", "--out", "{out}"], ".npz"),
    "st fit --out": (["st", "fit", "{m}", "--out", "{out}"], ".npz"),
    "st plot --out": (["st", "plot", "{st}", "--out", "{out}"], ".png"),
    "dataset export --out": (["dataset", "export", "{m}", "--out", "{out}"], ".csv"),
    "search --cache": (
        ["search", "--features", "{F}", "--query-index", "0", "--cache", "{out}"],
        ".npz",
    ),
    "search --out": (["search", "--features", "{F}", "--query-index", "0", "--out", "{out}"], ""),
}


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("verb", sorted(VERBS))
def test_impossible_output_places_are_one_line(files, tmp_path, capsys, verb, place):
    (tmp_path / "folder").mkdir()
    (tmp_path / "plain").write_text("a file\n")
    template, suffix = VERBS[verb]
    out = PLACES[place](tmp_path)
    if place != "a folder":
        out = out.with_suffix(suffix or ".png")
    line = _refused(capsys, _argv(template, files, out=out), [files["F"]], folder=tmp_path)
    assert str(out) in line
    assert not os.path.lexists("/dev/mtmct-reid-test" + (suffix or ".png"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["synth", "{plain}"], "is a file, expected a folder"),
        (["synth", "{plain}/sub"], "is a file, not a folder"),
        (["synth", "/proc/self/net"], "under /proc"),
        (["demo", "--out", "{plain}"], "is a file, expected a folder"),
        (["demo", "--out", "/sys/kernel/x"], "under /sys"),
        (["dataset", "crops", "{plain}", "--out", "{plain}"], "is a file, expected a folder"),
        (["track", "{plain}", "--checkpoint", "{plain}", "--out", "{plain}"], "expected a folder"),
    ],
)
def test_folder_outputs_refuse_files_and_kernel_trees(tmp_path, capsys, argv, message):
    plain = tmp_path / "plain"
    plain.write_text("keep me\n")
    argv = [part.format(plain=plain) for part in argv]
    line = _refused(capsys, argv, [plain], folder=tmp_path)
    assert message in line


# --- (a) pipes and devices are written into; (b) a link writes its target ------------------------


def _read_fifo(path: Path, sink: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as fh:
            sink.append(fh.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("verb", "template", "check"),
    [
        ("evaluate", ["evaluate", "{F}", "--no-progress", "--json", "{out}"], "json"),
        ("st fit", ["st", "fit", "{m}", "--out", "{out}"], "npz"),
        ("dataset export", ["dataset", "export", "{m}", "--out", "{out}"], "csv"),
    ],
)
def test_a_fifo_output_is_written_into_and_stays_a_fifo(
    files, tmp_path, capsys, verb, template, check
):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    sink: list[bytes] = []
    reader = _read_fifo(fifo, sink)
    try:
        assert main(_argv(template, files, out=fifo)) == 0
    finally:
        reader.join(timeout=30)
        if reader.is_alive():  # unblock the reader if the command never opened the fifo
            with open(fifo, "wb"):
                pass
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["f"]
    data = sink[0]
    if check == "json":
        assert "mAP" in json.loads(data)["modes"]["visual"]
    elif check == "npz":
        assert data[:4] == b"PK\x03\x04" and len(data) > 1000
    else:
        assert data.decode().startswith("path,pid,camera")
    capsys.readouterr()


def test_dev_null_and_dev_full_are_devices_not_files(files, capsys):
    before = os.stat("/dev/null")
    assert main(["evaluate", str(files["F"]), "--no-progress", "--json", "/dev/null"]) == 0
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino
    # A full device: one line, and still the device.
    argv = ["evaluate", str(files["F"]), "--no-progress", "--json", "/dev/full"]
    line = _refused(capsys, argv, [files["F"]])
    assert "/dev/full: cannot write (No space left on device)" in line
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_symlink_output_writes_its_target_and_stays_a_link(files, tmp_path, capsys):
    target = tmp_path / "real" / "report.json"
    target.parent.mkdir()
    target.write_text("{}\n")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    assert main(["evaluate", str(files["F"]), "--no-progress", "--json", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "mAP" in target.read_text()
    assert sorted(os.listdir(tmp_path)) == ["real", "report.json"]
    assert sorted(os.listdir(target.parent)) == ["report.json"]
    capsys.readouterr()


# --- the writer itself: full disk, read-only filesystem, killed writers --------------------------


def test_a_full_disk_keeps_the_old_file_and_says_so_in_one_line(tmp_path, monkeypatch):
    out = tmp_path / "result.json"
    out.write_text('{"old": true}\n')

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(json, "dumps", full)
    with pytest.raises(ReIDError) as info:
        write_json(out, {"new": True})
    assert str(info.value) == (
        f"{out}: cannot write (No space left on device); any previous file there is unchanged"
    )
    assert out.read_text() == '{"old": true}\n' and os.listdir(tmp_path) == ["result.json"]


def test_a_read_only_place_is_one_line(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    # Root ignores permissions and tests cannot mount: the creating call fails as on a read-only FS.
    monkeypatch.setattr(_io.os, "open", read_only)
    with pytest.raises(ReIDError, match=r"out.json: cannot write \(Read-only file system\)"):
        write_json(tmp_path / "out.json", {})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(_io.os, "access", lambda *a, **k: False)
    with pytest.raises(ReIDError, match="cannot write there .* is (not writable|on a read-only)"):
        check_output(tmp_path / "out.json", "--json", "json")


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    out = tmp_path / "table.csv"
    dead = tmp_path / ".table.csv.999999999.abc.tmp.csv"  # no such pid
    dead.write_text("half")
    alive = tmp_path / f".table.csv.{os.getppid()}.abc.tmp.csv"  # a live writer's
    alive.write_text("in progress")
    with atomic_path(out) as tmp:
        tmp.write_text("a,b\n")
    assert sorted(os.listdir(tmp_path)) == sorted([out.name, alive.name])


def test_dev_stdout_redirected_to_a_file_gets_the_table_then_the_json(files, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out.txt"
    repo = Path(__file__).resolve().parents[1]
    with open(out, "wb") as fh:
        code = subprocess.run(
            [sys.executable, "-m", "mtmct_reid", "evaluate", str(files["F"]), "--no-progress"]
            + ["--json", "/dev/stdout"],
            stdout=fh,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(repo)},
            timeout=120,
        ).returncode
    assert code == 0
    text = out.read_text()
    table, _, rest = text.partition("{")
    assert "mAP" in table and "wrote /dev/stdout" in rest
    assert json.loads("{" + rest[: rest.rindex("}") + 1])["modes"]["visual"]["queries"] == 6
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]
