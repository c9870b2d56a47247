"""The camera graph: cameras, their walking order, the directed links and each link's transit time.

Cameras form a random directed graph: a random order of the cameras, a forward link to the next camera
(and sometimes to the ones after it), and backward links to the previous camera only now and then, so
that some ordered pairs can never be walked. Each link ``i → j`` has its own transit-time distribution
(log-normal or truncated Gaussian, in frames).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from mtmct_reid.data.synth.config import SynthConfig


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

    def sample_transit(self, source: int, target: int, rng: np.random.Generator) -> int:
        """One transit time (whole frames, at least 1) of the link ``source → target``."""
        return self.link(source, target).sample(rng)

    def link(self, source: int, target: int) -> TransitLink:
        """The link ``source → target`` (``KeyError`` when there is none)."""
        for link in self.links:
            if link.source == source and link.target == target:
                return link
        raise KeyError((source, target))

    def to_json(self) -> dict[str, Any]:
        """``cameras``, ``camera_order`` and ``links`` as written to ``ground_truth.json``."""
        return {
            "cameras": list(self.cameras),
            "camera_order": list(self.order),
            "links": [link.to_json() for link in self.links],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CameraGraph:
        """The graph of a ground truth (or of :meth:`to_json`'s dictionary)."""
        links = tuple(
            TransitLink(
                int(lk["from"]),
                int(lk["to"]),
                str(lk["kind"]),
                float(lk["mean"]),
                float(lk["std"]),
            )
            for lk in data["links"]
        )
        return cls(
            cameras=tuple(int(c) for c in data["cameras"]),
            order=tuple(int(c) for c in data.get("camera_order", data["cameras"])),
            links=links,
        )

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


def build_graph(config: SynthConfig, rng: np.random.Generator) -> CameraGraph:
    """Draw the camera graph of ``config`` (its cameras, link probabilities and transit ranges).

    Args:
        config: uses ``num_cameras``, ``forward_skip_prob``, ``backward_prob``, ``transit_kinds``,
            ``transit_mean_range`` and ``transit_cv_range``.
        rng: the graph's random stream (``stream(seed, STREAM_GRAPH)`` in a network).

    Example:
        >>> graph = build_graph(SynthConfig(num_cameras=4), np.random.default_rng(0))
        >>> graph.cameras, all(graph.successors(cam) for cam in graph.cameras)
        ((1, 2, 3, 4), True)
    """
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


def sample_walk(
    graph: CameraGraph, visits_range: tuple[int, int], rng: np.random.Generator
) -> list[int]:
    """A person's cameras: uniform start, uniform target length, uniform unvisited next camera.

    Args:
        graph: the camera graph.
        visits_range: least and most cameras of the walk (it stops early at a camera whose
            successors were all visited).
        rng: random stream.

    Example:
        >>> graph = build_graph(SynthConfig(num_cameras=4), np.random.default_rng(0))
        >>> walk = sample_walk(graph, (2, 3), np.random.default_rng(1))
        >>> 2 <= len(walk) <= 3 and all(b in graph.successors(a) for a, b in zip(walk, walk[1:]))
        True
    """
    path = [graph.cameras[int(rng.integers(len(graph.cameras)))]]
    target_len = int(rng.integers(visits_range[0], visits_range[1] + 1))
    while len(path) < target_len:
        options = [c for c in graph.successors(path[-1]) if c not in path]
        if not options:
            break
        path.append(options[int(rng.integers(len(options)))])
    return path


def enumerate_walks(
    graph: CameraGraph, visits_range: tuple[int, int]
) -> Iterator[tuple[tuple[int, ...], float]]:
    """Every walk :func:`sample_walk` can produce, with its probability (they sum to 1)."""
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


def lookalike_separation(graph: CameraGraph, config: SynthConfig) -> float:
    """Frames between look-alikes' walks: past any plausible co-visit delay plus the margin.

    Args:
        graph: the camera graph.
        config: uses ``visits_range`` and ``lookalike_margin``.
    """
    upper = {(lk.source, lk.target): lk.quantile_upper(0.9995) for lk in graph.links}
    longest = max(
        sum(upper[(a, b)] for a, b in zip(path[:-1], path[1:], strict=True))
        for path, _ in enumerate_walks(graph, config.visits_range)
    )
    return float(math.ceil(longest + config.lookalike_margin))
