"""Drawing people into camera images: each camera's background and optics, and one person's box.

:func:`draw_person` draws a person of any size anywhere on a canvas; :func:`camera_look` draws a
camera's background, colour cast, zoom, blur and noise; :func:`render_box` makes one detection box of
the network from both, and :func:`apply_camera_effects` is its last step (blur, colour cast, noise),
for anything else drawn in that camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mtmct_reid.data.synth.appearance import Appearance, Colour, muted_colour
from mtmct_reid.data.synth.config import SynthConfig


@dataclass(frozen=True)
class CameraLook:
    """What a camera does to every image: its background, colour cast, zoom, blur and noise.

    ``background`` is (height, 2 × width, 3) uint8, ``gains`` the per-channel factor (colour cast
    times brightness), ``scale`` the camera's zoom of people, ``blur`` its blur radius (pixels of a
    128-pixel-high image) and ``noise`` its sensor noise (grey levels).
    """

    background: np.ndarray
    gains: np.ndarray
    scale: float
    blur: float
    noise: float


def camera_look(
    config: SynthConfig, rng: np.random.Generator, size: tuple[int, int] | None = None
) -> CameraLook:
    """Draw a camera's background (twice as wide as ``size``, for varied crops) and its optics.

    Args:
        config: uses ``colour_cast``, ``brightness_range`` and ``noise_range`` (and ``image_size``
            when ``size`` is not given).
        rng: random stream (``stream(seed, STREAM_CAMERA_LOOKS)``, one look per camera in order).
        size: (height, width) of the images the camera makes; default ``config.image_size``.

    Example:
        >>> look = camera_look(SynthConfig(), np.random.default_rng(0), size=(90, 160))
        >>> look.background.shape, look.background.dtype.name
        ((90, 320, 3), 'uint8')
    """
    height, width = config.image_size if size is None else size
    bg_width = 2 * width
    wall = np.asarray(muted_colour(rng, (0.35, 0.9)), dtype=np.float32)
    floor = np.asarray(muted_colour(rng, (0.2, 0.7)), dtype=np.float32)
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
        draw.rectangle((x0, y0, x1, horizon), fill=muted_colour(rng, (0.2, 0.95)))
    for _ in range(int(rng.integers(1, 4))):
        y = rng.uniform(horizon, height)
        draw.line(
            (0, y, bg_width, y + rng.uniform(-0.1, 0.1) * height),
            fill=muted_colour(rng, (0.2, 0.8)),
            width=max(1, height // 64),
        )
    texture = rng.normal(0, 6, size=(height, bg_width, 3))
    background = np.clip(np.asarray(image, dtype=np.float32) + texture, 0, 255).astype(np.uint8)
    gains = 1 + rng.uniform(-config.colour_cast, config.colour_cast, size=3)
    return CameraLook(
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


def draw_person(
    canvas: Image.Image,
    app: Appearance,
    centre_x: float,
    feet_y: float,
    person_height: float,
    side: int,
    stride: float,
    swing: float,
) -> None:
    """Draw one person onto ``canvas`` (in place), feet at ``(centre_x, feet_y)`` in pixels.

    Args:
        canvas: an RGB image of any size.
        app: the person's appearance.
        centre_x: horizontal centre of the body.
        feet_y: row of the soles.
        person_height: height of the person in pixels.
        side: +1 or -1; mirrors the bag, as when the person faces the other way.
        stride: distance between the feet, in pixels (walking).
        swing: horizontal offset of the hands, in pixels (arms swinging).
    """
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


def render_box(
    config: SynthConfig,
    look: CameraLook,
    app: Appearance | None,
    rng: np.random.Generator,
    junk: bool = False,
) -> Image.Image:
    """One detection box of a camera: a person (or, for junk, a fragment or background only).

    Args:
        config: uses ``image_size``, ``scale_jitter``, ``occlusion_prob``, ``blur_prob`` and
            ``blur_max``.
        look: the camera's look (:func:`camera_look`).
        app: the person's appearance; ``None`` draws background only.
        rng: the image's own random stream (``stream(seed, STREAM_IMAGE, index)``).
        junk: draw a badly placed part of a body, as a bad detection holds.

    Example:
        >>> from mtmct_reid.data.synth.appearance import sample_appearance
        >>> config = SynthConfig(image_size=(64, 32))
        >>> look = camera_look(config, np.random.default_rng(0))
        >>> image = render_box(config, look, sample_appearance(np.random.default_rng(1)),
        ...                    np.random.default_rng(2))
        >>> image.size, image.mode
        ((32, 64), 'RGB')
    """
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
        draw_person(
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
        colour = muted_colour(rng, (0.1, 0.9))
        if rng.random() < 0.5:
            draw.rectangle((0, height * (1 - rng.uniform(0.15, 0.35)), width, height), fill=colour)
        else:
            occluder_w = rng.uniform(0.2, 0.35) * width
            x0 = 0.0 if rng.random() < 0.5 else width - occluder_w
            draw.rectangle((x0, 0, x0 + occluder_w, height), fill=colour)
    return apply_camera_effects(
        canvas, look, rng, blur_prob=config.blur_prob, blur_max=config.blur_max
    )


def apply_camera_effects(
    canvas: Image.Image,
    look: CameraLook,
    rng: np.random.Generator,
    *,
    blur_prob: float,
    blur_max: float,
) -> Image.Image:
    """What the camera does to a drawn picture: its blur (plus extra now and then), colour cast,
    brightness flicker and sensor noise.

    Args:
        canvas: the drawn RGB picture.
        look: the camera's look.
        rng: random stream.
        blur_prob: probability of extra blur.
        blur_max: largest extra blur radius, in pixels of a 128-pixel-high picture (blur scales
            with the picture's height).

    Returns:
        A new RGB image of the same size.
    """
    height = canvas.height
    blur = look.blur
    if rng.random() < blur_prob:
        blur += float(rng.uniform(0, blur_max))
    blur *= height / 128
    if blur > 0.05:
        canvas = canvas.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(canvas, dtype=np.float32) * (look.gains * rng.uniform(0.94, 1.06))
    pixels += rng.normal(0, look.noise, size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
