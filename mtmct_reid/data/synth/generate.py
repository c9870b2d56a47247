"""Writing a whole network: every stage drawn from its own random stream, images rendered into a hidden
staging folder, renamed onto the output at the end."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mtmct_reid._io import umask_mode, write_json
from mtmct_reid.data.layouts.market import MARKET_FOLDERS
from mtmct_reid.data.synth import rendering
from mtmct_reid.data.synth.config import (
    GROUND_TRUTH_NAME,
    STREAM_CAMERA_LOOKS,
    STREAM_GRAPH,
    STREAM_IMAGE,
    STREAM_PEOPLE,
    SynthConfig,
    stream,
)
from mtmct_reid.data.synth.graph import build_graph, lookalike_separation
from mtmct_reid.data.synth.ground_truth import build_ground_truth
from mtmct_reid.data.synth.market import image_specs, market_file_names
from mtmct_reid.data.synth.people import make_people
from mtmct_reid.errors import ReIDError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate_network` wrote: where, and how many of each.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> out = Path(tmp.name) / "net"
        >>> summary = generate_network(out, num_ids=8, num_cameras=2, image_size=(32, 16))
        >>> summary.num_train_ids, summary.num_test_ids, summary.num_cameras
        (4, 4, 2)
        >>> tmp.cleanup()
    """

    root: Path
    ground_truth: Path
    num_ids: int
    num_train_ids: int
    num_test_ids: int
    num_cameras: int
    num_links: int
    num_train_images: int
    num_query_images: int
    num_gallery_images: int
    num_distractor_images: int
    num_junk_images: int
    seconds: float

    @property
    def num_images(self) -> int:
        """All images written (train + query + gallery)."""
        return self.num_train_images + self.num_query_images + self.num_gallery_images

    def describe(self) -> str:
        """One line for a terminal."""
        return (
            f"{self.root}: {self.num_ids} ids ({self.num_train_ids} train, {self.num_test_ids} "
            f"test), {self.num_cameras} cameras, {self.num_links} camera links, "
            f"{self.num_train_images} train + {self.num_query_images} query + "
            f"{self.num_gallery_images} gallery images ({self.num_distractor_images} distractors, "
            f"{self.num_junk_images} junk) in {self.seconds:.1f}s"
        )


@contextlib.contextmanager
def _output_lock(out: Path) -> Iterator[None]:
    """Hold ``.OUT.lock`` beside the output for the whole run, so a second run into the same folder
    is refused instead of racing the first; the kernel releases it if the process is killed."""
    lock_path = out.parent / f".{out.name}.lock"
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, umask_mode(0o666))
        except OSError as exc:
            raise ReIDError(f"{out}: cannot create {lock_path.name} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise ReIDError(
                f"{out}: another 'mtmct-reid synth' (pid {holder or '?'}) is writing this folder; "
                "wait for it to finish or choose another folder"
            ) from None
        # The file may have been removed by the run that held it just before we locked it; then
        # our lock is on a file nobody else sees, and we take the new one instead.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()
        os.close(fd)


