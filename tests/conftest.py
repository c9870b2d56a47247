"""Shared pytest fixtures: a tiny synthetic camera network generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Arguments of the session's tiny network (tests may compare against them).
TINY_NETWORK = {"num_ids": 36, "num_cameras": 4, "seed": 0, "image_size": (64, 32)}


@pytest.fixture(scope="session")
def tiny_network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a small Market-layout network (36 ids, 4 cameras, 64×32 images) with its
    ``ground_truth.json``; generated once (~0.3 s) and shared read-only by every test."""
    from mtmct_reid.data.synth import generate_network

    root = tmp_path_factory.mktemp("synth") / "tiny_network"
    generate_network(root, progress=False, **TINY_NETWORK)
    return root


@pytest.fixture(scope="session")
def small_market(tiny_network: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Market folder with a few of the tiny network's images (2 train, 5 query, 11 gallery),
    for tests that run a network over every image."""
    import shutil

    root = tmp_path_factory.mktemp("small") / "Market-1501"
    for folder, count in (("bounding_box_train", 2), ("query", 5), ("bounding_box_test", 11)):
        (root / folder).mkdir(parents=True)
        for path in sorted((tiny_network / folder).glob("*.jpg"))[:count]:
            shutil.copy(path, root / folder / path.name)
    return root
