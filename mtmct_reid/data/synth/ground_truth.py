"""``ground_truth.json``: what was generated (the graph, each link's distribution, every visit and every
image), reading it back, and the true transit-time densities it implies."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import fftconvolve

from mtmct_reid.data.layouts.market import MARKET_FOLDERS
from mtmct_reid.data.synth.config import (
    GROUND_TRUTH_FORMAT,
    GROUND_TRUTH_NAME,
    GROUND_TRUTH_VERSION,
    SynthConfig,
)
from mtmct_reid.data.synth.graph import CameraGraph, enumerate_walks
from mtmct_reid.data.synth.market import ImageSpec
from mtmct_reid.data.synth.people import Person
from mtmct_reid.errors import ReIDError


def build_ground_truth(
    config: SynthConfig,
    graph: CameraGraph,
    separation: float,
    people: list[Person],
    specs: list[ImageSpec],
    names: list[str],
) -> dict[str, Any]:
    """The ground truth of a network as plain JSON values (what ``ground_truth.json`` holds).

    Args:
        config: the network's configuration.
        graph: its camera graph.
        separation: frames between look-alikes' walks.
        people: everyone, scheduled.
        specs: every box, in file order.
        names: the boxes' Market file names (same order).
    """
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
        >>> import tempfile
        >>> from mtmct_reid.data.synth import generate_network
        >>> tmp = tempfile.TemporaryDirectory()
        >>> out = Path(tmp.name) / "net"
        >>> _ = generate_network(out, num_ids=8, num_cameras=3, image_size=(32, 16))
        >>> load_ground_truth(out)["cameras"]
        [1, 2, 3]
        >>> tmp.cleanup()
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
        >>> network = {
        ...     "cameras": [1, 2],
        ...     "config": {"visits_range": [2, 2]},
        ...     "links": [{"from": 1, "to": 2, "kind": "gaussian", "mean": 3000.0, "std": 300.0},
        ...               {"from": 2, "to": 1, "kind": "lognormal", "mean": 5000.0, "std": 900.0}],
        ... }
        >>> dens = transit_ground_truth(network, np.arange(0, 60_000, 100.0))
        >>> round(float(dens[(2, 1)].sum() * 100), 3)  # cameras 1 then 2: integrates to 1
        1.0
    """
    data = ground_truth if isinstance(ground_truth, Mapping) else load_ground_truth(ground_truth)
    if hops not in ("all", "direct"):
        raise ReIDError(f"transit_ground_truth: hops={hops!r} (expected 'all' or 'direct')")
    if grid_step <= 0:
        raise ReIDError(f"transit_ground_truth: grid_step={grid_step} (expected > 0 frames)")
    graph = CameraGraph.from_json(data)
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
    walks = list(enumerate_walks(graph, visits_range))  # type: ignore[arg-type]
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
