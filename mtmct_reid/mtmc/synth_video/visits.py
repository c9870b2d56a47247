"""People's walks through the cameras as :class:`Visit` s on the common clock: the same graph and
people as the image synthesiser, look-alikes one after another."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtmct_reid.data.synth.config import stream
from mtmct_reid.data.synth.graph import CameraGraph, sample_walk
from mtmct_reid.data.synth.people import Person
from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc.synth_video.config import (
    BOX_WIDTH,
    MS_PER_SECOND,
    STREAM_WALKS,
    VideoSynthConfig,
)


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


def floor_band(height: int) -> tuple[float, float]:
    """Rows where feet may be: from a little below the middle to the bottom.

    Example:
        >>> floor_band(100)
        (62.0, 97.0)
    """
    return 0.62 * height, 0.97 * height


def person_height(app_height: float, feet: float, height: int, vanish: float) -> float:
    """Pixels of a person of relative height ``app_height`` whose feet are on row ``feet`` of a
    ``height``-row frame whose vanishing row is ``vanish``."""
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
        transit = graph.sample_transit(cams[k - 1], cams[k], rng) / MS_PER_SECOND
        # A person is in one place at a time: the next view is entered after the last is left.
        least = (durations[k - 1] + durations[k]) / 2 + 0.5
        centres.append(centres[-1] + max(transit, least))
    return cams, durations, centres


def _separation(graph: CameraGraph, config: VideoSynthConfig) -> float:
    """Seconds from one look-alike leaving the network to the next entering it: past the longest
    plausible transit of any link (a transit runs centre to centre, longer than exit to entry)."""
    upper = max(link.quantile_upper(0.9995) for link in graph.links) / MS_PER_SECOND
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
    low, high = floor_band(height)
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
            margin = 0.35 * BOX_WIDTH * 0.3 * height  # centre just outside the frame
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