def _clean_stale(out: Path) -> None:
    """Remove what killed runs into ``out`` left beside it (their staging folders), and put back a
    previous network a killed run had moved aside to replace it. Called with the lock held, so no
    live run owns them."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.[a-z0-9_]+\.(partial|old)$")
    stale = sorted(p for p in out.parent.iterdir() if pattern.match(p.name) and p.is_dir())
    retired = [p for p in stale if p.name.endswith(".old")]
    if retired and not out.exists() and (retired[0] / GROUND_TRUTH_NAME).is_file():
        log.warning("%s: putting back the previous network a killed run had moved aside", out)
        os.replace(retired[0], out)
        stale.remove(retired[0])
    for path in stale:
        log.info("%s: removing %s left by a killed run", out, path.name)
        shutil.rmtree(path, ignore_errors=True)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ReIDError(f"{out}: exists and is not a folder; expected a new or empty output folder")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise ReIDError(f"{out}: folder exists and is not empty (pass --force to replace it)")
    if not (out / GROUND_TRUTH_NAME).is_file():
        raise ReIDError(
            f"{out}: not a network written by 'mtmct-reid synth' (no {GROUND_TRUTH_NAME}); "
            "refusing to replace it, even with --force"
        )


def generate_network(
    out_dir: str | os.PathLike,
    num_ids: int | None = None,
    num_cameras: int | None = None,
    seed: int | None = None,
    image_size: tuple[int, int] | None = None,
    *,
    config: SynthConfig | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> SynthSummary:
    """Generate a synthetic camera network in the Market-1501 layout, with ``ground_truth.json``.

    The images are written into a hidden folder beside ``out_dir`` (``.OUT.*.partial``) and renamed
    onto it at the end, so an interrupted run leaves no half-written dataset; a run killed outright
    leaves its hidden folder, which the next run into ``out_dir`` removes. A run holds
    ``.OUT.lock`` beside the output while it works: a second run into the same folder is refused.

    Args:
        out_dir: folder to create; it may exist if empty. An existing network is replaced only with
            ``overwrite=True`` (a non-empty folder without ``ground_truth.json`` never is).
        num_ids: identities (half train, half test); default ``config.num_ids`` (200).
        num_cameras: cameras, 2..9; default ``config.num_cameras`` (6).
        seed: random seed; the same arguments give byte-identical files. Default ``config.seed``.
        image_size: (height, width) in pixels; default ``config.image_size`` (128, 64).
        config: every other knob (:class:`SynthConfig`); the four arguments above, when given,
            replace its fields.
        overwrite: replace an existing network at ``out_dir``.
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        A :class:`SynthSummary` with the paths and counts.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> out = Path(tmp.name) / "net"
        >>> summary = generate_network(out, num_ids=8, num_cameras=2, image_size=(32, 16))
        >>> sorted(p.name for p in summary.root.iterdir())
        ['bounding_box_test', 'bounding_box_train', 'ground_truth.json', 'query']
        >>> tmp.cleanup()
    """
    started = time.perf_counter()
    base = config or SynthConfig()
    overrides: dict[str, Any] = {}
    for name, value in (("num_ids", num_ids), ("num_cameras", num_cameras), ("seed", seed)):
        if value is not None:
            try:
                overrides[name] = int(value)
            except (TypeError, ValueError):
                raise ReIDError(f"{name}={value!r} (expected an integer)") from None
    if image_size is not None:
        try:
            overrides["image_size"] = tuple(int(v) for v in image_size)
        except (TypeError, ValueError):
            raise ReIDError(f"image_size={image_size!r} (expected (height, width))") from None
    cfg = SynthConfig(**{**asdict(base), **overrides})
    if len(cfg.image_size) != 2:
        raise ReIDError(f"image_size={cfg.image_size!r} (expected (height, width))")
    cfg.validate()

    out = Path(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReIDError(f"{out}: cannot create its folder ({exc.strerror or exc})") from None
    with _output_lock(out):
        _clean_stale(out)
        _check_out_dir(out, overwrite)

        graph = build_graph(cfg, stream(cfg.seed, STREAM_GRAPH))
        separation = lookalike_separation(graph, cfg)
        people = make_people(cfg, graph, separation, stream(cfg.seed, STREAM_PEOPLE))
        specs = image_specs(cfg, graph, people, stream(cfg.seed, STREAM_PEOPLE, 1))
        names = market_file_names(specs)
        looks_rng = stream(cfg.seed, STREAM_CAMERA_LOOKS)
        looks = {cam: rendering.camera_look(cfg, looks_rng) for cam in graph.cameras}

        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        try:
            staging.chmod(umask_mode(0o777))
            for folder in MARKET_FOLDERS.values():
                (staging / folder).mkdir()
            bar = tqdm(
                total=len(specs),
                desc="synth images",
                unit="img",
                disable=None if progress is None else not progress,
            )
            with bar:
                for index, (spec, name) in enumerate(zip(specs, names, strict=True)):
                    rng = stream(cfg.seed, STREAM_IMAGE, index)
                    image = rendering.render_box(
                        cfg, looks[spec.camera], spec.appearance, rng, junk=spec.junk
                    )
                    image.save(
                        staging / MARKET_FOLDERS[spec.split] / name,
                        format="JPEG",
                        quality=cfg.jpeg_quality,
                    )
                    bar.update()
            ground_truth = build_ground_truth(cfg, graph, separation, people, specs, names)
            write_json(staging / GROUND_TRUTH_NAME, ground_truth)
            if out.exists() and any(out.iterdir()):
                retired = Path(
                    tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent)
                )
                os.replace(out, retired)
                os.replace(staging, out)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.replace(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    splits = [s.split for s in specs]
    summary = SynthSummary(
        root=out,
        ground_truth=out / GROUND_TRUTH_NAME,
        num_ids=cfg.num_ids,
        num_train_ids=sum(p.split == "train" for p in people),
        num_test_ids=sum(p.split == "test" for p in people),
        num_cameras=cfg.num_cameras,
        num_links=len(graph.links),
        num_train_images=splits.count("train"),
        num_query_images=splits.count("query"),
        num_gallery_images=splits.count("gallery"),
        num_distractor_images=sum(s.pid == 0 for s in specs),
        num_junk_images=sum(s.pid == -1 for s in specs),
        seconds=time.perf_counter() - started,
    )
    log.debug("synth: wrote %s", summary.describe())
    return summary
