"""The synthetic video network's configuration (:class:`VideoSynthConfig`), its constants and random
streams."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mtmct_reid.data.synth.config import SynthConfig
from mtmct_reid.errors import ReIDError

GROUND_TRUTH_NAME = "ground_truth.json"
GROUND_TRUTH_FORMAT = "mtmct-reid-synth-video"
GROUND_TRUTH_VERSION = 1
PERIODS = ("train", "test")
# Random streams of the video renderer, apart from the image synthesiser's (1-4).
STREAM_WALKS, STREAM_SCENE, STREAM_FRAMES, STREAM_DETECTIONS = 11, 12, 13, 14
#: Transit times are drawn in milliseconds (the graph's links sample whole units).
MS_PER_SECOND = 1000.0
#: Box width as a fraction of the person's height times their build (arms and bag included).
BOX_WIDTH = 1.6


@dataclass(frozen=True)
class VideoSynthConfig:
    """Every knob of the synthetic video network.

    Args:
        num_ids: identities, half in the training period, half in the test period.
        num_cameras: cameras 1..C (2..9).
        seed: seed of every random draw.
        frame_size: (height, width) of the frames in pixels (even numbers, for video codecs).
        fps: frames per second of every camera.
        duration: seconds of each period.
        test_start: common-clock second at which the test period starts (the training one at 0).
        max_start_delay: each camera starts up to this many seconds after its period (its offset).
        visits_range: least and most cameras a person walks through.
        visit_seconds: range of the time a person takes to cross a camera's view.
        transit_mean_range: range of a link's mean transit time (visit centre to visit centre), s.
        transit_cv_range: range of a link's coefficient of variation.
        lookalike_fraction: fraction of the identities in look-alike groups.
        lookalike_group_size: identities per look-alike group.
        lookalike_margin: seconds added to the longest plausible transit between look-alikes' walks.
        occluders_range: least and most static occluders per camera.
        det_jitter: standard deviation of detection box noise, as a fraction of the box height.
        det_min_visibility: a box less visible than this is never detected.
        det_miss_prob: probability of missing a visible box.
        det_false_rate: mean false detections per frame.
        jpeg_quality: JPEG quality of the frames.
        video_file: write ``video.mp4`` per camera (PyAV) instead of ``img1/*.jpg``.

    Example:
        >>> VideoSynthConfig.small().num_cameras
        3
    """

    num_ids: int = 60
    num_cameras: int = 4
    seed: int = 0
    frame_size: tuple[int, int] = (144, 256)
    fps: float = 8.0
    duration: float = 120.0
    test_start: float = 3600.0
    max_start_delay: float = 2.0
    visits_range: tuple[int, int] = (2, 3)
    visit_seconds: tuple[float, float] = (3.5, 6.0)
    transit_mean_range: tuple[float, float] = (8.0, 18.0)
    transit_cv_range: tuple[float, float] = (0.08, 0.2)
    lookalike_fraction: float = 0.5
    lookalike_group_size: int = 2
    lookalike_margin: float = 4.0
    occluders_range: tuple[int, int] = (1, 3)
    det_jitter: float = 0.04
    det_min_visibility: float = 0.35
    det_miss_prob: float = 0.03
    det_false_rate: float = 0.03
    jpeg_quality: int = 90
    video_file: bool = False

    @classmethod
    def small(cls, **changes: Any) -> VideoSynthConfig:
        """A network that renders in seconds: 16 people, 3 cameras, 90 s periods of 160×96 frames at 8 fps."""
        base = cls(
            num_ids=16,
            num_cameras=3,
            frame_size=(96, 160),
            fps=8.0,
            duration=90.0,
            transit_mean_range=(7.0, 12.0),
            visits_range=(2, 2),
        )
        return dataclasses.replace(base, **changes)

    def validate(self) -> None:
        """Raise :class:`ReIDError` naming the first knob out of range."""
        h, w = self.frame_size
        checks = [
            (2 <= self.num_ids <= 10_000, "num_ids", "2..10000"),
            (2 <= self.num_cameras <= 9, "num_cameras", "2..9"),
            (
                h >= 48 and w >= 64 and h % 2 == 0 and w % 2 == 0 and h * w <= 1920 * 1080,
                "frame_size",
                "even height >= 48 and width >= 64, at most 1920x1080",
            ),
            (math.isfinite(self.fps) and 1 <= self.fps <= 60, "fps", "1..60"),
            (math.isfinite(self.duration) and 5 <= self.duration <= 3600, "duration", "5..3600 s"),
            (
                math.isfinite(self.test_start) and self.test_start >= self.duration,
                "test_start",
                ">= duration",
            ),
            (
                0 <= self.max_start_delay < self.duration / 2,
                "max_start_delay",
                "in [0, duration/2)",
            ),
            (
                2 <= self.visits_range[0] <= self.visits_range[1] <= self.num_cameras,
                "visits_range",
                "2 <= least <= most <= num_cameras",
            ),
            (
                0.5 <= self.visit_seconds[0] <= self.visit_seconds[1],
                "visit_seconds",
                "0.5 <= least <= most",
            ),
            (
                0 < self.transit_mean_range[0] <= self.transit_mean_range[1],
                "transit_mean_range",
                "0 < least <= most",
            ),
            (
                0 <= self.transit_cv_range[0] <= self.transit_cv_range[1] <= 1,
                "transit_cv_range",
                "0 <= least <= most <= 1",
            ),
            (0 <= self.lookalike_fraction <= 1, "lookalike_fraction", "in [0, 1]"),
            (self.lookalike_group_size >= 2, "lookalike_group_size", ">= 2"),
            (self.lookalike_margin >= 0, "lookalike_margin", ">= 0"),
            (
                0 <= self.occluders_range[0] <= self.occluders_range[1] <= 6,
                "occluders_range",
                "0..6",
            ),
            (0 <= self.det_jitter <= 0.5, "det_jitter", "in [0, 0.5]"),
            (0 <= self.det_min_visibility <= 1, "det_min_visibility", "in [0, 1]"),
            (0 <= self.det_miss_prob <= 1, "det_miss_prob", "in [0, 1]"),
            (0 <= self.det_false_rate <= 10, "det_false_rate", "in [0, 10]"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality", "1..100"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise ReIDError(
                    f"synth --video: {name} = {getattr(self, name)!r}, expected {expected}"
                )

    def image_config(self) -> SynthConfig:
        """The image synthesiser's configuration with this network's graph and people: same seed,
        cameras, identities and look-alike groups; transit times in milliseconds."""
        return SynthConfig(
            num_ids=self.num_ids,
            num_cameras=self.num_cameras,
            seed=self.seed,
            visits_range=self.visits_range,
            transit_mean_range=(
                self.transit_mean_range[0] * MS_PER_SECOND,
                self.transit_mean_range[1] * MS_PER_SECOND,
            ),
            transit_cv_range=self.transit_cv_range,
            lookalike_fraction=self.lookalike_fraction,
            lookalike_group_size=self.lookalike_group_size,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }
