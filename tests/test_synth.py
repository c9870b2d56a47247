"""The synthetic camera network: reproducible files, the Market layout and protocol, walks that follow
the camera links, look-alikes that only timing separates, and the true transit-time densities."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path
from time import monotonic, sleep

import numpy as np
import pytest
from PIL import Image

from mtmct_reid import cli
from mtmct_reid.data.market_time import market_global_time
from mtmct_reid.data.synth import (
    GROUND_TRUTH_NAME,
    SynthConfig,
    generate_network,
    load_ground_truth,
    rendering,
    transit_ground_truth,
)
from mtmct_reid.errors import ReIDError

# Written from the Market-1501 description, independently of the generator's own naming code.
MARKET_NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
FOLDERS = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def parse_folder(root: Path) -> dict[str, tuple[int, int, float, str]]:
    """relative path -> (pid, camera, global time, split), decoded from the Market names."""
    rows = {}
    for folder, split in FOLDERS.items():
        for path in sorted((root / folder).iterdir()):
            match = MARKET_NAME.match(path.name)
            assert match, f"not a Market-1501 name: {path.name}"
            pid, cam, session, frame = (int(match.group(i)) for i in range(1, 5))
            time = market_global_time(np.array([cam]), np.array([session]), np.array([frame]))[0]
            rows[f"{folder}/{path.name}"] = (pid, cam, float(time), split)
    return rows


@pytest.fixture(scope="module")
def gt(tiny_network: Path) -> dict:
    return load_ground_truth(tiny_network)


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    args = {"num_ids": 12, "num_cameras": 3, "image_size": (48, 24), "progress": False}
    generate_network(tmp_path / "a", seed=7, **args)
    generate_network(tmp_path / "b", seed=7, **args)
    generate_network(tmp_path / "c", seed=8, **args)
    first, again, other = (file_hashes(tmp_path / n) for n in "abc")
    assert len(first) > 50 and first == again
    assert sum(first.get(name) == digest for name, digest in other.items()) == 0


def test_network_folder_and_files_are_readable_like_any_other(tmp_path):
    old = os.umask(0o022)
    try:
        generate_network(
            tmp_path / "net", num_ids=8, num_cameras=2, image_size=(32, 16), progress=False
        )
    finally:
        os.umask(old)
    assert (tmp_path / "net").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "net" / GROUND_TRUTH_NAME).stat().st_mode & 0o777 == 0o644


def test_layout_names_and_images(tiny_network, gt):
    assert sorted(p.name for p in tiny_network.iterdir()) == sorted([*FOLDERS, GROUND_TRUTH_NAME])
    rows = parse_folder(tiny_network)
    assert sorted(rows) == sorted(gt["images"]["path"])
    height, width = gt["config"]["image_size"]
    some = sorted(rows)[:: max(1, len(rows) // 20)]
    for rel in some:
        with Image.open(tiny_network / rel) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size == (width, height)
    # No leftover staging folder beside the network.
    assert [p.name for p in tiny_network.parent.iterdir()] == [tiny_network.name]


def test_names_decode_to_exactly_the_generated_ids_cameras_and_times(tiny_network, gt):
    rows = parse_folder(tiny_network)
    images = gt["images"]
    for rel, pid, cam, time, split in zip(
        images["path"],
        images["pid"],
        images["camera"],
        images["time"],
        images["split"],
        strict=True,
    ):
        assert rows[rel] == (pid, cam, float(time), split)
    people = {p["pid"] for p in gt["identities"]}
    assert people == set(range(1, gt["config"]["num_ids"] + 1))
    assert {pid for pid, *_ in rows.values()} == people | {0, -1}
    assert {cam for _, cam, *_ in rows.values()} == set(range(1, gt["config"]["num_cameras"] + 1))
    # Times must be Market-like: spread over hundreds of thousands of frames.
    times = np.array(images["time"])
    assert times.min() >= 0 and times.max() > 100_000


def test_market_reader_reads_back_the_generated_records(tiny_network, gt):
    from mtmct_reid.data.readers import read_dataset

    records = read_dataset(tiny_network)
    got = {
        str(Path(p).resolve().relative_to(tiny_network.resolve())): (
            int(pid),
            int(cam),
            float(t),
            s,
        )
        for p, pid, cam, t, s in zip(
            records.paths, records.pids, records.cams, records.times, records.splits, strict=True
        )
    }
    images = gt["images"]
    expected = {
        rel: (pid, cam, float(t), s)
        for rel, pid, cam, t, s in zip(
            images["path"],
            images["pid"],
            images["camera"],
            images["time"],
            images["split"],
            strict=True,
        )
    }
    assert got == expected


def test_market_protocol(tiny_network, gt):
    rows = parse_folder(tiny_network).values()
    by_split: dict[str, set[int]] = defaultdict(set)
    for pid, _, _, split in rows:
        by_split[split].add(pid)
    people = {p["pid"]: p for p in gt["identities"]}
    train_ids = {pid for pid, p in people.items() if p["split"] == "train"}
    test_ids = {pid for pid, p in people.items() if p["split"] == "test"}
    assert train_ids.isdisjoint(test_ids) and abs(len(train_ids) - len(test_ids)) <= 1
    assert by_split["train"] == train_ids
    assert by_split["query"] == test_ids
    assert by_split["gallery"] == test_ids | {0, -1}

    queries = [(pid, cam) for pid, cam, _, split in rows if split == "query"]
    gallery = [(pid, cam) for pid, cam, _, split in rows if split == "gallery"]
    # One query per camera a test identity visits, like Market-1501.
    assert len(queries) == len(set(queries))
    for pid in test_ids:
        assert {cam for p, cam in queries if p == pid} == set(people[pid]["cameras"])
    for pid, cam in queries:
        assert any(p == pid and c != cam for p, c in gallery), f"query {pid} c{cam} has no match"


def test_walks_follow_links_and_never_join_unreachable_cameras(tiny_network, gt):
    links = {(lk["from"], lk["to"]) for lk in gt["links"]}
    unreachable = {tuple(pair) for pair in gt["unreachable"]}
    assert unreachable, "a 4-camera network should have some unreachable ordered pairs"
    assert unreachable.isdisjoint(links)
    visits = defaultdict(list)
    for visit in gt["visits"]:
        visits[visit["pid"]].append(visit)
    rows = parse_folder(tiny_network).values()
    times_of = defaultdict(list)
    for pid, cam, time, _ in rows:
        times_of[(pid, cam)].append(time)
    for pid, walk in visits.items():
        walk.sort(key=lambda v: v["mean_time"])
        cams = [v["camera"] for v in walk]
        assert 2 <= len(cams) == len(set(cams)) <= 4
        assert all(pair in links for pair in zip(cams[:-1], cams[1:], strict=True))
        for a in range(len(cams)):
            for b in range(a + 1, len(cams)):
                assert (cams[a], cams[b]) not in unreachable
        for v in walk:
            # The visit's mean time is what the transit model measures from the images.
            assert np.mean(times_of[(pid, v["camera"])]) == pytest.approx(v["mean_time"])
            assert len(times_of[(pid, v["camera"])]) == v["num_boxes"] >= 2


def test_transit_times_come_from_their_links(tiny_network, gt):
    links = {(lk["from"], lk["to"]): lk for lk in gt["links"]}
    visits = defaultdict(list)
    for visit in gt["visits"]:
        visits[visit["pid"]].append(visit)
    z_scores = []
    for walk in visits.values():
        walk.sort(key=lambda v: v["mean_time"])
        for prev, nxt in zip(walk[:-1], walk[1:], strict=True):
            link = links[(prev["camera"], nxt["camera"])]
            z_scores.append((nxt["mean_time"] - prev["mean_time"] - link["mean"]) / link["std"])
    z = np.array(z_scores)
    assert len(z) > 30
    assert np.abs(z).max() < 6 and abs(z.mean()) < 0.5 and 0.6 < z.std() < 1.4
    for lk in gt["links"]:
        assert 1_000 <= lk["mean"] <= 16_000 and lk["kind"] in ("lognormal", "gaussian")


def mean_colours(root: Path, gt: dict) -> dict[int, np.ndarray]:
    """Mean colour of the central part of each identity's images (where the person is)."""
    sums: dict[int, list[np.ndarray]] = defaultdict(list)
    for rel, pid in zip(gt["images"]["path"], gt["images"]["pid"], strict=True):
        if pid > 0:
            pixels = np.asarray(Image.open(root / rel), dtype=np.float64)
            h, w, _ = pixels.shape
            sums[pid].append(pixels[h // 5 : h * 9 // 10, w // 4 : w * 3 // 4].mean(axis=(0, 1)))
    return {pid: np.mean(v, axis=0) for pid, v in sums.items()}


def test_lookalikes_share_appearance_and_walk_far_apart(tiny_network, gt):
    groups = defaultdict(list)
    for person in gt["identities"]:
        if person["group"] >= 0:
            groups[person["group"]].append(person["pid"])
    assert len(groups) >= 4 and all(len(m) >= 2 for m in groups.values())
    colours = mean_colours(tiny_network, gt)
    group_of = {pid: g for g, members in groups.items() for pid in members}
    pids = sorted(colours)
    alike, unrelated = [], []
    for i, a in enumerate(pids):
        for b in pids[i + 1 :]:
            distance = float(np.linalg.norm(colours[a] - colours[b]))
            same = a in group_of and group_of[a] == group_of.get(b)
            (alike if same else unrelated).append(distance)
    assert np.median(alike) < 0.4 * np.median(unrelated)

    times = defaultdict(list)
    for visit in gt["visits"]:
        times[visit["pid"]].append(visit["mean_time"])
    separation = gt["lookalike_separation"]
    assert separation > 20_000
    for members in groups.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                gap = np.abs(np.subtract.outer(times[a], times[b])).min()
                assert gap >= separation


def test_transit_ground_truth_direct_is_each_links_density(gt):
    deltas = np.arange(0.0, 200_000.0, 5.0)
    density = transit_ground_truth(gt, deltas, hops="direct")
    cams = gt["cameras"]
    assert set(density) == {(i, j) for i in cams for j in cams if i != j}
    for link in gt["links"]:
        d = density[(link["to"], link["from"])]  # keyed (later camera, earlier camera)
        assert d.sum() * 5 == pytest.approx(1.0, abs=1e-3)
        mean = (deltas * d).sum() * 5
        std = math.sqrt(((deltas - mean) ** 2 * d).sum() * 5)
        assert mean == pytest.approx(link["mean"], rel=1e-3)
        assert std == pytest.approx(link["std"], rel=1e-2)
    linked = {(lk["to"], lk["from"]) for lk in gt["links"]}
    assert all(not d.any() for key, d in density.items() if key not in linked)


def simulate_covisit_deltas(gt: dict, walks: int, seed: int) -> dict[tuple[int, int], list[float]]:
    """The documented walk process, written out plainly: (later, earlier) -> time differences."""
    rng = np.random.default_rng(seed)
    cams = list(gt["cameras"])
    links = {(lk["from"], lk["to"]): lk for lk in gt["links"]}
    low, high = gt["config"]["visits_range"]
    out: dict[tuple[int, int], list[float]] = defaultdict(list)
    for _ in range(walks):
        path = [cams[rng.integers(len(cams))]]
        times = [0.0]
        length = rng.integers(low, high + 1)
        while len(path) < length:
            options = sorted(j for (i, j) in links if i == path[-1] and j not in path)
            if not options:
                break
            nxt = options[rng.integers(len(options))]
            link = links[(path[-1], nxt)]
            if link["kind"] == "lognormal":
                sigma2 = math.log1p((link["std"] / link["mean"]) ** 2)
                step = rng.lognormal(math.log(link["mean"]) - sigma2 / 2, math.sqrt(sigma2))
            else:
                step = -1.0
                while step < 1.0:
                    step = rng.normal(link["mean"], link["std"])
            path.append(nxt)
            times.append(times[-1] + step)
        for a in range(len(path)):
            for b in range(a + 1, len(path)):
                out[(path[b], path[a])].append(times[b] - times[a])
    return out


HAND_MADE_NETWORK = {
    "cameras": [1, 2, 3, 4],
    "config": {"visits_range": [2, 4]},
    "links": [
        {"from": 1, "to": 2, "kind": "lognormal", "mean": 3000.0, "std": 600.0},
        {"from": 2, "to": 3, "kind": "gaussian", "mean": 8000.0, "std": 1500.0},
        {"from": 1, "to": 3, "kind": "gaussian", "mean": 2000.0, "std": 500.0},
        {"from": 3, "to": 4, "kind": "lognormal", "mean": 5000.0, "std": 1200.0},
        {"from": 4, "to": 2, "kind": "gaussian", "mean": 12000.0, "std": 3000.0},
        {"from": 3, "to": 1, "kind": "lognormal", "mean": 15000.0, "std": 2000.0},
    ],
}


@pytest.mark.parametrize("source", ["hand-made", "tiny"])
def test_transit_ground_truth_all_hops_matches_simulated_walks(source, gt):
    network = HAND_MADE_NETWORK if source == "hand-made" else gt
    observed = simulate_covisit_deltas(network, walks=100_000, seed=3)
    edges = np.arange(0.0, 100_000.0 + 1_000, 1_000.0)
    fine = np.arange(0.0, 100_000.0, 10.0) + 5.0
    density = transit_ground_truth(network, fine, hops="all")
    compared = 0
    for key, deltas in observed.items():
        if len(deltas) < 2_000:
            continue
        expected = density[key].reshape(len(edges) - 1, -1).sum(axis=1) * 10.0
        assert expected.sum() == pytest.approx(1.0, abs=1e-3)
        counts, _ = np.histogram(deltas, bins=edges)
        total_variation = 0.5 * np.abs(counts / len(deltas) - expected).sum()
        # What sampling alone gives (the mean absolute deviation of each bin's frequency), so that
        # walks weighted equally instead of by their probability (4x chance here) fails.
        chance = 0.5 * np.sqrt(2 * expected * (1 - expected) / (np.pi * len(deltas))).sum()
        assert total_variation < 2 * chance, (key, total_variation, chance)
        compared += 1
    assert compared >= 4
    for key, d in density.items():
        if key not in observed:
            assert not d.any()


def test_refuses_a_non_empty_folder_and_replaces_only_a_network(tmp_path):
    args = {"num_ids": 8, "num_cameras": 2, "image_size": (32, 16), "progress": False}
    foreign = tmp_path / "holiday_photos"
    foreign.mkdir()
    (foreign / "beach.jpg").write_bytes(b"not mine")
    with pytest.raises(ReIDError, match="holiday_photos: folder exists and is not empty"):
        generate_network(foreign, **args)
    with pytest.raises(ReIDError, match=r"no ground_truth\.json.*even with --force"):
        generate_network(foreign, overwrite=True, **args)
    assert (foreign / "beach.jpg").read_bytes() == b"not mine"

    empty = tmp_path / "empty"
    empty.mkdir()
    generate_network(empty, seed=1, **args)
    assert load_ground_truth(empty)["seed"] == 1
    with pytest.raises(ReIDError, match="pass --force"):
        generate_network(empty, seed=2, **args)
    generate_network(empty, seed=2, overwrite=True, **args)
    assert load_ground_truth(empty)["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "holiday_photos"]


def test_an_interrupted_run_leaves_no_folder(tmp_path, monkeypatch):
    rendered = []
    real_render = rendering.render_box

    def failing_render(*args, **kwargs):
        if len(rendered) == 10:
            raise KeyboardInterrupt
        rendered.append(1)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(rendering, "render_box", failing_render)
    with pytest.raises(KeyboardInterrupt):
        generate_network(tmp_path / "net", num_ids=8, num_cameras=3, image_size=(32, 16))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_cameras": 1}, r"num_cameras=1 \(expected 2\.\.9"),
        ({"num_cameras": 10}, r"num_cameras=10 \(expected 2\.\.9"),
        ({"num_ids": 3}, r"num_ids=3 \(expected at least 4"),
        (
            {"image_size": (20, 10)},
            r"image_size=\(20, 10\) \(expected \(height, width\) of at least",
        ),
        ({"image_size": (64,)}, r"image_size"),
        ({"seed": -1}, r"seed=-1"),
        ({"num_ids": "many"}, r"num_ids='many' \(expected an integer\)"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, kwargs, message):
    with pytest.raises(ReIDError, match=message) as info:
        generate_network(tmp_path / "net", **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "net").exists()


def test_bad_config_fields_are_named():
    with pytest.raises(ReIDError, match=r"lookalike_fraction=1\.5 \(expected a probability"):
        SynthConfig(lookalike_fraction=1.5).validate()
    with pytest.raises(ReIDError, match=r"visits_range=\(1, 3\) \(expected \(min, max\) with 2 <="):
        SynthConfig(visits_range=(1, 3)).validate()
    with pytest.raises(ReIDError, match="transit_kinds"):
        SynthConfig(transit_kinds=("uniform",)).validate()
    config = SynthConfig(num_ids=40, lookalike_group_size=4)
    assert SynthConfig.from_json(config.to_json()) == config


def test_lookalike_groups_that_cannot_fit_the_clock_are_refused(tmp_path):
    config = SynthConfig(num_ids=60, lookalike_fraction=1.0, lookalike_group_size=30)
    with pytest.raises(ReIDError, match="lookalike_group_size"):
        generate_network(tmp_path / "net", config=config, image_size=(32, 16), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_load_ground_truth_errors(tmp_path):
    with pytest.raises(ReIDError, match="no such file"):
        load_ground_truth(tmp_path)
    (tmp_path / GROUND_TRUTH_NAME).write_text("{not json")
    with pytest.raises(ReIDError, match="not a readable JSON file"):
        load_ground_truth(tmp_path)
    (tmp_path / GROUND_TRUTH_NAME).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ReIDError, match="field 'format'"):
        load_ground_truth(tmp_path / GROUND_TRUTH_NAME)
    with pytest.raises(ReIDError, match="hops='some'"):
        transit_ground_truth(HAND_MADE_NETWORK, np.zeros(3), hops="some")


def test_cli_writes_a_network_and_prints_one_line(tmp_path, capsys):
    out = tmp_path / "net"
    args = ["synth", str(out), "--ids", "10", "--cameras", "3", "--seed", "4"]
    assert cli.main([*args, "--image-size", "48x24", "--group-size", "2"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "10 ids" in printed[0] and "3 cameras" in printed[0]
    gt = load_ground_truth(out)
    assert gt["config"]["image_size"] == [48, 24] and gt["config"]["lookalike_group_size"] == 2
    assert gt["seed"] == 4
    assert cli.main([*args, "--image-size", "48x24"]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert cli.main([*args, "--image-size", "48x24", "--force"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cameras", "1"], "num_cameras=1"),
        (["--cameras", "12"], "num_cameras=12"),
        (["--ids", "2"], "num_ids=2"),
        (["--image-size", "big"], "--image-size 'big': expected HEIGHTxWIDTH"),
        (["--image-size", "16x8"], "image_size=(16, 8)"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys, extra, message):
    assert cli.main(["synth", str(tmp_path / "net"), *extra]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtmct-reid synth: error:")
    assert message in lines[0] and "Traceback" not in captured.err
    assert not (tmp_path / "net").exists()


SYNTH_MODULES = ("config", "graph", "appearance", "people", "rendering", "market", "ground_truth")


@pytest.mark.parametrize("name", [*SYNTH_MODULES, "generate"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    module = importlib.import_module(f"mtmct_reid.data.synth.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_public_pieces_rebuild_the_written_network(tiny_network, gt):
    """A renderer built from the package's pieces (graph, people, boxes, rendering) gets exactly
    what generate_network wrote: the same links, names and JPEG bytes."""
    from io import BytesIO

    from mtmct_reid.data.layouts.market import MARKET_FOLDERS
    from mtmct_reid.data.synth.config import (
        STREAM_CAMERA_LOOKS,
        STREAM_GRAPH,
        STREAM_IMAGE,
        STREAM_PEOPLE,
        stream,
    )
    from mtmct_reid.data.synth.graph import build_graph, lookalike_separation
    from mtmct_reid.data.synth.market import image_specs, market_file_names
    from mtmct_reid.data.synth.people import make_people

    config = SynthConfig.from_json(gt["config"])
    graph = build_graph(config, stream(config.seed, STREAM_GRAPH))
    assert graph.to_json() == {key: gt[key] for key in ("cameras", "camera_order", "links")}
    separation = lookalike_separation(graph, config)
    assert separation == gt["lookalike_separation"]
    people = make_people(config, graph, separation, stream(config.seed, STREAM_PEOPLE))
    assert [p.cameras for p in people] == [p["cameras"] for p in gt["identities"]]
    means = [float(t.mean()) for p in people for t in p.visit_times()]
    assert means == [v["mean_time"] for v in gt["visits"]]
    specs = image_specs(config, graph, people, stream(config.seed, STREAM_PEOPLE, 1))
    paths = [
        f"{MARKET_FOLDERS[s.split]}/{n}"
        for s, n in zip(specs, market_file_names(specs), strict=True)
    ]
    assert paths == gt["images"]["path"]
    looks_rng = stream(config.seed, STREAM_CAMERA_LOOKS)
    looks = {cam: rendering.camera_look(config, looks_rng) for cam in graph.cameras}
    for index in range(0, len(specs), 97):
        spec = specs[index]
        image = rendering.render_box(
            config,
            looks[spec.camera],
            spec.appearance,
            stream(config.seed, STREAM_IMAGE, index),
            junk=spec.junk,
        )
        encoded = BytesIO()
        image.save(encoded, format="JPEG", quality=config.jpeg_quality)
        assert encoded.getvalue() == (tiny_network / paths[index]).read_bytes()


def test_draw_person_draws_where_asked_on_a_frame_of_any_size():
    from mtmct_reid.data.synth.appearance import sample_appearance

    frame = Image.new("RGB", (640, 360), (0, 0, 0))
    app = sample_appearance(np.random.default_rng(5))
    rendering.draw_person(frame, app, 400.0, 300.0, 150.0, side=1, stride=5.0, swing=2.0)
    rows, cols = np.nonzero(np.asarray(frame).any(axis=2))
    assert rows.min() >= 300 - 150 - 2 and rows.max() <= 300
    assert cols.min() >= 400 - 60 and cols.max() <= 400 + 60
    assert rows.max() - rows.min() > 0.9 * 150 and len(rows) > 0.1 * 150 * 50


def _wait_until(condition, proc, timeout=120.0):
    deadline = monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "synth ended before the point to stop it at"
        assert monotonic() < deadline, "synth never reached the point to stop it at"
        sleep(0.01)


def _rendered(parent: Path) -> int:
    return sum(1 for _ in parent.glob(".net.*.partial/*/*.jpg"))


FAULT_POINTS = {
    "SIGKILL once it holds the lock": (signal.SIGKILL, lambda p: (p / ".net.lock").exists()),
    "SIGKILL while rendering": (signal.SIGKILL, lambda p: _rendered(p) >= 20),
    "SIGINT while rendering": (signal.SIGINT, lambda p: _rendered(p) >= 20),
}


@pytest.mark.parametrize("point", list(FAULT_POINTS))
def test_a_killed_or_interrupted_run_leaves_nothing_finished_and_a_rerun_cleans_up(tmp_path, point):
    signum, reached = FAULT_POINTS[point]
    out = tmp_path / "net"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = ["synth", str(out), "--ids", "400", "--cameras", "4", "--image-size", "32x16"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtmct_reid", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        _wait_until(lambda: reached(tmp_path), proc)
        os.killpg(proc.pid, signum)
        code = proc.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert code != 0 and not out.exists()
    if signum == signal.SIGINT:
        assert code == 130 and list(tmp_path.iterdir()) == []
    summary = generate_network(out, num_ids=8, num_cameras=2, image_size=(32, 16), progress=False)
    assert summary.num_images == len(load_ground_truth(out)["images"]["path"])
    assert [p.name for p in tmp_path.iterdir()] == ["net"]


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_works(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "net"
    started, release = threading.Event(), threading.Event()
    real_render = rendering.render_box

    def slow_render(*args, **kwargs):
        started.set()
        assert release.wait(60)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(rendering, "render_box", slow_render)
    first = {}
    worker = threading.Thread(
        target=lambda: first.update(
            summary=generate_network(
                out, num_ids=8, num_cameras=2, seed=1, image_size=(32, 16), progress=False
            )
        )
    )
    worker.start()
    try:
        assert started.wait(60)
        args = ["synth", str(out), "--ids", "8", "--cameras", "2", "--seed", "2"]
        assert cli.main([*args, "--image-size", "32x16", "--force"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"(pid {os.getpid()}) is writing this folder" in err[0]
    finally:
        release.set()
        worker.join()
    assert load_ground_truth(out)["seed"] == 1 and "summary" in first
    assert [p.name for p in tmp_path.iterdir()] == ["net"]


def test_an_image_size_beyond_the_bound_is_refused_before_any_work(tmp_path, capsys):
    for size, message in (
        ("100000x100000", "--image-size '100000x100000': height and width must be at most 65535"),
        ("2000x1000", "image_size=(2000, 1000) (expected (height, width) of at least 32x16 and at"),
    ):
        assert cli.main(["synth", str(tmp_path / "net"), "--image-size", size]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lookalike_fraction", "abc", "lookalike_fraction='abc' (expected a finite number)"),
        ("bin_width", "abc", "bin_width='abc' (expected an integer within int64)"),
        ("visits_range", 5, "visits_range=5 (expected (min, max) of integers)"),
        ("num_ids", 10**30, "num_ids=1000000000000000000000000000000 (expected an integer"),
        ("lookalike_margin", 1e300, "lookalike_margin=1e+300 (expected 0..999999 frames)"),
    ],
)
def test_config_fields_of_the_wrong_kind_or_size_are_named(field, value, message):
    with pytest.raises(ReIDError) as info:
        SynthConfig(**{field: value}).validate()
    assert str(info.value) == message or str(info.value).startswith(message)
