"""Writing a whole network: every stage drawn from its own random stream, images rendered into a hidden
staging folder, renamed onto the output at the end."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mtmct_reid._io import umask_mode, write_json
from mtmct_reid.data.readers import MARKET_FOLDERS
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

    The images are written into a hidden folder beside ``out_dir`` and renamed onto it at the end, so
    an interrupted run leaves no half-written dataset.

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
    _check_out_dir(out, overwrite)

    graph = build_graph(cfg, stream(cfg.seed, STREAM_GRAPH))
    separation = lookalike_separation(graph, cfg)
    people = make_people(cfg, graph, separation, stream(cfg.seed, STREAM_PEOPLE))
    specs = image_specs(cfg, graph, people, stream(cfg.seed, STREAM_PEOPLE, 1))
    names = market_file_names(specs)
    looks_rng = stream(cfg.seed, STREAM_CAMERA_LOOKS)
    looks = {cam: rendering.camera_look(cfg, looks_rng) for cam in graph.cameras}

    out.parent.mkdir(parents=True, exist_ok=True)
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
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
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
