"""A synthetic camera network as video: ``mtmct-reid synth OUT --video``.

The same camera graph and people as ``mtmct-reid synth`` (its graph, identities, look-alike groups and
appearances, from the same seed), rendered as frames on a common clock instead of cropped boxes:

* each camera has a background with its own colour cast, a floor and 1-3 static occluders (pillars,
  planters) drawn in front of the people;
* a visit is a walk across the floor from one frame edge to the other, the person's size following
  its depth (perspective); people cross and hide each other, nearer ones in front;
* a person's visits follow a walk along the graph's links, consecutive visit centres a transit time
  apart (drawn from the link's distribution, in seconds); look-alikes (same clothes and build) walk
  one after another, further apart than any plausible transit, so appearance alone confuses them and
  timing does not;
* two periods, ``OUT/train/`` (the training identities) and ``OUT/test/`` (the others, an hour
  later), each an MTMC root: ``cameras.csv`` with every camera's clock offset (each camera starts a
  little after the period, at its own time), ``img1/*.jpg`` (or ``video.mp4``), ``gt/gt.txt`` (the
  visible part of every box, global ids, visibility), ``det/det.txt`` (gt boxes jittered, missed when
  mostly hidden or at random, plus false boxes);
* ``OUT/ground_truth.json``: configuration, graph with transit distributions in seconds, camera
  offsets and every visit (person, camera, enter/centre/exit seconds).

Same seed, same bytes (JPEG frames; an MP4 depends on the FFmpeg build).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mtmct_reid._io import umask_mode, write_json
from mtmct_reid.data.synth.appearance import muted_colour
from mtmct_reid.data.synth.config import (
    STREAM_CAMERA_LOOKS,
    STREAM_GRAPH,
    STREAM_PEOPLE,
    SynthConfig,
    stream,
)
from mtmct_reid.data.synth.graph import CameraGraph, build_graph, sample_walk
from mtmct_reid.data.synth.people import Person, draw_identities
from mtmct_reid.data.synth.rendering import (
    CameraLook,
    apply_camera_effects,
    camera_look,
    draw_person,
)
from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc.root import DET, GT, Boxes, Camera, create_root, write_video

log = logging.getLogger(__name__)

GROUND_TRUTH_NAME = "ground_truth.json"
GROUND_TRUTH_FORMAT = "mtmct-reid-synth-video"
GROUND_TRUTH_VERSION = 1
PERIODS = ("train", "test")
# Random streams of the video renderer, apart from the image synthesiser's (1-4).
STREAM_WALKS, STREAM_SCENE, STREAM_FRAMES, STREAM_DETECTIONS = 11, 12, 13, 14
#: Transit times are drawn in milliseconds (the graph's links sample whole units).
_MS = 1000.0
#: Box width as a fraction of the person's height times their build (arms and bag included).
_BOX_WIDTH = 1.6


@dataclass(frozen=True)
class VideoSynthConfig:
    """Every knob of the synthetic video network.

    Args:
        num_ids: identities, half in the training period, half in the test period.
        num_cameras: cameras 1..C (2..9).
        seed: seed of every random draw.
        frame_size: (height, width) of the frames in pixels (even numbers, for video codecs).
        fps: frames per second of every camera.
        duration: seconds of each period.
        test_start: common-clock second at which the test period starts (the training one at 0).
        max_start_delay: each camera starts up to this many seconds after its period (its offset).
        visits_range: least and most cameras a person walks through.
        visit_seconds: range of the time a person takes to cross a camera's view.
        transit_mean_range: range of a link's mean transit time (visit centre to visit centre), s.
        transit_cv_range: range of a link's coefficient of variation.
        lookalike_fraction: fraction of the identities in look-alike groups.
        lookalike_group_size: identities per look-alike group.
        lookalike_margin: seconds added to the longest plausible transit between look-alikes' walks.
        occluders_range: least and most static occluders per camera.
        det_jitter: standard deviation of detection box noise, as a fraction of the box height.
        det_min_visibility: a box less visible than this is never detected.
        det_miss_prob: probability of missing a visible box.
        det_false_rate: mean false detections per frame.
        jpeg_quality: JPEG quality of the frames.
        video_file: write ``video.mp4`` per camera (PyAV) instead of ``img1/*.jpg``.

    Example:
        >>> VideoSynthConfig.small().num_cameras
        3
    """

    num_ids: int = 60
    num_cameras: int = 4
    seed: int = 0
    frame_size: tuple[int, int] = (144, 256)
    fps: float = 8.0
    duration: float = 120.0
    test_start: float = 3600.0
    max_start_delay: float = 2.0
    visits_range: tuple[int, int] = (2, 3)
    visit_seconds: tuple[float, float] = (3.5, 6.0)
    transit_mean_range: tuple[float, float] = (8.0, 18.0)
    transit_cv_range: tuple[float, float] = (0.08, 0.2)
    lookalike_fraction: float = 0.5
    lookalike_group_size: int = 2
    lookalike_margin: float = 4.0
    occluders_range: tuple[int, int] = (1, 3)
    det_jitter: float = 0.04
    det_min_visibility: float = 0.35
    det_miss_prob: float = 0.03
    det_false_rate: float = 0.03
    jpeg_quality: int = 90
    video_file: bool = False

    @classmethod
    def small(cls, **changes: Any) -> VideoSynthConfig:
        """A network that renders in seconds: 16 people, 3 cameras, 90 s periods of 160×96 frames at 8 fps."""
        base = cls(
            num_ids=16,
            num_cameras=3,
            frame_size=(96, 160),
            fps=8.0,
            duration=90.0,
            transit_mean_range=(7.0, 12.0),
            visits_range=(2, 2),
        )
        return dataclasses.replace(base, **changes)

    def validate(self) -> None:
        """Raise :class:`ReIDError` naming the first knob out of range."""
        h, w = self.frame_size
        checks = [
            (2 <= self.num_ids <= 10_000, "num_ids", "2..10000"),
            (2 <= self.num_cameras <= 9, "num_cameras", "2..9"),
            (
                h >= 48 and w >= 64 and h % 2 == 0 and w % 2 == 0 and h * w <= 1920 * 1080,
                "frame_size",
                "even height >= 48 and width >= 64, at most 1920x1080",
            ),
            (math.isfinite(self.fps) and 1 <= self.fps <= 60, "fps", "1..60"),
            (math.isfinite(self.duration) and 5 <= self.duration <= 3600, "duration", "5..3600 s"),
            (
                math.isfinite(self.test_start) and self.test_start >= self.duration,
                "test_start",
                ">= duration",
            ),
            (
                0 <= self.max_start_delay < self.duration / 2,
                "max_start_delay",
                "in [0, duration/2)",
            ),
            (
                2 <= self.visits_range[0] <= self.visits_range[1] <= self.num_cameras,
                "visits_range",
                "2 <= least <= most <= num_cameras",
            ),
            (
                0.5 <= self.visit_seconds[0] <= self.visit_seconds[1],
                "visit_seconds",
                "0.5 <= least <= most",
            ),
            (
                0 < self.transit_mean_range[0] <= self.transit_mean_range[1],
                "transit_mean_range",
                "0 < least <= most",
            ),
            (
                0 <= self.transit_cv_range[0] <= self.transit_cv_range[1] <= 1,
                "transit_cv_range",
                "0 <= least <= most <= 1",
            ),
            (0 <= self.lookalike_fraction <= 1, "lookalike_fraction", "in [0, 1]"),
            (self.lookalike_group_size >= 2, "lookalike_group_size", ">= 2"),
            (self.lookalike_margin >= 0, "lookalike_margin", ">= 0"),
            (
                0 <= self.occluders_range[0] <= self.occluders_range[1] <= 6,
                "occluders_range",
                "0..6",
            ),
            (0 <= self.det_jitter <= 0.5, "det_jitter", "in [0, 0.5]"),
            (0 <= self.det_min_visibility <= 1, "det_min_visibility", "in [0, 1]"),
            (0 <= self.det_miss_prob <= 1, "det_miss_prob", "in [0, 1]"),
            (0 <= self.det_false_rate <= 10, "det_false_rate", "in [0, 10]"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality", "1..100"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise ReIDError(
                    f"synth --video: {name} = {getattr(self, name)!r}, expected {expected}"
                )

    def image_config(self) -> SynthConfig:
        """The image synthesiser's configuration with this network's graph and people: same seed,
        cameras, identities and look-alike groups; transit times in milliseconds."""
        return SynthConfig(
            num_ids=self.num_ids,
            num_cameras=self.num_cameras,
            seed=self.seed,
            visits_range=self.visits_range,
            transit_mean_range=(self.transit_mean_range[0] * _MS, self.transit_mean_range[1] * _MS),
            transit_cv_range=self.transit_cv_range,
            lookalike_fraction=self.lookalike_fraction,
            lookalike_group_size=self.lookalike_group_size,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


@dataclass(frozen=True)
class Visit:
    """One person crossing one camera's view.

    Args:
        pid: the person.
        camera: the camera.
        enter, exit: common-clock seconds at which the walk starts and ends (the person's centre
            then is just outside the frame).
        x0, x1: horizontal centre at enter and exit, pixels.
        feet0, feet1: row of the feet at enter and exit (depth), pixels.
        side: +1 walking right, -1 walking left.
    """

    pid: int
    camera: int
    enter: float
    exit: float
    x0: float
    x1: float
    feet0: float
    feet1: float
    side: int

    @property
    def centre(self) -> float:
        return 0.5 * (self.enter + self.exit)


@dataclass(frozen=True)
class Scene:
    """A camera's static picture: background, its optics, occluders (x0, y0, x1, y1) and colours."""

    look: CameraLook
    background: np.ndarray
    occluders: tuple[tuple[float, float, float, float], ...]
    occluder_colours: tuple[tuple[int, int, int], ...]
    vanish: float


@dataclass(frozen=True)
class VideoNetwork:
    """What :func:`generate_video_network` made (for tests and reports).

    Args:
        out: the output folder.
        config: the configuration.
        gt: per period, the ground-truth boxes written.
        det: per period, the detections written.
        cameras: per period, the cameras (with offsets).
        visits: every visit of every period.
    """

    out: Path
    config: VideoSynthConfig
    gt: Mapping[str, Boxes]
    det: Mapping[str, Boxes]
    cameras: Mapping[str, tuple[Camera, ...]]
    visits: tuple[Visit, ...]

    def describe(self) -> str:
        parts = [
            f"{p}: {len(self.cameras[p])} cameras, {len(self.gt[p])} gt boxes, "
            f"{len(np.unique(self.gt[p].ids))} ids, {len(self.det[p])} detections"
            for p in PERIODS
        ]
        return f"{self.out} ({'; '.join(parts)})"


# --------------------------------------------------------------------------------------------------
# People and their visits


def _floor_band(height: int) -> tuple[float, float]:
    """Rows where feet may be: from a little below the middle to the bottom."""
    return 0.62 * height, 0.97 * height


def _person_height(app_height: float, feet: float, height: int, vanish: float) -> float:
    # Perspective: size grows linearly with the distance of the feet below the vanishing row.
    return app_height * 0.62 * height * (feet - vanish) / (height - vanish)


def _walk_visits(
    person: Person,
    graph: CameraGraph,
    config: VideoSynthConfig,
    rng: np.random.Generator,
) -> tuple[list[int], list[float], list[float]]:
    """Cameras, durations and centres (seconds from the walk's start) of a person's visits."""
    cams = sample_walk(graph, config.visits_range, rng)
    durations = [float(rng.uniform(*config.visit_seconds)) for _ in cams]
    centres = [durations[0] / 2]
    for k in range(1, len(cams)):
        transit = graph.sample_transit(cams[k - 1], cams[k], rng) / _MS
        # A person is in one place at a time: the next view is entered after the last is left.
        least = (durations[k - 1] + durations[k]) / 2 + 0.5
        centres.append(centres[-1] + max(transit, least))
    return cams, durations, centres


def _separation(graph: CameraGraph, config: VideoSynthConfig) -> float:
    """Seconds from one look-alike leaving the network to the next entering it: past the longest
    plausible transit of any link (a transit runs centre to centre, longer than exit to entry)."""
    upper = max(link.quantile_upper(0.9995) for link in graph.links) / _MS
    return upper + config.lookalike_margin


def _group_span(members: list[Person], span: dict[int, float], sep: float) -> float:
    """Seconds a look-alike group needs at the most (each gap up to 1.25 separations)."""
    return sum(span[p.pid] for p in members) + 1.25 * sep * (len(members) - 1)


def plan_visits(
    config: VideoSynthConfig, graph: CameraGraph, people: list[Person], groups: list[list[Person]]
) -> list[Visit]:
    """Every visit of every person, on the common clock (training period from 0, test from
    ``test_start``), look-alikes one after another.

    Raises:
        ReIDError: a look-alike group that cannot fit in a period.
    """
    rng = stream(config.seed, STREAM_WALKS)
    height, width = config.frame_size
    low, high = _floor_band(height)
    walks = {p.pid: _walk_visits(p, graph, config, rng) for p in people}
    span = {pid: w[2][-1] + w[1][-1] / 2 for pid, w in walks.items()}
    start: dict[int, float] = {}
    sep = _separation(graph, config)
    in_group = {p.pid for g in groups for p in g}
    for person in people:
        if person.pid not in in_group:
            start[person.pid] = float(rng.uniform(0, max(config.duration - span[person.pid], 0.0)))
    for members in groups:
        # A group too long for the period walks fewer cameras: the longest walk loses its last
        # visit until the group fits (never below two visits).
        while _group_span(members, span, sep) > config.duration:
            longest = max(members, key=lambda p: (len(walks[p.pid][0]) > 2, span[p.pid]))
            cams, durations, centres = walks[longest.pid]
            if len(cams) <= 2:
                break
            walks[longest.pid] = (cams[:-1], durations[:-1], centres[:-1])
            span[longest.pid] = centres[-2] + durations[-2] / 2
        offsets = [0.0]
        for prev in members[:-1]:
            offsets.append(offsets[-1] + span[prev.pid] + sep + float(rng.uniform(0, sep / 4)))
        total = offsets[-1] + span[members[-1].pid]
        if total > config.duration:
            raise ReIDError(
                f"synth --video: look-alike groups of {config.lookalike_group_size} need "
                f"{total:.0f} s, more than the period's duration {config.duration:g} s; raise "
                "duration or lower lookalike_group_size or transit_mean_range"
            )
        base = float(rng.uniform(0, config.duration - total))
        for member, offset in zip(members, offsets, strict=True):
            start[member.pid] = base + offset
    visits = []
    for person in people:
        period_start = 0.0 if person.split == "train" else config.test_start
        cams, durations, centres = walks[person.pid]
        for cam, dur, centre in zip(cams, durations, centres, strict=True):
            side = 1 if rng.random() < 0.5 else -1
            t = period_start + start[person.pid] + centre
            feet0, feet1 = rng.uniform(low, high, size=2)
            margin = 0.35 * _BOX_WIDTH * 0.3 * height  # centre just outside the frame
            x0, x1 = -margin, width + margin
            if side < 0:
                x0, x1 = x1, x0
            visits.append(
                Visit(
                    pid=person.pid,
                    camera=int(cam),
                    enter=round(t - dur / 2, 4),
                    exit=round(t + dur / 2, 4),
                    x0=float(x0),
                    x1=float(x1),
                    feet0=float(feet0),
                    feet1=float(feet1),
                    side=side,
                )
            )
    return visits


# --------------------------------------------------------------------------------------------------
# Rendering


def make_scene(config: VideoSynthConfig, image_config: SynthConfig, camera: int) -> Scene:
    """Camera ``camera``'s background (the image synthesiser's look of that camera), occluders."""
    height, width = config.frame_size
    look_rng = stream(config.seed, STREAM_CAMERA_LOOKS, camera)
    look = camera_look(image_config, look_rng, size=(height, width))
    rng = stream(config.seed, STREAM_SCENE, camera)
    offset = int(rng.integers(0, look.background.shape[1] - width + 1))
    background = look.background[:, offset : offset + width].copy()
    occluders, colours = [], []
    low, high = _floor_band(height)
    for _ in range(int(rng.integers(config.occluders_range[0], config.occluders_range[1] + 1))):
        if rng.random() < 0.5:  # a pillar standing on the floor
            w = rng.uniform(0.04, 0.08) * width
            x0 = rng.uniform(0.1, 0.9) * width - w / 2
            bottom = rng.uniform(low, high)
            occluders.append((x0, 0.0, x0 + w, bottom))
        else:  # a planter or bench in the foreground
            w = rng.uniform(0.12, 0.25) * width
            x0 = rng.uniform(0.0, 1.0) * width - w / 2
            bottom = rng.uniform(high, height)
            occluders.append((x0, bottom - rng.uniform(0.1, 0.2) * height, x0 + w, bottom))
        colours.append(muted_colour(rng, (0.15, 0.8)))
    return Scene(
        look=look,
        background=background,
        occluders=tuple(tuple(float(v) for v in o) for o in occluders),
        occluder_colours=tuple(tuple(int(c) for c in col) for col in colours),
        vanish=0.25 * height,
    )


@dataclass
class _Frame:
    image: np.ndarray
    ids: list[int]
    boxes: list[tuple[float, float, float, float]]
    visibility: list[float]


def _render_camera(
    config: VideoSynthConfig,
    scene: Scene,
    camera: Camera,
    num_frames: int,
    visits: list[Visit],
    appearances: Mapping[int, Any],
    heights: Mapping[int, float],
    rng: np.random.Generator,
) -> Iterator[_Frame]:
    """Yield every frame of one camera with the visible box of every person in it."""
    height, width = config.frame_size
    order = sorted(visits, key=lambda v: v.enter)
    active: list[Visit] = []
    nxt = 0
    occ_mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in scene.occluders:
        occ_mask[
            max(int(round(y0)), 0) : max(int(round(y1)), 0),
            max(int(round(x0)), 0) : max(int(round(x1)), 0),
        ] = True
    for f in range(1, num_frames + 1):
        t = camera.offset + (f - 1) / camera.fps
        while nxt < len(order) and order[nxt].enter <= t:
            active.append(order[nxt])
            nxt += 1
        active = [v for v in active if v.exit >= t]
        people = []
        for v in active:
            a = (t - v.enter) / (v.exit - v.enter)
            feet = v.feet0 + (v.feet1 - v.feet0) * a
            ph = _person_height(heights[v.pid], feet, height, scene.vanish)
            cx = v.x0 + (v.x1 - v.x0) * a
            people.append((feet, v, cx, ph, a))
        people.sort(key=lambda p: (p[0], p[1].pid))  # far (higher feet row) first
        canvas = Image.fromarray(scene.background.copy())
        # Pixel boxes (before clipping) and the mask of what is drawn in front of each.
        raw = []
        for feet, v, cx, ph, a in people:
            phase = 2 * math.pi * a * (v.exit - v.enter) * 1.6
            draw_person(
                canvas,
                appearances[v.pid],
                cx,
                feet,
                ph,
                side=v.side,
                stride=abs(math.sin(phase)) * 0.12 * ph,
                swing=math.sin(phase) * 0.04 * ph,
            )
            bw = _BOX_WIDTH * appearances[v.pid].build * ph
            raw.append(
                (v.pid, round(cx - bw / 2), round(feet - ph), round(cx + bw / 2), round(feet))
            )
        draw = ImageDraw.Draw(canvas)
        for box, colour in zip(scene.occluders, scene.occluder_colours, strict=True):
            draw.rectangle(box, fill=colour)
        image = apply_camera_effects(canvas, scene.look, rng, blur_prob=0.0, blur_max=0.0)
        front = occ_mask.copy()
        frame = _Frame(np.asarray(image), [], [], [])
        # Nearest first: each person is hidden by occluders and by everyone nearer.
        for pid, x0, y0, x1, y1 in reversed(raw):
            area = max(x1 - x0, 1) * max(y1 - y0, 1)
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
            if cx1 - cx0 >= 2 and cy1 - cy0 >= 2:
                hidden = int(front[cy0:cy1, cx0:cx1].sum())
                visible = ((cx1 - cx0) * (cy1 - cy0) - hidden) / area
                frame.ids.append(pid)
                frame.boxes.append((float(cx0), float(cy0), float(cx1 - cx0), float(cy1 - cy0)))
                frame.visibility.append(round(max(visible, 0.0), 2))
                front[cy0:cy1, cx0:cx1] = True
        yield frame


def _detections(
    config: VideoSynthConfig, gt: Boxes, num_frames: int, camera: int, rng: np.random.Generator
) -> Boxes:
    """Noisy detections of one camera: jittered gt boxes (missed when mostly hidden or at random,
    confidence falling with occlusion), plus false boxes."""
    height, width = config.frame_size
    keep = (gt.visibility >= config.det_min_visibility) & (
        rng.random(len(gt)) >= config.det_miss_prob
    )
    g = gt.select(keep)
    noise = rng.normal(0, config.det_jitter, size=(len(g), 4)) * g.h[:, None]
    x1 = np.clip(g.x + noise[:, 0], 0, width - 2)
    y1 = np.clip(g.y + noise[:, 1], 0, height - 2)
    x2 = np.clip(g.x + g.w + noise[:, 2], x1 + 2, width)
    y2 = np.clip(g.y + g.h + noise[:, 3], y1 + 2, height)
    conf = np.clip(0.45 + 0.5 * g.visibility + rng.normal(0, 0.08, len(g)), 0.05, 0.99)
    n_false = int(rng.poisson(config.det_false_rate * num_frames))
    low, high = _floor_band(height)
    fh = rng.uniform(0.15, 0.5, n_false) * height
    fw = fh * rng.uniform(0.3, 0.6, n_false)
    fx = rng.uniform(0, width - fw)
    fy = np.clip(rng.uniform(low, high, n_false) - fh, 0, height - fh)
    frames = np.concatenate([g.frames, rng.integers(1, num_frames + 1, n_false)])
    # Hundredths of a pixel, rounded inwards so that no box crosses the frame's edge.
    left = np.round(np.concatenate([x1, fx]), 2)
    top = np.round(np.concatenate([y1, fy]), 2)
    right = np.concatenate([x2, fx + fw])
    bottom = np.concatenate([y2, fy + fh])
    boxes = Boxes.from_columns(
        cams=np.full(len(frames), camera),
        frames=frames,
        ids=np.full(len(frames), -1),
        x=left,
        y=top,
        w=np.floor((right - left) * 100) / 100,
        h=np.floor((bottom - top) * 100) / 100,
        conf=np.round(np.concatenate([conf, rng.uniform(0.1, 0.65, n_false)]), 3),
    )
    return boxes.select(np.lexsort((boxes.x, boxes.frames)))


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ReIDError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        ours = (out / GROUND_TRUTH_NAME).is_file() and GROUND_TRUTH_FORMAT in (
            out / GROUND_TRUTH_NAME
        ).read_text(errors="replace")[:2000]
        if not ours:
            raise ReIDError(
                f"{out}: not empty and not a synthetic video network; choose a new folder"
            )
        if not overwrite:
            raise ReIDError(f"{out}: holds a synthetic video network; pass --force to replace it")


def generate_video_network(
    out: str | os.PathLike,
    config: VideoSynthConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> VideoNetwork:
    """Render the network into ``out`` (built in a temporary folder beside it, then renamed).

    Args:
        out: output folder (new or empty; with ``overwrite``, one this function made before).
        config: the network (default :class:`VideoSynthConfig`).
        overwrite: replace an earlier synthetic video network in ``out``.
        progress: show a progress bar.

    Example:
        >>> import tempfile
        >>> net = generate_video_network(tempfile.mkdtemp() + "/net", VideoSynthConfig.small(
        ...     duration=20.0, num_ids=4, lookalike_fraction=0.0), progress=False)
        >>> sorted(net.gt)
        ['test', 'train']
    """
    from tqdm.auto import tqdm

    config = config or VideoSynthConfig()
    config.validate()
    out = Path(out)
    _check_out(out, overwrite)
    image_config = config.image_config()
    graph = build_graph(image_config, stream(config.seed, STREAM_GRAPH))
    people, groups = draw_identities(image_config, stream(config.seed, STREAM_PEOPLE))
    visits = plan_visits(config, graph, people, groups)
    appearances = {p.pid: p.appearance for p in people}
    heights = {p.pid: p.appearance.height for p in people}
    scenes = {cam: make_scene(config, image_config, cam) for cam in graph.cameras}
    height, width = config.frame_size

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        gts: dict[str, Boxes] = {}
        dets: dict[str, Boxes] = {}
        cameras: dict[str, tuple[Camera, ...]] = {}
        bar = tqdm(
            total=len(PERIODS) * config.num_cameras,
            desc="synth --video",
            unit="camera",
            disable=not progress,
        )
        for p_index, period in enumerate(PERIODS):
            start = 0.0 if period == "train" else config.test_start
            delay_rng = stream(config.seed, STREAM_SCENE, 100 + p_index)
            cams = tuple(
                Camera(
                    id=cam,
                    name=str(cam),
                    fps=config.fps,
                    offset=round(start + float(delay_rng.uniform(0, config.max_start_delay)), 3),
                    width=width,
                    height=height,
                )
                for cam in graph.cameras
            )
            cameras[period] = cams
            root = create_root(tmp / period, cams)
            gt_parts, det_parts = [], []
            for camera in cams:
                num_frames = int(math.floor((start + config.duration - camera.offset) * config.fps))
                mine = [v for v in visits if v.camera == camera.id and v.exit >= camera.offset]
                frames_rng = stream(config.seed, STREAM_FRAMES, p_index, camera.id)
                rows: list[tuple] = []
                frame_iter = _render_camera(
                    config,
                    scenes[camera.id],
                    camera,
                    num_frames,
                    mine,
                    appearances,
                    heights,
                    frames_rng,
                )

                def images(frame_iter=frame_iter, rows=rows):
                    for f, frame in enumerate(frame_iter, start=1):
                        for pid, box, vis in zip(
                            frame.ids, frame.boxes, frame.visibility, strict=True
                        ):
                            rows.append((f, pid, *box, vis))
                        yield frame.image

                cam_dir = root.camera_dir(camera.id)
                if config.video_file:
                    write_video(cam_dir / "video.mp4", images(), fps=config.fps)
                else:
                    folder = cam_dir / "img1"
                    folder.mkdir(parents=True, exist_ok=True)
                    for f, image in enumerate(images(), start=1):
                        Image.fromarray(image).save(
                            folder / f"{f:06d}.jpg", quality=config.jpeg_quality
                        )
                table = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
                gt = Boxes.from_columns(
                    cams=np.full(len(table), camera.id),
                    frames=table[:, 0],
                    ids=table[:, 1],
                    x=table[:, 2],
                    y=table[:, 3],
                    w=table[:, 4],
                    h=table[:, 5],
                    cls=np.ones(len(table)),
                    visibility=table[:, 6],
                ).sorted()
                det = _detections(
                    config,
                    gt,
                    num_frames,
                    camera.id,
                    stream(config.seed, STREAM_DETECTIONS, p_index, camera.id),
                )
                gt_parts.append(gt)
                det_parts.append(det)
                bar.update(1)
            gts[period] = Boxes.concat(gt_parts).sorted()
            dets[period] = Boxes.concat(det_parts).sorted()
            root.write_boxes(gts[period], GT)
            root.write_boxes(dets[period], DET)
        bar.close()
        write_json(tmp / GROUND_TRUTH_NAME, _ground_truth(config, graph, people, visits, cameras))
        os.chmod(tmp, umask_mode(0o777))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return VideoNetwork(
        out=out, config=config, gt=gts, det=dets, cameras=cameras, visits=tuple(visits)
    )


def _ground_truth(
    config: VideoSynthConfig,
    graph: CameraGraph,
    people: list[Person],
    visits: list[Visit],
    cameras: Mapping[str, tuple[Camera, ...]],
) -> dict[str, Any]:
    links = []
    for link in graph.links:
        entry = {
            "from": link.source,
            "to": link.target,
            "kind": link.kind,
            "mean_s": link.mean / _MS,
            "std_s": link.std / _MS,
        }
        links.append(entry)
    return {
        "format": GROUND_TRUTH_FORMAT,
        "version": GROUND_TRUTH_VERSION,
        "config": config.to_json(),
        "time_unit": "seconds on the common clock; transit = centre of one visit to centre of the next",
        "graph": {
            "cameras": list(graph.cameras),
            "camera_order": list(graph.order),
            "links": links,
        },
        "periods": {
            period: {
                "cameras": [
                    {
                        "camera": c.id,
                        "fps": c.fps,
                        "offset": c.offset,
                        "width": c.width,
                        "height": c.height,
                    }
                    for c in cams
                ],
                "ids": sorted(p.pid for p in people if p.split == period),
            }
            for period, cams in cameras.items()
        },
        "lookalike_groups": [
            sorted(p.pid for p in people if p.group == g)
            for g in sorted({p.group for p in people if p.group >= 0})
        ],
        "visits": [
            {
                "pid": v.pid,
                "camera": v.camera,
                "enter": v.enter,
                "centre": round(v.centre, 4),
                "exit": v.exit,
            }
            for v in sorted(visits, key=lambda v: (v.enter, v.pid))
        ],
    }
