"""Rendering one camera of the video network: its scene (background, occluders), every frame with
the visible box of each person, and the noisy detections of those boxes."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mtmct_reid.data.synth.appearance import muted_colour
from mtmct_reid.data.synth.config import STREAM_CAMERA_LOOKS, SynthConfig, stream
from mtmct_reid.data.synth.rendering import (
    CameraLook,
    apply_camera_effects,
    camera_look,
    draw_person,
)
from mtmct_reid.mtmc.boxes import Boxes, Camera
from mtmct_reid.mtmc.synth_video.config import BOX_WIDTH, STREAM_SCENE, VideoSynthConfig
from mtmct_reid.mtmc.synth_video.visits import Visit, floor_band, person_height


@dataclass(frozen=True)
class Scene:
    """A camera's static picture: background, its optics, occluders (x0, y0, x1, y1) and colours."""

    look: CameraLook
    background: np.ndarray
    occluders: tuple[tuple[float, float, float, float], ...]
    occluder_colours: tuple[tuple[int, int, int], ...]
    vanish: float


def make_scene(config: VideoSynthConfig, image_config: SynthConfig, camera: int) -> Scene:
    """Camera ``camera``'s background (the image synthesiser's look of that camera), occluders."""
    height, width = config.frame_size
    look_rng = stream(config.seed, STREAM_CAMERA_LOOKS, camera)
    look = camera_look(image_config, look_rng, size=(height, width))
    rng = stream(config.seed, STREAM_SCENE, camera)
    offset = int(rng.integers(0, look.background.shape[1] - width + 1))
    background = look.background[:, offset : offset + width].copy()
    occluders, colours = [], []
    low, high = floor_band(height)
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
class RenderedFrame:
    """One rendered frame and the visible box (x, y, w, h) and visibility of each person in it."""

    image: np.ndarray
    ids: list[int]
    boxes: list[tuple[float, float, float, float]]
    visibility: list[float]


def render_camera(
    config: VideoSynthConfig,
    scene: Scene,
    camera: Camera,
    num_frames: int,
    visits: list[Visit],
    appearances: Mapping[int, Any],
    heights: Mapping[int, float],
    rng: np.random.Generator,
) -> Iterator[RenderedFrame]:
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
            ph = person_height(heights[v.pid], feet, height, scene.vanish)
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
            bw = BOX_WIDTH * appearances[v.pid].build * ph
            raw.append(
                (v.pid, round(cx - bw / 2), round(feet - ph), round(cx + bw / 2), round(feet))
            )
        draw = ImageDraw.Draw(canvas)
        for box, colour in zip(scene.occluders, scene.occluder_colours, strict=True):
            draw.rectangle(box, fill=colour)
        image = apply_camera_effects(canvas, scene.look, rng, blur_prob=0.0, blur_max=0.0)
        front = occ_mask.copy()
        frame = RenderedFrame(np.asarray(image), [], [], [])
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


def detections(
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
    low, high = floor_band(height)
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
