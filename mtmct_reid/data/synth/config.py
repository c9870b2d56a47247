"""Every knob of the synthetic network, its limits, and the random streams its stages draw from."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from mtmct_reid.errors import ReIDError

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
#: The largest image (height, width): people crops, not photographs; larger would only cost memory
#: (each camera's background is drawn at twice the width, in float32).
MAX_IMAGE_SIZE = (1024, 512)
#: The most identities a network may have (about 15 images each; more only fills the disk).
MAX_IDS = 20_000

#: Transit-time distribution families a camera link can draw from.
TRANSIT_KINDS = ("lognormal", "gaussian")

# Independent random streams, so that adding draws to one stage never changes another stage's output.
# A renderer of something else (video frames, say) takes a stream number of its own.
STREAM_GRAPH, STREAM_PEOPLE, STREAM_CAMERA_LOOKS, STREAM_IMAGE = 1, 2, 3, 4


def _is_int(value: Any) -> bool:
    return (
        isinstance(value, (int, np.integer))
        and not isinstance(value, (bool, np.bool_))
        and -(2**63) <= value < 2**63
    )


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(value)
    )


def stream(seed: int, *keys: int) -> np.random.Generator:
    """The random generator of one stage (and item) of the network drawn from ``seed``.

    Args:
        seed: the network's seed.
        keys: the stage (``STREAM_*``) and, for per-item streams, the item's index.

    Example:
        >>> float(stream(0, STREAM_IMAGE, 5).random()) == float(stream(0, STREAM_IMAGE, 5).random())
        True
    """
    return np.random.default_rng([seed, *keys])


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

        for spec in fields(self):
            value, default = getattr(self, spec.name), spec.default
            if spec.name == "transit_kinds":
                ok = isinstance(value, tuple) and all(isinstance(k, str) for k in value)
                expected = "expected a tuple of names"
            elif isinstance(default, tuple):
                kind = _is_int if isinstance(default[0], int) else _is_real
                ok = isinstance(value, tuple) and len(value) == 2 and all(kind(v) for v in value)
                expected = "expected " + (
                    "(height, width)" if spec.name == "image_size" else "(min, max)"
                )
                expected += " of integers" if kind is _is_int else " of finite numbers"
            elif isinstance(default, int):
                ok, expected = _is_int(value), "expected an integer within int64"
            else:
                ok, expected = _is_real(value), "expected a finite number"
            if not ok:
                raise bad(spec.name, expected)
        if not 2 <= self.num_cameras <= MAX_CAMERAS:
            raise bad(
                "num_cameras", f"expected 2..{MAX_CAMERAS}: Market names hold one camera digit"
            )
        if not 4 <= self.num_ids <= MAX_IDS:
            raise bad(
                "num_ids",
                f"expected at least 4 (two train and two test identities), at most {MAX_IDS}",
            )
        if not 0 <= self.seed < 2**63:
            raise bad("seed", "expected a non-negative integer")
        height, width = self.image_size
        if not (
            MIN_IMAGE_SIZE[0] <= height <= MAX_IMAGE_SIZE[0]
            and MIN_IMAGE_SIZE[1] <= width <= MAX_IMAGE_SIZE[1]
        ):
            raise bad(
                "image_size",
                f"expected (height, width) of at least {MIN_IMAGE_SIZE[0]}x{MIN_IMAGE_SIZE[1]} "
                f"and at most {MAX_IMAGE_SIZE[0]}x{MAX_IMAGE_SIZE[1]}",
            )
        check_range("visits_range", 2)
        check_range("boxes_per_visit_range", 2, 50)
        check_range("box_gap_range", 1, 10_000)
        check_range("transit_mean_range", 1.0, MAX_FRAME)
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
        if not 0 <= self.lookalike_margin <= MAX_FRAME:
            raise bad("lookalike_margin", f"expected 0..{MAX_FRAME} frames")
        if not 0 <= self.blur_max <= 10:
            raise bad("blur_max", "expected 0..10 pixels")
        if not 1 <= self.jpeg_quality <= 95:
            raise bad("jpeg_quality", "expected 1..95")
        if not 1 <= self.bin_width <= MAX_FRAME:
            raise bad("bin_width", f"expected a positive number of frames, at most {MAX_FRAME}")

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
