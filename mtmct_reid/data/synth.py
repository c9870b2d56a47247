"""A synthetic camera network in the Market-1501 layout, with its ground truth.

No real dataset can be downloaded where this project is built and tested, so every stage (training, the
transit-time model, fusion, re-ranking, the demo) is proven on a network generated here:

* **Cameras** form a random directed graph: a random order of the cameras, a forward link to the next
  camera (and sometimes to the ones after it), and backward links to the previous camera only now and
  then, so that some ordered pairs can never be walked. Each link ``i → j`` has its own transit-time
  distribution (log-normal or truncated Gaussian, in frames).
* **People** start at a random camera and time and walk 2–4 cameras along the links; every visit leaves
  a few boxes a few frames apart. Times are integers in frames on a Market-style clock and are written as
  ``c{cam}s{session}_{frame:06d}`` so that :func:`mtmct_reid.data.market_time.market_global_time` gives
  the generated time back exactly.
* **Appearance** is drawn with PIL: body proportions, clothing colours and patterns, bags and hats,
  per-camera background, colour cast, brightness, blur, noise, scale jitter and occlusion. People come in
  **groups of look-alikes** (same clothes and build, tiny jitter) whose walks are far apart in time, so
  that appearance alone confuses them and timing does not: the situation where st-ReID's fusion helps.
* **Market protocol**: train and test identities are disjoint halves; every test identity has one query
  box per camera it visits and the rest in the gallery, which also holds distractors (id ``0000``) and
  junk boxes (id ``-1``).

``ground_truth.json`` beside the images records the graph, each link's distribution, every visit and
every image, so tests and plots can compare what the pipeline learns with what was generated.
"""

from __future__ import annotations

import colorsys
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy.signal import fftconvolve
from scipy.special import ndtr
from tqdm import tqdm

from mtmct_reid._io import umask_mode, write_json
from mtmct_reid.data.market_time import market_session_frame
from mtmct_reid.data.readers import MARKET_FOLDERS
from mtmct_reid.errors import ReIDError

log = logging.getLogger(__name__)

#: File name of the ground truth written beside the image folders.
GROUND_TRUTH_NAME = "ground_truth.json"
#: Value of the ``format`` field of the ground truth, checked when it is read back.
GROUND_TRUTH_FORMAT = "mtmct-reid-synth"
GROUND_TRUTH_VERSION = 1

#: Market-1501 names carry the camera as one digit (``c1``..``c9``); readers parse it that way.
MAX_CAMERAS = 9
#: Market-1501 names carry the frame with six digits.
MAX_FRAME = 999_999
#: The smallest image the renderer can draw a recognisable person into (height, width).
MIN_IMAGE_SIZE = (32, 16)


TRANSIT_KINDS = ("lognormal", "gaussian")
_PATTERNS = ("solid", "stripes", "vstripes", "checks")
_BOTTOM_STYLES = ("trousers", "trousers", "shorts", "skirt")
_BAGS = ("none", "none", "backpack", "shoulder", "hand")
_SKIN_TONES = (
    (255, 224, 196),
    (241, 194, 150),
    (224, 172, 135),
    (198, 134, 96),
    (141, 85, 54),
    (96, 60, 40),
)
_HAIR_COLOURS = ((20, 16, 14), (60, 40, 25), (110, 75, 40), (200, 160, 90), (150, 150, 150))

# Independent random streams, so that adding draws to one stage never changes another stage's output.
_STREAM_GRAPH, _STREAM_PEOPLE, _STREAM_CAMERA_LOOKS, _STREAM_IMAGE = 1, 2, 3, 4


