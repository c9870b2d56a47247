"""What people look like: body proportions, clothing colours and patterns, bags and hats.

Look-alikes share all of it up to a tiny jitter (:func:`jitter_appearance`).
"""

from __future__ import annotations

import colorsys
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

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


def clip_colour(values: Sequence[float]) -> Colour:
    """Round and clip three channel values to an RGB colour."""
    r, g, b = (int(min(255, max(0, round(v)))) for v in values)
    return r, g, b


def random_colour(rng: np.random.Generator) -> Colour:
    """A clothing colour: a grey one time in four, else a saturated hue."""
    if rng.random() < 0.25:
        level = float(rng.uniform(20, 235))
        return clip_colour((level, level, level))
    r, g, b = colorsys.hsv_to_rgb(
        float(rng.random()), float(rng.uniform(0.35, 0.95)), float(rng.uniform(0.25, 0.95))
    )
    return clip_colour((255 * r, 255 * g, 255 * b))


def muted_colour(rng: np.random.Generator, value: tuple[float, float]) -> Colour:
    """A desaturated colour (walls, floors, occluders) with HSV value drawn from ``value``."""
    r, g, b = colorsys.hsv_to_rgb(
        float(rng.random()), float(rng.uniform(0.03, 0.35)), float(rng.uniform(*value))
    )
    return clip_colour((255 * r, 255 * g, 255 * b))


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """A new person's appearance.

    Example:
        >>> app = sample_appearance(np.random.default_rng(0))
        >>> app == sample_appearance(np.random.default_rng(0)), 0.78 <= app.height <= 0.93
        (True, True)
    """
    skin = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))]
    hair = _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))]
    return Appearance(
        height=float(rng.uniform(0.78, 0.93)),
        build=float(rng.uniform(0.2, 0.3)),
        torso=float(rng.uniform(0.47, 0.55)),
        skin=clip_colour(np.asarray(skin) + rng.uniform(-8, 8, size=3)),
        hair=clip_colour(np.asarray(hair) + rng.uniform(-8, 8, size=3)),
        long_hair=bool(rng.random() < 0.3),
        top=random_colour(rng),
        top_accent=random_colour(rng),
        top_pattern=_PATTERNS[int(rng.integers(len(_PATTERNS)))],
        top_period=float(rng.uniform(0.025, 0.06)),
        long_sleeves=bool(rng.random() < 0.5),
        bottom=random_colour(rng),
        bottom_accent=random_colour(rng),
        bottom_pattern=_PATTERNS[int(rng.integers(len(_PATTERNS)))]
        if rng.random() < 0.4
        else "solid",
        bottom_period=float(rng.uniform(0.03, 0.07)),
        bottom_style=_BOTTOM_STYLES[int(rng.integers(len(_BOTTOM_STYLES)))],
        shoes=clip_colour(
            rng.uniform(10, 90, size=3) if rng.random() < 0.7 else rng.uniform(150, 250, size=3)
        ),
        hat=random_colour(rng) if rng.random() < 0.2 else None,
        bag=_BAGS[int(rng.integers(len(_BAGS)))],
        bag_colour=random_colour(rng),
        bag_side=1 if rng.random() < 0.5 else -1,
    )


def jitter_appearance(base: Appearance, rng: np.random.Generator, amount: float) -> Appearance:
    """A look-alike of ``base``: the same clothes and build, colours and proportions nudged.

    Args:
        base: the group's appearance.
        rng: random stream.
        amount: colour jitter as a fraction of 255, and relative jitter of the proportions.
    """

    def colour(c: Colour | None) -> Colour | None:
        if c is None:
            return None
        return clip_colour(np.asarray(c) + rng.uniform(-amount, amount, size=3) * 255)

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
