"""The people of the network: identities split into train and test, look-alike groups, and the
schedule of their visits (which cameras, when, and the times of the boxes each visit leaves).

People start at a random camera and time and walk 2–4 cameras along the links; every visit leaves a
few boxes a few frames apart. Look-alikes (same clothes and build, tiny jitter) walk one after
another, far apart in time, so that appearance alone confuses them and timing does not.

:func:`make_people` does it all from one random stream; its three steps — :func:`draw_identities`,
:func:`draw_walks` and :func:`schedule_walks` — are public for a renderer that needs only some.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtmct_reid.data.synth.appearance import Appearance, jitter_appearance, sample_appearance
from mtmct_reid.data.synth.config import MAX_FRAME, SynthConfig
from mtmct_reid.data.synth.graph import CameraGraph, sample_walk
from mtmct_reid.errors import ReIDError


@dataclass
class Person:
    """One identity and its walk.

    Args:
        pid: identity, 1..num_ids.
        split: ``"train"`` or ``"test"``.
        group: index of its look-alike group, -1 for none.
        appearance: what the person looks like.
        cameras: the cameras visited, in order.
        centres: the centre time (frames) of each visit.
        box_offsets: per visit, the frame offsets of its boxes around the centre.
    """

    pid: int
    split: str
    group: int
    appearance: Appearance
    cameras: list[int]
    centres: list[int] = field(default_factory=list)
    box_offsets: list[np.ndarray] = field(default_factory=list)

    @property
    def span(self) -> int:
        """Frames from the centre of the first visit to that of the last."""
        return self.centres[-1] - self.centres[0]

    def visit_times(self) -> list[np.ndarray]:
        """Per visit, the frame times of its boxes (int64)."""
        return [
            centre + offsets for centre, offsets in zip(self.centres, self.box_offsets, strict=True)
        ]


def box_offsets(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Frame offsets of a visit's boxes around its centre (their mean is within half a frame of 0).

    Example:
        >>> offsets = box_offsets(SynthConfig(), np.random.default_rng(0))
        >>> 2 <= len(offsets) <= 8 and abs(float(offsets.mean())) <= 0.5
        True
    """
    count = int(rng.integers(config.boxes_per_visit_range[0], config.boxes_per_visit_range[1] + 1))
    gaps = rng.integers(config.box_gap_range[0], config.box_gap_range[1] + 1, size=count - 1)
    raw = np.concatenate([[0], np.cumsum(gaps)])
    return raw - int(round(float(raw.mean())))


def draw_identities(
    config: SynthConfig, rng: np.random.Generator
) -> tuple[list[Person], list[list[Person]]]:
    """Split identities 1..num_ids into train and test halves and give each an appearance.

    In each split, ``lookalike_fraction`` of the identities fall into groups of
    ``lookalike_group_size`` sharing one jittered appearance (a lone leftover gets its own).

    Returns:
        ``(people sorted by pid, look-alike groups)``; the people have no walk yet.
    """
    pids = np.arange(1, config.num_ids + 1)
    shuffled = rng.permutation(pids)
    num_train = config.num_ids // 2
    split_ids = {"train": np.sort(shuffled[:num_train]), "test": np.sort(shuffled[num_train:])}

    people: list[Person] = []
    groups: list[list[Person]] = []
    for split in ("train", "test"):
        ids = rng.permutation(split_ids[split])
        num_lookalike = int(round(config.lookalike_fraction * len(ids)))
        start = 0
        while start < num_lookalike:
            chunk = ids[start : min(start + config.lookalike_group_size, num_lookalike)]
            start += len(chunk)
            if len(chunk) < 2:
                people.append(Person(int(chunk[0]), split, -1, sample_appearance(rng), []))
                continue
            base = sample_appearance(rng)
            members = [
                Person(
                    int(pid),
                    split,
                    len(groups),
                    jitter_appearance(base, rng, config.lookalike_jitter),
                    [],
                )
                for pid in chunk
            ]
            groups.append(members)
            people.extend(members)
        for pid in ids[num_lookalike:]:
            people.append(Person(int(pid), split, -1, sample_appearance(rng), []))
    people.sort(key=lambda p: p.pid)
    return people, groups


def draw_walks(
    people: list[Person], graph: CameraGraph, config: SynthConfig, rng: np.random.Generator
) -> None:
    """Give each person (in list order) a walk, transit times from its links, and its boxes'
    offsets; the first visit is centred on frame 0 until :func:`schedule_walks` places it."""
    for person in people:
        person.cameras = sample_walk(graph, config.visits_range, rng)
        centres = [0]
        for src, dst in zip(person.cameras[:-1], person.cameras[1:], strict=True):
            centres.append(centres[-1] + graph.sample_transit(src, dst, rng))
        person.centres = centres
        person.box_offsets = [box_offsets(config, rng) for _ in person.cameras]


def schedule_walks(
    people: list[Person],
    groups: list[list[Person]],
    config: SynthConfig,
    separation: float,
    rng: np.random.Generator,
) -> None:
    """Shift every walk to its start time in [t_min, time_horizon), look-alikes one after another.

    Args:
        people: everyone, with walks (:func:`draw_walks`).
        groups: the look-alike groups (:func:`draw_identities`).
        config: uses ``time_horizon``, ``box_gap_range``, ``boxes_per_visit_range`` and
            ``lookalike_group_size`` (named in the error).
        separation: least frames between the end of one look-alike's walk and the start of the
            next one's (:func:`~mtmct_reid.data.synth.graph.lookalike_separation`).
        rng: random stream.

    Raises:
        ReIDError: when the groups' walks need times beyond what a Market name holds.
    """
    t_min = config.box_gap_range[1] * config.boxes_per_visit_range[1]
    in_group = {p.pid for members in groups for p in members}
    for person in people:
        if person.pid in in_group:
            continue
        start = int(rng.integers(t_min, max(t_min + 1, config.time_horizon - person.span)))
        person.centres = [c + start for c in person.centres]
    for members in groups:
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


def make_people(
    config: SynthConfig, graph: CameraGraph, separation: float, rng: np.random.Generator
) -> list[Person]:
    """Everyone in the network, with appearance, walk and visit schedule, sorted by pid.

    Args:
        config: the network's configuration.
        graph: the camera graph the walks follow.
        separation: frames between look-alikes' walks.
        rng: the people's random stream (``stream(seed, STREAM_PEOPLE)`` in a network).

    Example:
        >>> from mtmct_reid.data.synth.graph import build_graph, lookalike_separation
        >>> config = SynthConfig(num_ids=12, num_cameras=3)
        >>> graph = build_graph(config, np.random.default_rng(0))
        >>> people = make_people(config, graph, lookalike_separation(graph, config),
        ...                      np.random.default_rng(1))
        >>> [p.pid for p in people] == list(range(1, 13)), sorted({p.split for p in people})
        (True, ['test', 'train'])
    """
    people, groups = draw_identities(config, rng)
    draw_walks(people, graph, config, rng)
    schedule_walks(people, groups, config, separation, rng)
    return people