@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the synthetic network; the defaults make a few thousand 128×64 images.

    Args:
        num_ids: identities, split into disjoint train and test halves.
        num_cameras: cameras, numbered 1..C (at most 9: Market names hold one camera digit).
        seed: seed of every random draw; the same seed gives byte-identical files.
        image_size: (height, width) of every image in pixels.
        visits_range: least and most cameras a person walks through (a walk that reaches a camera
            with no unvisited next camera stops early, never below 2 visits).
        boxes_per_visit_range: least and most boxes a visit leaves (at least 2, so that a test
            identity keeps a gallery box in every camera after its query box is taken).
        box_gap_range: frames between consecutive boxes of a visit.
        time_horizon: walks start in [0, time_horizon) frames (Market cameras run ~426,000 frames).
        transit_mean_range: range of the mean transit time of a link, in frames.
        transit_cv_range: range of a link's coefficient of variation (std / mean).
        transit_kinds: distribution families a link draws from.
        forward_skip_prob: probability of a link skipping one camera of the order (squared for
            two, and so on).
        backward_prob: probability of a link back to the previous camera of the order.
        lookalike_fraction: fraction of each split's identities that belong to a look-alike group.
        lookalike_group_size: identities per look-alike group.
        lookalike_jitter: colour jitter between look-alikes, as a fraction of 255 (and of their
            proportions).
        lookalike_margin: frames added to the longest plausible co-visit time when spacing the
            walks of look-alikes; covers the transit model's smoothing (3σ = 150 bins = 15,000
            frames).
        distractor_fraction: distractor boxes (id 0) added to the gallery, relative to its size.
        junk_fraction: junk boxes (id -1) added to the gallery, relative to its size.
        colour_cast: per-camera gain of each colour channel is drawn from 1 ± this.
        brightness_range: per-camera brightness factor.
        scale_jitter: per-image relative jitter of the person's size.
        blur_prob: probability that an image gets extra blur.
        blur_max: largest extra blur radius, in pixels of a 128-pixel-high image.
        noise_range: per-camera standard deviation of the sensor noise (grey levels).
        occlusion_prob: probability that an image is partly occluded.
        jpeg_quality: JPEG quality of every image (fixed, so files are reproducible).
        bin_width: bin width (frames) recorded as the transit model's convention.

    Example:
        >>> SynthConfig(num_ids=40, num_cameras=4, image_size=(64, 32)).num_ids
        40
    """

    num_ids: int = 200
    num_cameras: int = 6
    seed: int = 0
    image_size: tuple[int, int] = (128, 64)
    visits_range: tuple[int, int] = (2, 4)
    boxes_per_visit_range: tuple[int, int] = (2, 8)
    box_gap_range: tuple[int, int] = (3, 25)
    time_horizon: int = 400_000
    transit_mean_range: tuple[float, float] = (1_000.0, 16_000.0)
    transit_cv_range: tuple[float, float] = (0.1, 0.3)
    transit_kinds: tuple[str, ...] = TRANSIT_KINDS
    forward_skip_prob: float = 0.35
    backward_prob: float = 0.5
    lookalike_fraction: float = 0.5
    lookalike_group_size: int = 3
    lookalike_jitter: float = 0.015
    lookalike_margin: float = 20_000.0
    distractor_fraction: float = 0.1
    junk_fraction: float = 0.05
    colour_cast: float = 0.12
    brightness_range: tuple[float, float] = (0.75, 1.15)
    scale_jitter: float = 0.08
    blur_prob: float = 0.3
    blur_max: float = 1.0
    noise_range: tuple[float, float] = (2.0, 6.0)
    occlusion_prob: float = 0.15
    jpeg_quality: int = 90
    bin_width: int = 100

    def validate(self) -> None:
        """Raise :class:`ReIDError` naming the first knob that is out of range."""

        def bad(name: str, expected: str) -> ReIDError:
            return ReIDError(f"{name}={getattr(self, name)!r} ({expected})")

        def check_range(name: str, low: float, high: float | None = None) -> None:
            value = getattr(self, name)
            if len(value) != 2 or value[0] > value[1] or value[0] < low:
                raise bad(name, f"expected (min, max) with {low} <= min <= max")
            if high is not None and value[1] > high:
                raise bad(name, f"expected max <= {high}")

        if not 2 <= self.num_cameras <= MAX_CAMERAS:
            raise bad(
                "num_cameras", f"expected 2..{MAX_CAMERAS}: Market names hold one camera digit"
            )
        if self.num_ids < 4:
            raise bad("num_ids", "expected at least 4: two train and two test identities")
        if self.seed < 0:
            raise bad("seed", "expected a non-negative integer")
        height, width = self.image_size
        if height < MIN_IMAGE_SIZE[0] or width < MIN_IMAGE_SIZE[1]:
            raise bad(
                "image_size",
                f"expected (height, width) of at least {MIN_IMAGE_SIZE[0]}x{MIN_IMAGE_SIZE[1]}",
            )
        check_range("visits_range", 2)
        check_range("boxes_per_visit_range", 2, 50)
        check_range("box_gap_range", 1)
        check_range("transit_mean_range", 1.0)
        check_range("transit_cv_range", 0.01, 0.3)
        check_range("brightness_range", 0.05)
        check_range("noise_range", 0.0)
        if not self.transit_kinds or any(k not in TRANSIT_KINDS for k in self.transit_kinds):
            raise bad("transit_kinds", f"expected a non-empty subset of {TRANSIT_KINDS}")
        if self.time_horizon < 1_000 or self.time_horizon > MAX_FRAME // 2:
            raise bad("time_horizon", f"expected 1000..{MAX_FRAME // 2} frames")
        for name in (
            "forward_skip_prob",
            "backward_prob",
            "lookalike_fraction",
            "blur_prob",
            "occlusion_prob",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "expected a probability in [0, 1]")
        for name in ("distractor_fraction", "junk_fraction", "colour_cast", "scale_jitter"):
            if not 0.0 <= getattr(self, name) <= 0.5:
                raise bad(name, "expected a value in [0, 0.5]")
        if self.lookalike_group_size < 2:
            raise bad("lookalike_group_size", "expected at least 2 identities per group")
        if not 0.0 <= self.lookalike_jitter <= 0.2:
            raise bad("lookalike_jitter", "expected a value in [0, 0.2]")
        if self.lookalike_margin < 0 or self.blur_max < 0:
            raise bad("lookalike_margin" if self.lookalike_margin < 0 else "blur_max", ">= 0")
        if not 1 <= self.jpeg_quality <= 95:
            raise bad("jpeg_quality", "expected 1..95")
        if self.bin_width < 1:
            raise bad("bin_width", "expected a positive number of frames")

    def to_json(self) -> dict[str, Any]:
        """The configuration as plain JSON values (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SynthConfig:
        """Inverse of :meth:`to_json`; unknown keys are an error."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ReIDError(f"synth config: unknown field '{unknown[0]}'")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate_network` wrote: where, and how many of each.

    Example:
        >>> summary = generate_network("/tmp/net", num_ids=40, num_cameras=4)  # doctest: +SKIP
        >>> summary.num_train_ids, summary.num_test_ids  # doctest: +SKIP
        (20, 20)
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


# ---------------------------------------------------------------------------------------------
# Transit-time distributions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransitLink:
    """One directed camera link and its transit-time distribution (frames).

    ``lognormal``: log of the time is normal with ``mu``, ``sigma``, chosen so that the time has mean
    ``mean`` and standard deviation ``std``. ``gaussian``: normal(``mean``, ``std``) truncated to
    times >= 1 frame (with the coefficients of variation allowed, less than 0.05 % of the mass is cut).
    """

    source: int
    target: int
    kind: str
    mean: float
    std: float

    @property
    def lognormal_params(self) -> tuple[float, float]:
        """``(mu, sigma)`` of the log of the time (log-normal links)."""
        sigma2 = math.log1p((self.std / self.mean) ** 2)
        return math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2)

    def cdf(self, t: np.ndarray) -> np.ndarray:
        """Probability that the transit takes at most ``t`` frames."""
        t = np.asarray(t, dtype=np.float64)
        if self.kind == "lognormal":
            mu, sigma = self.lognormal_params
            with np.errstate(divide="ignore"):
                z = (np.log(np.maximum(t, 0.0)) - mu) / sigma
            return np.where(t > 0, ndtr(z), 0.0)
        low = ndtr((1.0 - self.mean) / self.std)
        raw = (ndtr((t - self.mean) / self.std) - low) / (1.0 - low)
        return np.where(t >= 1.0, raw, 0.0)

    def pdf(self, t: np.ndarray) -> np.ndarray:
        """Density of the transit time at ``t`` frames (per frame)."""
        t = np.asarray(t, dtype=np.float64)
        if self.kind == "lognormal":
            mu, sigma = self.lognormal_params
            safe = np.where(t > 0, t, 1.0)
            dens = np.exp(-((np.log(safe) - mu) ** 2) / (2 * sigma**2)) / (
                safe * sigma * math.sqrt(2 * math.pi)
            )
            return np.where(t > 0, dens, 0.0)
        low = ndtr((1.0 - self.mean) / self.std)
        dens = np.exp(-(((t - self.mean) / self.std) ** 2) / 2) / (
            self.std * math.sqrt(2 * math.pi) * (1.0 - low)
        )
        return np.where(t >= 1.0, dens, 0.0)

    def quantile_upper(self, q: float) -> float:
        """A time (frames) that the transit stays below with probability at least ``q``."""
        high = self.mean + 12 * self.std
        while float(self.cdf(np.array([high]))[0]) < q:
            high *= 2
        low = 0.0
        for _ in range(60):
            mid = (low + high) / 2
            if float(self.cdf(np.array([mid]))[0]) < q:
                low = mid
            else:
                high = mid
        return high

    def sample(self, rng: np.random.Generator) -> int:
        """One transit time in whole frames (at least 1)."""
        if self.kind == "lognormal":
            mu, sigma = self.lognormal_params
            return max(1, int(round(rng.lognormal(mu, sigma))))
        while True:
            value = rng.normal(self.mean, self.std)
            if value >= 1.0:
                return int(round(value))

    def to_json(self) -> dict[str, Any]:
        """The link as written to ``ground_truth.json`` (``mu``/``sigma`` too for log-normal)."""
        data: dict[str, Any] = {
            "from": self.source,
            "to": self.target,
            "kind": self.kind,
            "mean": self.mean,
            "std": self.std,
        }
        if self.kind == "lognormal":
            data["mu"], data["sigma"] = self.lognormal_params
        return data


@dataclass(frozen=True)
class CameraGraph:
    """The directed camera network: cameras 1..C, their walking order and the links between them."""

    cameras: tuple[int, ...]
    order: tuple[int, ...]
    links: tuple[TransitLink, ...]

    def successors(self, cam: int) -> tuple[int, ...]:
        """Cameras reachable from ``cam`` in one step, ascending."""
        return tuple(sorted(link.target for link in self.links if link.source == cam))

    def link(self, source: int, target: int) -> TransitLink:
        """The link ``source → target`` (``KeyError`` when there is none)."""
        for link in self.links:
            if link.source == source and link.target == target:
                return link
        raise KeyError((source, target))

    def reachable(self) -> set[tuple[int, int]]:
        """Ordered pairs ``(i, j)``, i != j, such that some walk of any length leads from i to j."""
        pairs: set[tuple[int, int]] = set()
        for start in self.cameras:
            seen = {start}
            frontier = [start]
            while frontier:
                nxt = [j for i in frontier for j in self.successors(i) if j not in seen]
                seen.update(nxt)
                frontier = nxt
            pairs.update((start, j) for j in seen if j != start)
        return pairs


def _build_graph(config: SynthConfig, rng: np.random.Generator) -> CameraGraph:
    cameras = tuple(range(1, config.num_cameras + 1))
    order = tuple(int(c) for c in rng.permutation(cameras))
    count = len(order)
    pairs: list[tuple[int, int]] = []
    for pos in range(count - 1):
        pairs.append((pos, pos + 1))
        for skip in range(2, count - pos):
            if rng.random() < config.forward_skip_prob ** (skip - 1):
                pairs.append((pos, pos + skip))
    backward = [pos for pos in range(1, count - 1) if rng.random() < config.backward_prob]
    if count >= 3 and len(backward) == count - 2:
        # With every backward step present, the first camera would be reachable from everywhere;
        # dropping one keeps some ordered pairs unreachable (zero transit probability).
        backward.pop(int(rng.integers(len(backward))))
    # The last camera of the order always links back, so that every walk can take a second step.
    backward.append(count - 1)
    pairs.extend((pos, pos - 1) for pos in backward)
    pairs.sort(key=lambda p: (order[p[0]], order[p[1]]))
    links = []
    for src_pos, dst_pos in pairs:
        kind = config.transit_kinds[int(rng.integers(len(config.transit_kinds)))]
        mean = float(rng.uniform(*config.transit_mean_range))
        cv = float(rng.uniform(*config.transit_cv_range))
        links.append(
            TransitLink(
                source=order[src_pos],
                target=order[dst_pos],
                kind=kind,
                mean=round(mean, 3),
                std=round(mean * cv, 3),
            )
        )
    return CameraGraph(cameras=cameras, order=order, links=tuple(links))


def _walk(graph: CameraGraph, config: SynthConfig, rng: np.random.Generator) -> list[int]:
    """A person's cameras: uniform start, uniform target length, uniform unvisited next camera."""
    path = [graph.cameras[int(rng.integers(len(graph.cameras)))]]
    target_len = int(rng.integers(config.visits_range[0], config.visits_range[1] + 1))
    while len(path) < target_len:
        options = [c for c in graph.successors(path[-1]) if c not in path]
        if not options:
            break
        path.append(options[int(rng.integers(len(options)))])
    return path


def _enumerate_walks(
    graph: CameraGraph, visits_range: tuple[int, int]
) -> Iterator[tuple[tuple[int, ...], float]]:
    """Every walk :func:`_walk` can produce, with its probability (the probabilities sum to 1)."""
    lengths = range(visits_range[0], visits_range[1] + 1)

    def extend(path: tuple[int, ...], prob: float, target: int):
        options = [c for c in graph.successors(path[-1]) if c not in path]
        if len(path) >= target or not options:
            yield path, prob
            return
        for cam in options:
            yield from extend(path + (cam,), prob / len(options), target)

    merged: dict[tuple[int, ...], float] = {}
    for start in graph.cameras:
        for target in lengths:
            for path, prob in extend((start,), 1.0 / (len(graph.cameras) * len(lengths)), target):
                merged[path] = merged.get(path, 0.0) + prob
    yield from sorted(merged.items())


def _lookalike_separation(graph: CameraGraph, config: SynthConfig) -> float:
    """Frames between look-alikes' walks: past any plausible co-visit delay plus the margin."""
    upper = {(lk.source, lk.target): lk.quantile_upper(0.9995) for lk in graph.links}
    longest = max(
        sum(upper[(a, b)] for a, b in zip(path[:-1], path[1:], strict=True))
        for path, _ in _enumerate_walks(graph, config.visits_range)
    )
    return float(math.ceil(longest + config.lookalike_margin))


# ---------------------------------------------------------------------------------------------
# Appearance
# ---------------------------------------------------------------------------------------------

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Appearance:
    """What a person looks like; look-alikes share all of it up to a tiny jitter.

    Proportions are fractions of the person's height (``height`` is a fraction of the image height).
    """

    height: float
    build: float
    torso: float
    skin: Colour
    hair: Colour
    long_hair: bool
    top: Colour
    top_accent: Colour
    top_pattern: str
    top_period: float
    long_sleeves: bool
    bottom: Colour
    bottom_accent: Colour
    bottom_pattern: str
    bottom_period: float
    bottom_style: str
    shoes: Colour
    hat: Colour | None
    bag: str
    bag_colour: Colour
    bag_side: int

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (colours as lists)."""
        return json.loads(json.dumps(asdict(self)))


def _clip_colour(values: Sequence[float]) -> Colour:
    r, g, b = (int(min(255, max(0, round(v)))) for v in values)
    return r, g, b


def _random_colour(rng: np.random.Generator) -> Colour:
    if rng.random() < 0.25:
        level = float(rng.uniform(20, 235))
        return _clip_colour((level, level, level))
    r, g, b = colorsys.hsv_to_rgb(
        float(rng.random()), float(rng.uniform(0.35, 0.95)), float(rng.uniform(0.25, 0.95))
    )
    return _clip_colour((255 * r, 255 * g, 255 * b))


def _muted_colour(rng: np.random.Generator, value: tuple[float, float]) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(
        float(rng.random()), float(rng.uniform(0.03, 0.35)), float(rng.uniform(*value))
    )
    return _clip_colour((255 * r, 255 * g, 255 * b))


def _sample_appearance(rng: np.random.Generator) -> Appearance:
    skin = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))]
    hair = _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))]
    return Appearance(
        height=float(rng.uniform(0.78, 0.93)),
        build=float(rng.uniform(0.2, 0.3)),
        torso=float(rng.uniform(0.47, 0.55)),
        skin=_clip_colour(np.asarray(skin) + rng.uniform(-8, 8, size=3)),
        hair=_clip_colour(np.asarray(hair) + rng.uniform(-8, 8, size=3)),
        long_hair=bool(rng.random() < 0.3),
        top=_random_colour(rng),
        top_accent=_random_colour(rng),
        top_pattern=_PATTERNS[int(rng.integers(len(_PATTERNS)))],
        top_period=float(rng.uniform(0.025, 0.06)),
        long_sleeves=bool(rng.random() < 0.5),
        bottom=_random_colour(rng),
        bottom_accent=_random_colour(rng),
        bottom_pattern=_PATTERNS[int(rng.integers(len(_PATTERNS)))]
        if rng.random() < 0.4
        else "solid",
        bottom_period=float(rng.uniform(0.03, 0.07)),
        bottom_style=_BOTTOM_STYLES[int(rng.integers(len(_BOTTOM_STYLES)))],
        shoes=_clip_colour(
            rng.uniform(10, 90, size=3) if rng.random() < 0.7 else rng.uniform(150, 250, size=3)
        ),
        hat=_random_colour(rng) if rng.random() < 0.2 else None,
        bag=_BAGS[int(rng.integers(len(_BAGS)))],
        bag_colour=_random_colour(rng),
        bag_side=1 if rng.random() < 0.5 else -1,
    )


def _jitter_appearance(base: Appearance, rng: np.random.Generator, amount: float) -> Appearance:
    """A look-alike of ``base``: the same clothes and build, colours and proportions nudged."""

    def colour(c: Colour | None) -> Colour | None:
        if c is None:
            return None
        return _clip_colour(np.asarray(c) + rng.uniform(-amount, amount, size=3) * 255)

    def scale(value: float) -> float:
        return float(value * (1 + rng.uniform(-amount, amount)))

    return Appearance(
        height=scale(base.height),
        build=scale(base.build),
        torso=scale(base.torso),
        skin=colour(base.skin),
        hair=colour(base.hair),
        long_hair=base.long_hair,
        top=colour(base.top),
        top_accent=colour(base.top_accent),
        top_pattern=base.top_pattern,
        top_period=base.top_period,
        long_sleeves=base.long_sleeves,
        bottom=colour(base.bottom),
        bottom_accent=colour(base.bottom_accent),
        bottom_pattern=base.bottom_pattern,
        bottom_period=base.bottom_period,
        bottom_style=base.bottom_style,
        shoes=colour(base.shoes),
        hat=colour(base.hat),
        bag=base.bag,
        bag_colour=colour(base.bag_colour),
        bag_side=base.bag_side,
    )


@dataclass(frozen=True)
class _CameraLook:
    """What a camera does to every image: its background, colour cast, zoom, blur and noise."""

    background: np.ndarray
    gains: np.ndarray
    scale: float
    blur: float
    noise: float


def _camera_look(config: SynthConfig, rng: np.random.Generator) -> _CameraLook:
    height, width = config.image_size
    bg_width = 2 * width
    wall = np.asarray(_muted_colour(rng, (0.35, 0.9)), dtype=np.float32)
    floor = np.asarray(_muted_colour(rng, (0.2, 0.7)), dtype=np.float32)
    horizon = int(height * rng.uniform(0.45, 0.7))
    canvas = np.empty((height, bg_width, 3), dtype=np.float32)
    canvas[:horizon] = wall
    canvas[horizon:] = floor
    shade = np.linspace(rng.uniform(0.85, 1.1), rng.uniform(0.85, 1.1), height, dtype=np.float32)
    canvas *= shade[:, None, None]
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        x0 = rng.uniform(0, bg_width)
        x1 = x0 + rng.uniform(0.1, 0.4) * width
        y0 = rng.uniform(0.05, 0.6) * horizon
        draw.rectangle((x0, y0, x1, horizon), fill=_muted_colour(rng, (0.2, 0.95)))
    for _ in range(int(rng.integers(1, 4))):
        y = rng.uniform(horizon, height)
        draw.line(
            (0, y, bg_width, y + rng.uniform(-0.1, 0.1) * height),
            fill=_muted_colour(rng, (0.2, 0.8)),
            width=max(1, height // 64),
        )
    texture = rng.normal(0, 6, size=(height, bg_width, 3))
    background = np.clip(np.asarray(image, dtype=np.float32) + texture, 0, 255).astype(np.uint8)
    gains = 1 + rng.uniform(-config.colour_cast, config.colour_cast, size=3)
    return _CameraLook(
        background=background,
        gains=(gains * rng.uniform(*config.brightness_range)).astype(np.float32),
        scale=float(rng.uniform(0.88, 1.0)),
        blur=float(rng.uniform(0.0, 0.4)),
        noise=float(rng.uniform(*config.noise_range)),
    )


def _pattern_image(
    size: tuple[int, int],
    origin: tuple[float, float],
    colour: Colour,
    accent: Colour,
    pattern: str,
    period: float,
) -> Image.Image:
    height, width = size
    base = np.empty((height, width, 3), dtype=np.uint8)
    base[:] = colour
    if pattern != "solid":
        period = max(period, 2.0)
        rows = np.floor((np.arange(height) - origin[1]) / period).astype(np.int64)[:, None]
        cols = np.floor((np.arange(width) - origin[0]) / period).astype(np.int64)[None, :]
        if pattern == "stripes":
            accent_mask = np.broadcast_to(rows % 2 == 1, (height, width))
        elif pattern == "vstripes":
            accent_mask = np.broadcast_to(cols % 2 == 1, (height, width))
        else:
            accent_mask = (rows + cols) % 2 == 1
        base[accent_mask] = accent
    return Image.fromarray(base)


def _lerp(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t


def _draw_person(
    canvas: Image.Image,
    app: Appearance,
    centre_x: float,
    feet_y: float,
    person_height: float,
    side: int,
    stride: float,
    swing: float,
) -> None:
    """Draw one person onto ``canvas``; ``side`` (+1/-1) mirrors the bag, as when facing the other way."""
    size = (canvas.height, canvas.width)
    draw = ImageDraw.Draw(canvas)
    ph = person_height
    top = feet_y - ph
    head_h, head_w = 0.13 * ph, 0.095 * ph
    neck_y = top + 0.92 * head_h
    shoulder_y = neck_y + 0.02 * ph
    waist_y = top + app.torso * ph
    ankle_y = feet_y - 0.03 * ph
    shoulder_w = app.build * ph
    hip_w = 0.85 * shoulder_w
    leg_w = 0.46 * hip_w
    cx = centre_x

    feet = (cx - 0.045 * ph - stride / 2, cx + 0.045 * ph + stride / 2)
    legs = [
        [
            (cx - hip_w / 2, waist_y),
            (cx, waist_y),
            (feet[0] + leg_w / 2, ankle_y),
            (feet[0] - leg_w / 2, ankle_y),
        ],
        [
            (cx, waist_y),
            (cx + hip_w / 2, waist_y),
            (feet[1] + leg_w / 2, ankle_y),
            (feet[1] - leg_w / 2, ankle_y),
        ],
    ]
    hand_y = top + 0.56 * ph
    arm_w = 0.2 * shoulder_w
    arms = []
    for sign, arm_swing in ((-1, swing), (1, -swing)):
        outer = cx + sign * (shoulder_w / 2 + arm_w)
        inner = cx + sign * shoulder_w / 2
        hand_x = cx + sign * (shoulder_w / 2 + 0.3 * arm_w) + arm_swing
        arms.append(
            [
                (outer, shoulder_y),
                (inner, shoulder_y),
                (hand_x - sign * arm_w / 2, hand_y),
                (hand_x + sign * arm_w / 2, hand_y),
            ]
        )

    # Skin first: whatever clothing does not cover shows through.
    for poly in legs + arms:
        draw.polygon(poly, fill=app.skin)
    for foot_x in feet:
        draw.rectangle(
            (foot_x - 0.6 * leg_w, ankle_y, foot_x + 0.7 * leg_w, feet_y), fill=app.shoes
        )

    bottom_mask = Image.new("L", (size[1], size[0]), 0)
    bottom_draw = ImageDraw.Draw(bottom_mask)
    if app.bottom_style == "trousers":
        for poly in legs:
            bottom_draw.polygon(poly, fill=255)
    elif app.bottom_style == "shorts":
        for poly in legs:
            knee = 0.45
            bottom_draw.polygon(
                [poly[0], poly[1], _lerp(poly[1], poly[2], knee), _lerp(poly[0], poly[3], knee)],
                fill=255,
            )
    else:
        hem_y = waist_y + 0.55 * (ankle_y - waist_y)
        bottom_draw.polygon(
            [
                (cx - 0.55 * hip_w, waist_y),
                (cx + 0.55 * hip_w, waist_y),
                (cx + 0.8 * hip_w, hem_y),
                (cx - 0.8 * hip_w, hem_y),
            ],
            fill=255,
        )
    canvas.paste(
        _pattern_image(
            size,
            (cx, waist_y),
            app.bottom,
            app.bottom_accent,
            app.bottom_pattern,
            app.bottom_period * ph,
        ),
        (0, 0),
        bottom_mask,
    )

    top_mask = Image.new("L", (size[1], size[0]), 0)
    top_draw = ImageDraw.Draw(top_mask)
    top_draw.polygon(
        [
            (cx - 0.3 * shoulder_w, neck_y),
            (cx + 0.3 * shoulder_w, neck_y),
            (cx + shoulder_w / 2, shoulder_y),
            (cx + hip_w / 2, waist_y + 0.02 * ph),
            (cx - hip_w / 2, waist_y + 0.02 * ph),
            (cx - shoulder_w / 2, shoulder_y),
        ],
        fill=255,
    )
    sleeve = 0.9 if app.long_sleeves else 0.4
    for poly in arms:
        top_draw.polygon(
            [poly[0], poly[1], _lerp(poly[1], poly[2], sleeve), _lerp(poly[0], poly[3], sleeve)],
            fill=255,
        )
    canvas.paste(
        _pattern_image(
            size, (cx, neck_y), app.top, app.top_accent, app.top_pattern, app.top_period * ph
        ),
        (0, 0),
        top_mask,
    )

    bag_side = side * app.bag_side
    if app.bag == "backpack":
        centre = cx + bag_side * 0.08 * shoulder_w
        draw.rectangle(
            (
                centre - 0.32 * shoulder_w,
                shoulder_y + 0.03 * ph,
                centre + 0.32 * shoulder_w,
                waist_y - 0.04 * ph,
            ),
            fill=app.bag_colour,
        )
    elif app.bag == "shoulder":
        bag_x = cx + bag_side * (hip_w / 2 + 0.02 * ph)
        draw.line(
            (cx - bag_side * 0.35 * shoulder_w, shoulder_y, bag_x, waist_y - 0.06 * ph),
            fill=app.bag_colour,
            width=max(1, round(0.012 * ph)),
        )
        draw.rectangle(
            (bag_x - 0.05 * ph, waist_y - 0.06 * ph, bag_x + 0.05 * ph, waist_y + 0.07 * ph),
            fill=app.bag_colour,
        )
    elif app.bag == "hand":
        hand_x = arms[0 if bag_side < 0 else 1][2][0]
        draw.rectangle(
            (hand_x - 0.035 * ph, hand_y - 0.01 * ph, hand_x + 0.035 * ph, hand_y + 0.07 * ph),
            fill=app.bag_colour,
        )

    head = (cx - head_w / 2, top, cx + head_w / 2, top + head_h)
    draw.ellipse(
        (
            head[0] - 0.05 * head_w,
            head[1] - 0.03 * head_h,
            head[2] + 0.05 * head_w,
            head[3] - 0.2 * head_h,
        ),
        fill=app.hair,
    )
    if app.long_hair:
        draw.rectangle(
            (cx - 0.55 * head_w, top + 0.4 * head_h, cx + 0.55 * head_w, neck_y + 0.1 * ph),
            fill=app.hair,
        )
    draw.ellipse(
        (cx - 0.42 * head_w, top + 0.3 * head_h, cx + 0.42 * head_w, top + head_h), fill=app.skin
    )
    if app.hat is not None:
        draw.ellipse(
            (cx - 0.6 * head_w, top - 0.05 * head_h, cx + 0.6 * head_w, top + 0.4 * head_h),
            fill=app.hat,
        )
        draw.rectangle(
            (cx - 0.78 * head_w, top + 0.28 * head_h, cx + 0.78 * head_w, top + 0.38 * head_h),
            fill=app.hat,
        )


def _render(
    config: SynthConfig,
    look: _CameraLook,
    app: Appearance | None,
    rng: np.random.Generator,
    junk: bool = False,
) -> Image.Image:
    """One camera image of a person (or, for junk, of a fragment or of background only)."""
    height, width = config.image_size
    offset = int(rng.integers(0, look.background.shape[1] - width + 1))
    canvas = Image.fromarray(look.background[:, offset : offset + width].copy())
    if app is not None:
        scale = look.scale * (1 + rng.uniform(-config.scale_jitter, config.scale_jitter))
        person_height = app.height * height * scale
        feet_y = height * (0.97 + rng.uniform(-0.02, 0.01))
        centre_x = width * (0.5 + rng.uniform(-0.06, 0.06))
        if junk:
            # A bad detection: the box holds only a part of a body, badly placed.
            person_height *= rng.uniform(1.6, 2.4)
            feet_y += rng.uniform(0.2, 0.8) * person_height
            centre_x += rng.choice((-1, 1)) * rng.uniform(0.2, 0.45) * width
        _draw_person(
            canvas,
            app,
            centre_x,
            feet_y,
            person_height,
            side=1 if rng.random() < 0.5 else -1,
            stride=float(rng.uniform(0, 0.07)) * person_height,
            swing=float(rng.uniform(-0.03, 0.03)) * person_height,
        )
    if rng.random() < config.occlusion_prob:
        draw = ImageDraw.Draw(canvas)
        colour = _muted_colour(rng, (0.1, 0.9))
        if rng.random() < 0.5:
            draw.rectangle((0, height * (1 - rng.uniform(0.15, 0.35)), width, height), fill=colour)
        else:
            occluder_w = rng.uniform(0.2, 0.35) * width
            x0 = 0.0 if rng.random() < 0.5 else width - occluder_w
            draw.rectangle((x0, 0, x0 + occluder_w, height), fill=colour)
    blur = look.blur
    if rng.random() < config.blur_prob:
        blur += float(rng.uniform(0, config.blur_max))
    blur *= height / 128
    if blur > 0.05:
        canvas = canvas.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(canvas, dtype=np.float32) * (look.gains * rng.uniform(0.94, 1.06))
    pixels += rng.normal(0, look.noise, size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


# ---------------------------------------------------------------------------------------------
# People, visits and images
# ---------------------------------------------------------------------------------------------


@dataclass
class _Person:
    pid: int
    split: str
    group: int
    appearance: Appearance
    cameras: list[int]
    centres: list[int] = field(default_factory=list)
    box_offsets: list[np.ndarray] = field(default_factory=list)

    @property
    def span(self) -> int:
        return self.centres[-1] - self.centres[0]


@dataclass(frozen=True)
class _ImageSpec:
    split: str
    pid: int
    camera: int
    time: int
    appearance: Appearance | None
    visit: int
    junk: bool = False


def _box_offsets(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Frame offsets of a visit's boxes around its centre (their mean is within half a frame of 0)."""
    count = int(rng.integers(config.boxes_per_visit_range[0], config.boxes_per_visit_range[1] + 1))
    gaps = rng.integers(config.box_gap_range[0], config.box_gap_range[1] + 1, size=count - 1)
    raw = np.concatenate([[0], np.cumsum(gaps)])
    return raw - int(round(float(raw.mean())))


def _make_people(
    config: SynthConfig, graph: CameraGraph, separation: float, rng: np.random.Generator
) -> list[_Person]:
    pids = np.arange(1, config.num_ids + 1)
    shuffled = rng.permutation(pids)
    num_train = config.num_ids // 2
    split_ids = {"train": np.sort(shuffled[:num_train]), "test": np.sort(shuffled[num_train:])}

    people: list[_Person] = []
    group_members: list[list[_Person]] = []
    for split in ("train", "test"):
        ids = rng.permutation(split_ids[split])
        num_lookalike = int(round(config.lookalike_fraction * len(ids)))
        start = 0
        while start < num_lookalike:
            chunk = ids[start : min(start + config.lookalike_group_size, num_lookalike)]
            start += len(chunk)
            if len(chunk) < 2:
                people.append(_Person(int(chunk[0]), split, -1, _sample_appearance(rng), []))
                continue
            base = _sample_appearance(rng)
            members = [
                _Person(
                    int(pid),
                    split,
                    len(group_members),
                    _jitter_appearance(base, rng, config.lookalike_jitter),
                    [],
                )
                for pid in chunk
            ]
            group_members.append(members)
            people.extend(members)
        for pid in ids[num_lookalike:]:
            people.append(_Person(int(pid), split, -1, _sample_appearance(rng), []))
    people.sort(key=lambda p: p.pid)

    t_min = config.box_gap_range[1] * config.boxes_per_visit_range[1]
    for person in people:
        person.cameras = _walk(graph, config, rng)
        centres = [0]
        for src, dst in zip(person.cameras[:-1], person.cameras[1:], strict=True):
            centres.append(centres[-1] + graph.link(src, dst).sample(rng))
        person.centres = centres
        person.box_offsets = [_box_offsets(config, rng) for _ in person.cameras]

    in_group = {p.pid for members in group_members for p in members}
    for person in people:
        if person.pid in in_group:
            continue
        start = int(rng.integers(t_min, max(t_min + 1, config.time_horizon - person.span)))
        person.centres = [c + start for c in person.centres]
    for members in group_members:
        # Look-alikes walk one after another, each at least `separation` frames after the previous
        # one left, so that no plausible transit links two of them.
        starts = [0]
        for prev in members[:-1]:
            starts.append(
                starts[-1]
                + prev.span
                + int(separation)
                + int(rng.integers(0, int(separation // 4) + 1))
            )
        total = starts[-1] + members[-1].span
        offset = int(rng.integers(t_min, max(t_min + 1, config.time_horizon - total)))
        for member, start in zip(members, starts, strict=True):
            member.centres = [c + offset + start for c in member.centres]
    latest = max(p.centres[-1] + int(p.box_offsets[-1].max()) for p in people)
    if latest > MAX_FRAME:
        raise ReIDError(
            f"look-alike groups of {config.lookalike_group_size} need times up to {latest} "
            f"frames, more than the {MAX_FRAME} a Market name holds; lower lookalike_group_size, "
            "transit_mean_range or time_horizon"
        )
    return people


def _image_specs(
    config: SynthConfig, graph: CameraGraph, people: list[_Person], rng: np.random.Generator
) -> list[_ImageSpec]:
    specs: list[_ImageSpec] = []
    for person in people:
        for visit, (cam, centre, offsets) in enumerate(
            zip(person.cameras, person.centres, person.box_offsets, strict=True)
        ):
            times = centre + offsets
            query_box = int(rng.integers(len(times))) if person.split == "test" else -1
            for box, t in enumerate(times):
                split = (
                    "train"
                    if person.split == "train"
                    else "query"
                    if box == query_box
                    else "gallery"
                )
                specs.append(_ImageSpec(split, person.pid, cam, int(t), person.appearance, visit))
    num_gallery = sum(s.split == "gallery" for s in specs)
    horizon = config.time_horizon
    num_distractors = int(round(config.distractor_fraction * num_gallery))
    distractors: list[_ImageSpec] = []
    while len(distractors) < num_distractors:
        app = _sample_appearance(rng)
        cam = graph.cameras[int(rng.integers(len(graph.cameras)))]
        centre = int(rng.integers(1_000, horizon))
        offsets = _box_offsets(config, rng)[: int(rng.integers(1, 4))]
        distractors.extend(_ImageSpec("gallery", 0, cam, int(centre + o), app, -1) for o in offsets)
    specs.extend(distractors[:num_distractors])
    for _ in range(int(round(config.junk_fraction * num_gallery))):
        cam = graph.cameras[int(rng.integers(len(graph.cameras)))]
        app = _sample_appearance(rng) if rng.random() < 0.7 else None
        specs.append(
            _ImageSpec("gallery", -1, cam, int(rng.integers(1_000, horizon)), app, -1, junk=True)
        )
    return specs


def _file_names(specs: list[_ImageSpec]) -> list[str]:
    """Market names; the box index counts detections in the same camera frame, as in Market."""
    cams = np.asarray([s.camera for s in specs], dtype=np.int64)
    times = np.asarray([s.time for s in specs], dtype=np.int64)
    sessions, frames = market_session_frame(cams, times)
    in_frame: dict[tuple[int, int], int] = {}
    names = []
    for spec, session, frame in zip(specs, sessions, frames, strict=True):
        key = (spec.camera, spec.time)
        in_frame[key] = in_frame.get(key, 0) + 1
        pid = "-1" if spec.pid == -1 else f"{spec.pid:04d}"
        names.append(
            f"{pid}_c{spec.camera}s{int(session)}_{int(frame):06d}_{in_frame[key]:02d}.jpg"
        )
    return names


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


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
        >>> summary = generate_network("/tmp/net", num_ids=40, num_cameras=4, image_size=(64, 32))
        >>> sorted(p.name for p in summary.root.iterdir())  # doctest: +SKIP
        ['bounding_box_test', 'bounding_box_train', 'ground_truth.json', 'query']
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

    graph = _build_graph(cfg, np.random.default_rng([cfg.seed, _STREAM_GRAPH]))
    separation = _lookalike_separation(graph, cfg)
    people = _make_people(cfg, graph, separation, np.random.default_rng([cfg.seed, _STREAM_PEOPLE]))
    specs = _image_specs(cfg, graph, people, np.random.default_rng([cfg.seed, _STREAM_PEOPLE, 1]))
    names = _file_names(specs)
    looks_rng = np.random.default_rng([cfg.seed, _STREAM_CAMERA_LOOKS])
    looks = {cam: _camera_look(cfg, looks_rng) for cam in graph.cameras}

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
                rng = np.random.default_rng([cfg.seed, _STREAM_IMAGE, index])
                image = _render(cfg, looks[spec.camera], spec.appearance, rng, junk=spec.junk)
                image.save(
                    staging / MARKET_FOLDERS[spec.split] / name,
                    format="JPEG",
                    quality=cfg.jpeg_quality,
                )
                bar.update()
        ground_truth = _ground_truth(cfg, graph, separation, people, specs, names)
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


def _ground_truth(
    config: SynthConfig,
    graph: CameraGraph,
    separation: float,
    people: list[_Person],
    specs: list[_ImageSpec],
    names: list[str],
) -> dict[str, Any]:
    reachable = graph.reachable()
    visits = []
    for person in people:
        for order, (cam, centre, offsets) in enumerate(
            zip(person.cameras, person.centres, person.box_offsets, strict=True)
        ):
            times = centre + offsets
            visits.append(
                {
                    "pid": person.pid,
                    "split": person.split,
                    "order": order,
                    "camera": cam,
                    "mean_time": float(times.mean()),
                    "first_time": int(times.min()),
                    "last_time": int(times.max()),
                    "num_boxes": len(times),
                }
            )
    return {
        "format": GROUND_TRUTH_FORMAT,
        "version": GROUND_TRUTH_VERSION,
        "seed": config.seed,
        "config": config.to_json(),
        "layout": "market1501",
        "folders": dict(MARKET_FOLDERS),
        "cameras": list(graph.cameras),
        "camera_order": list(graph.order),
        "links": [link.to_json() for link in graph.links],
        "unreachable": [
            [i, j]
            for i in graph.cameras
            for j in graph.cameras
            if i != j and (i, j) not in reachable
        ],
        "conventions": {
            "time_unit": "frame",
            "bin_width": config.bin_width,
            "delta": "|mean time of the later visit - mean time of the earlier visit|",
            "bin": "floor(delta / bin_width)",
            "pair": "(later camera, earlier camera)",
            "transit": "time between the mean times of consecutive visits of one walk",
        },
        "lookalike_separation": separation,
        "identities": [
            {
                "pid": p.pid,
                "split": p.split,
                "group": p.group,
                "cameras": p.cameras,
                "appearance": p.appearance.to_json(),
            }
            for p in people
        ],
        "visits": visits,
        "images": {
            "path": [
                f"{MARKET_FOLDERS[s.split]}/{name}" for s, name in zip(specs, names, strict=True)
            ],
            "pid": [s.pid for s in specs],
            "camera": [s.camera for s in specs],
            "time": [s.time for s in specs],
            "split": [s.split for s in specs],
            "visit": [s.visit for s in specs],
        },
    }


def load_ground_truth(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``ground_truth.json`` (or the network folder holding it) and check its format.

    Example:
        >>> gt = load_ground_truth("/tmp/net")  # doctest: +SKIP
        >>> gt["cameras"]
        [1, 2, 3, 4]
    """
    path = Path(path)
    if path.is_dir():
        path = path / GROUND_TRUTH_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReIDError(
            f"{path}: no such file (expected the {GROUND_TRUTH_NAME} of 'mtmct-reid synth')"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReIDError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != GROUND_TRUTH_FORMAT:
        raise ReIDError(f"{path}: field 'format' is not '{GROUND_TRUTH_FORMAT}'")
    if data.get("version") != GROUND_TRUTH_VERSION:
        raise ReIDError(
            f"{path}: field 'version' is {data.get('version')!r}, expected {GROUND_TRUTH_VERSION}"
        )
    for key in ("cameras", "links", "config", "visits"):
        if key not in data:
            raise ReIDError(f"{path}: missing field '{key}'")
    return data


def _graph_from_ground_truth(data: Mapping[str, Any]) -> CameraGraph:
    links = tuple(
        TransitLink(
            int(lk["from"]), int(lk["to"]), str(lk["kind"]), float(lk["mean"]), float(lk["std"])
        )
        for lk in data["links"]
    )
    return CameraGraph(
        cameras=tuple(int(c) for c in data["cameras"]),
        order=tuple(int(c) for c in data.get("camera_order", data["cameras"])),
        links=links,
    )


def transit_ground_truth(
    ground_truth: str | os.PathLike | Mapping[str, Any],
    deltas: np.ndarray,
    *,
    hops: str = "all",
    grid_step: float = 10.0,
) -> dict[tuple[int, int], np.ndarray]:
    """The true density of the time between two cameras' visits, per ordered pair of cameras.

    Keys are ``(later camera, earlier camera)``, the indexing of the transit-time model, for every
    ordered pair of distinct cameras (all zeros where the pair never occurs).

    ``hops="all"`` (default) is what st-ReID's histogram estimates: every two cameras of one walk count,
    so ``(j, i)`` mixes the direct link ``i → j`` with walks ``i → k → j`` (densities of sums of transit
    times, by convolution), weighted by how often the walk process produces each. It integrates to 1
    over Δ for every pair that occurs. ``hops="direct"`` is the link's own density, zero without a link.

    Args:
        ground_truth: ``ground_truth.json``, the network folder, or the loaded dictionary.
        deltas: time differences in frames (any shape); negative ones have density 0.
        hops: ``"all"`` or ``"direct"``.
        grid_step: frames per step of the numerical convolution (``hops="all"``).

    Returns:
        ``{(later, earlier): density per frame, shaped like deltas}``. Multiply by a bin width to
        compare with a histogram normalised to sum 1.

    Example:
        >>> dens = transit_ground_truth("/tmp/net", np.arange(0, 60_000, 100.0))  # doctest: +SKIP
        >>> float(dens[(2, 1)].sum() * 100)  # ~1 when cameras 1 then 2 occur in walks
        0.99...
    """
    data = ground_truth if isinstance(ground_truth, Mapping) else load_ground_truth(ground_truth)
    if hops not in ("all", "direct"):
        raise ReIDError(f"transit_ground_truth: hops={hops!r} (expected 'all' or 'direct')")
    if grid_step <= 0:
        raise ReIDError(f"transit_ground_truth: grid_step={grid_step} (expected > 0 frames)")
    graph = _graph_from_ground_truth(data)
    deltas = np.asarray(deltas, dtype=np.float64)
    result = {
        (later, earlier): np.zeros(deltas.shape)
        for later in graph.cameras
        for earlier in graph.cameras
        if later != earlier
    }
    if hops == "direct":
        for link in graph.links:
            result[(link.target, link.source)] = link.pdf(deltas)
        return result

    visits_range = tuple(int(v) for v in data["config"]["visits_range"])
    walks = list(_enumerate_walks(graph, visits_range))  # type: ignore[arg-type]
    upper = {(lk.source, lk.target): lk.quantile_upper(1 - 1e-9) for lk in graph.links}
    longest = max(sum(upper[(a, b)] for a, b in zip(p[:-1], p[1:], strict=True)) for p, _ in walks)
    extent = max(longest, float(deltas.max(initial=0.0)))
    steps = int(math.ceil(extent / grid_step)) + 2
    grid = np.arange(steps) * grid_step
    edges = np.concatenate([[0.0], (np.arange(steps) + 0.5) * grid_step])
    # Probability mass of each grid cell: sums of such discretised transits convolve exactly.
    masses = {key: np.diff(graph.link(*key).cdf(edges)) for key in upper}
    sum_cache: dict[tuple[int, ...], np.ndarray] = {}

    def mass_of(path: tuple[int, ...]) -> np.ndarray:
        if path not in sum_cache:
            first = masses[(path[0], path[1])]
            if len(path) == 2:
                sum_cache[path] = first
            else:
                rest = mass_of(path[1:])
                # FFT round-off can leave tiny negative masses; a density is never negative.
                sum_cache[path] = np.clip(fftconvolve(first, rest)[:steps], 0.0, None)
        return sum_cache[path]

    mixtures: dict[tuple[int, int], np.ndarray] = {}
    weights: dict[tuple[int, int], float] = {}
    for path, prob in walks:
        for a in range(len(path)):
            for b in range(a + 1, len(path)):
                key = (path[b], path[a])
                mixtures[key] = mixtures.get(key, 0.0) + prob * mass_of(path[a : b + 1])
                weights[key] = weights.get(key, 0.0) + prob
    for key, mass in mixtures.items():
        density = mass / (weights[key] * grid_step)
        # The first cell spans only half a step: [0, step/2).
        density[0] *= 2
        values = np.interp(deltas, grid, density, left=0.0, right=0.0)
        result[key] = np.where(deltas >= 0, values, 0.0)
    return result
