"""The Market-1501 protocol of the network: which box goes to train, query or gallery, the distractors
(id ``0000``) and junk boxes (id ``-1``) of the gallery, and the Market file name of every box.

Train and test identities are disjoint halves; every test identity has one query box per camera it
visits and the rest in the gallery. Times are written as ``c{cam}s{session}_{frame:06d}`` so that
:func:`mtmct_reid.data.market_time.market_global_time` gives the generated time back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtmct_reid.data.market_time import market_session_frame
from mtmct_reid.data.synth.appearance import Appearance, sample_appearance
from mtmct_reid.data.synth.config import SynthConfig
from mtmct_reid.data.synth.graph import CameraGraph
from mtmct_reid.data.synth.people import Person, box_offsets


@dataclass(frozen=True)
class ImageSpec:
    """One box to draw: its split, identity (0 distractor, -1 junk), camera, time (frames), the
    appearance to draw (``None``: background only), the index of the visit in its person's walk
    (-1 for distractors and junk) and whether it is a junk detection."""

    split: str
    pid: int
    camera: int
    time: int
    appearance: Appearance | None
    visit: int
    junk: bool = False


def image_specs(
    config: SynthConfig, graph: CameraGraph, people: list[Person], rng: np.random.Generator
) -> list[ImageSpec]:
    """Every box of the network: people's boxes (a random one per test visit is the query),
    then distractors and junk in proportion to the gallery.

    Args:
        config: uses ``distractor_fraction``, ``junk_fraction``, ``time_horizon`` and the box
            ranges.
        graph: gives the cameras distractors and junk appear in.
        people: everyone, scheduled (:func:`~mtmct_reid.data.synth.people.make_people`).
        rng: random stream (``stream(seed, STREAM_PEOPLE, 1)`` in a network).
    """
    specs: list[ImageSpec] = []
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
                specs.append(ImageSpec(split, person.pid, cam, int(t), person.appearance, visit))
    num_gallery = sum(s.split == "gallery" for s in specs)
    horizon = config.time_horizon
    num_distractors = int(round(config.distractor_fraction * num_gallery))
    distractors: list[ImageSpec] = []
    while len(distractors) < num_distractors:
        app = sample_appearance(rng)
        cam = graph.cameras[int(rng.integers(len(graph.cameras)))]
        centre = int(rng.integers(1_000, horizon))
        offsets = box_offsets(config, rng)[: int(rng.integers(1, 4))]
        distractors.extend(ImageSpec("gallery", 0, cam, int(centre + o), app, -1) for o in offsets)
    specs.extend(distractors[:num_distractors])
    for _ in range(int(round(config.junk_fraction * num_gallery))):
        cam = graph.cameras[int(rng.integers(len(graph.cameras)))]
        app = sample_appearance(rng) if rng.random() < 0.7 else None
        specs.append(
            ImageSpec("gallery", -1, cam, int(rng.integers(1_000, horizon)), app, -1, junk=True)
        )
    return specs


def market_file_names(specs: list[ImageSpec]) -> list[str]:
    """Market names; the box index counts detections in the same camera frame, as in Market.

    Example:
        >>> market_file_names([ImageSpec("query", 7, 2, 1234, None, 0)])
        ['0007_c2s1_001234_01.jpg']
    """
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
