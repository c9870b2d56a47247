"""A synthetic camera network in the Market-1501 layout, with its ground truth.

No real dataset can be downloaded where this project is built and tested, so every stage (training, the
transit-time model, fusion, re-ranking, the demo) is proven on a network generated here. The package is
split along the stages of the generator, each usable on its own (a video renderer reuses them):

* :mod:`~mtmct_reid.data.synth.config` — :class:`SynthConfig`, every knob and its limits, and the
  independent random stream of each stage (:func:`~mtmct_reid.data.synth.config.stream`);
* :mod:`~mtmct_reid.data.synth.graph` — the random directed camera graph (:class:`CameraGraph`) and each
  link's transit-time distribution (:class:`TransitLink`): sampling walks and transit times;
* :mod:`~mtmct_reid.data.synth.appearance` — what people look like (:class:`Appearance`), look-alikes;
* :mod:`~mtmct_reid.data.synth.people` — identities, look-alike groups and the schedule of visits;
* :mod:`~mtmct_reid.data.synth.rendering` — camera backgrounds and optics, drawing one person;
* :mod:`~mtmct_reid.data.synth.market` — the Market protocol (train/query/gallery, distractors with id
  ``0000``, junk with id ``-1``) and the Market file names;
* :mod:`~mtmct_reid.data.synth.ground_truth` — ``ground_truth.json``: writing, reading, and the true
  transit-time densities;
* :mod:`~mtmct_reid.data.synth.generate` — :func:`generate_network`, which writes it all.

People come in **groups of look-alikes** (same clothes and build, tiny jitter) whose walks are far apart
in time, so that appearance alone confuses them and timing does not: the situation where st-ReID's
fusion helps.
"""

from __future__ import annotations

from mtmct_reid.data.synth.appearance import Appearance
from mtmct_reid.data.synth.config import (
    GROUND_TRUTH_FORMAT,
    GROUND_TRUTH_NAME,
    GROUND_TRUTH_VERSION,
    MAX_CAMERAS,
    MAX_FRAME,
    MIN_IMAGE_SIZE,
    TRANSIT_KINDS,
    SynthConfig,
)
from mtmct_reid.data.synth.generate import SynthSummary, generate_network
from mtmct_reid.data.synth.graph import CameraGraph, TransitLink
from mtmct_reid.data.synth.ground_truth import load_ground_truth, transit_ground_truth

__all__ = [
    "GROUND_TRUTH_FORMAT",
    "GROUND_TRUTH_NAME",
    "GROUND_TRUTH_VERSION",
    "MAX_CAMERAS",
    "MAX_FRAME",
    "MIN_IMAGE_SIZE",
    "TRANSIT_KINDS",
    "Appearance",
    "CameraGraph",
    "SynthConfig",
    "SynthSummary",
    "TransitLink",
    "generate_network",
    "load_ground_truth",
    "transit_ground_truth",
]
