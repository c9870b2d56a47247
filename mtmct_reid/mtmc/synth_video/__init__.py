"""A synthetic camera network as video: ``mtmct-reid synth OUT --video``.

The same camera graph and people as ``mtmct-reid synth`` (its graph, identities, look-alike groups and
appearances, from the same seed), rendered as frames on a common clock instead of cropped boxes:

* each camera has a background with its own colour cast, a floor and 1-3 static occluders (pillars,
  planters) drawn in front of the people;
* a visit is a walk across the floor from one frame edge to the other, the person's size following
  its depth (perspective); people cross and hide each other, nearer ones in front;
* a person's visits follow a walk along the graph's links, consecutive visit centres a transit time
  apart (drawn from the link's distribution, in seconds); look-alikes (same clothes and build) walk
  one after another, further apart than any plausible transit, so appearance alone confuses them and
  timing does not;
* two periods, ``OUT/train/`` (the training identities) and ``OUT/test/`` (the others, an hour
  later), each an MTMC root: ``cameras.csv`` with every camera's clock offset (each camera starts a
  little after the period, at its own time), ``img1/*.jpg`` (or ``video.mp4``), ``gt/gt.txt`` (the
  visible part of every box, global ids, visibility), ``det/det.txt`` (gt boxes jittered, missed when
  mostly hidden or at random, plus false boxes);
* ``OUT/ground_truth.json``: configuration, graph with transit distributions in seconds, camera
  offsets and every visit (person, camera, enter/centre/exit seconds).

Same seed, same bytes (JPEG frames; an MP4 depends on the FFmpeg build).

The package follows the generator's stages: :mod:`~mtmct_reid.mtmc.synth_video.config` (the knobs),
:mod:`~mtmct_reid.mtmc.synth_video.visits` (walks on the common clock),
:mod:`~mtmct_reid.mtmc.synth_video.render` (scenes, frames, detections) and
:mod:`~mtmct_reid.mtmc.synth_video.generate` (the files).
"""

from __future__ import annotations

from mtmct_reid.mtmc.synth_video.config import (
    GROUND_TRUTH_FORMAT,
    GROUND_TRUTH_NAME,
    GROUND_TRUTH_VERSION,
    PERIODS,
    VideoSynthConfig,
)
from mtmct_reid.mtmc.synth_video.generate import VideoNetwork, generate_video_network
from mtmct_reid.mtmc.synth_video.render import Scene, make_scene
from mtmct_reid.mtmc.synth_video.visits import Visit, plan_visits

__all__ = [
    "GROUND_TRUTH_FORMAT",
    "GROUND_TRUTH_NAME",
    "GROUND_TRUTH_VERSION",
    "PERIODS",
    "Scene",
    "VideoNetwork",
    "VideoSynthConfig",
    "Visit",
    "generate_video_network",
    "make_scene",
    "plan_visits",
]
