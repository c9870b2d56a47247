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
