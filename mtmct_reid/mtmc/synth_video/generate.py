"""Writing the synthetic video network: both periods as MTMC roots (frames or video, ``gt``,
``det``) and ``ground_truth.json``, built in a temporary folder and renamed into place."""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtmct_reid._io import umask_mode, write_json
from mtmct_reid.data.synth.config import STREAM_GRAPH, STREAM_PEOPLE, stream
from mtmct_reid.data.synth.graph import CameraGraph, build_graph
from mtmct_reid.data.synth.people import Person, draw_identities
from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc.root import DET, GT, Boxes, Camera, create_root, write_video
from mtmct_reid.mtmc.synth_video.config import (
    GROUND_TRUTH_FORMAT,
    GROUND_TRUTH_NAME,
    GROUND_TRUTH_VERSION,
    MS_PER_SECOND,
    PERIODS,
    STREAM_DETECTIONS,
    STREAM_FRAMES,
    STREAM_SCENE,
    VideoSynthConfig,
)
from mtmct_reid.mtmc.synth_video.render import detections, make_scene, render_camera
from mtmct_reid.mtmc.synth_video.visits import Visit, plan_visits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoNetwork:
    """What :func:`generate_video_network` made (for tests and reports).

    Args:
        out: the output folder.
        config: the configuration.
        gt: per period, the ground-truth boxes written.
        det: per period, the detections written.
        cameras: per period, the cameras (with offsets).
        visits: every visit of every period.
    """

    out: Path
    config: VideoSynthConfig
    gt: Mapping[str, Boxes]
    det: Mapping[str, Boxes]
    cameras: Mapping[str, tuple[Camera, ...]]
    visits: tuple[Visit, ...]

    def describe(self) -> str:
        parts = [
            f"{p}: {len(self.cameras[p])} cameras, {len(self.gt[p])} gt boxes, "
            f"{len(np.unique(self.gt[p].ids))} ids, {len(self.det[p])} detections"
            for p in PERIODS
        ]
        return f"{self.out} ({'; '.join(parts)})"


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ReIDError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        ours = (out / GROUND_TRUTH_NAME).is_file() and GROUND_TRUTH_FORMAT in (
            out / GROUND_TRUTH_NAME
        ).read_text(errors="replace")[:2000]
        if not ours:
            raise ReIDError(
                f"{out}: not empty and not a synthetic video network; choose a new folder"
            )
        if not overwrite:
            raise ReIDError(f"{out}: holds a synthetic video network; pass --force to replace it")


def generate_video_network(
    out: str | os.PathLike,
    config: VideoSynthConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> VideoNetwork:
    """Render the network into ``out`` (built in a temporary folder beside it, then renamed).

    Args:
        out: output folder (new or empty; with ``overwrite``, one this function made before).
        config: the network (default :class:`VideoSynthConfig`).
        overwrite: replace an earlier synthetic video network in ``out``.
        progress: show a progress bar.

    Example:
        >>> import tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> net = generate_video_network(folder.name + "/net", VideoSynthConfig.small(
        ...     duration=20.0, num_ids=4, lookalike_fraction=0.0), progress=False)
        >>> sorted(net.gt)
        ['test', 'train']
        >>> folder.cleanup()
    """
    from tqdm.auto import tqdm

    config = config or VideoSynthConfig()
    config.validate()
    out = Path(out)
    _check_out(out, overwrite)
    image_config = config.image_config()
    graph = build_graph(image_config, stream(config.seed, STREAM_GRAPH))
    people, groups = draw_identities(image_config, stream(config.seed, STREAM_PEOPLE))
    visits = plan_visits(config, graph, people, groups)
    appearances = {p.pid: p.appearance for p in people}
    heights = {p.pid: p.appearance.height for p in people}
    scenes = {cam: make_scene(config, image_config, cam) for cam in graph.cameras}
    height, width = config.frame_size

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        gts: dict[str, Boxes] = {}
        dets: dict[str, Boxes] = {}
        cameras: dict[str, tuple[Camera, ...]] = {}
        bar = tqdm(
            total=len(PERIODS) * config.num_cameras,
            desc="synth --video",
            unit="camera",
            disable=not progress,
        )
        for p_index, period in enumerate(PERIODS):
            start = 0.0 if period == "train" else config.test_start
            delay_rng = stream(config.seed, STREAM_SCENE, 100 + p_index)
            cams = tuple(
                Camera(
                    id=cam,
                    name=str(cam),
                    fps=config.fps,
                    offset=round(start + float(delay_rng.uniform(0, config.max_start_delay)), 3),
                    width=width,
                    height=height,
                )
                for cam in graph.cameras
            )
            cameras[period] = cams
            root = create_root(tmp / period, cams)
            gt_parts, det_parts = [], []
            for camera in cams:
                num_frames = int(math.floor((start + config.duration - camera.offset) * config.fps))
                mine = [v for v in visits if v.camera == camera.id and v.exit >= camera.offset]
                frames_rng = stream(config.seed, STREAM_FRAMES, p_index, camera.id)
                rows: list[tuple] = []
                frame_iter = render_camera(
                    config,
                    scenes[camera.id],
                    camera,
                    num_frames,
                    mine,
                    appearances,
                    heights,
                    frames_rng,
                )

                def images(frame_iter=frame_iter, rows=rows):
                    for f, frame in enumerate(frame_iter, start=1):
                        for pid, box, vis in zip(
                            frame.ids, frame.boxes, frame.visibility, strict=True
                        ):
                            rows.append((f, pid, *box, vis))
                        yield frame.image

                cam_dir = root.camera_dir(camera.id)
                if config.video_file:
                    write_video(cam_dir / "video.mp4", images(), fps=config.fps)
                else:
                    folder = cam_dir / "img1"
                    folder.mkdir(parents=True, exist_ok=True)
                    for f, image in enumerate(images(), start=1):
                        Image.fromarray(image).save(
                            folder / f"{f:06d}.jpg", quality=config.jpeg_quality
                        )
                table = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
                gt = Boxes.from_columns(
                    cams=np.full(len(table), camera.id),
                    frames=table[:, 0],
                    ids=table[:, 1],
                    x=table[:, 2],
                    y=table[:, 3],
                    w=table[:, 4],
                    h=table[:, 5],
                    cls=np.ones(len(table)),
                    visibility=table[:, 6],
                ).sorted()
                det = detections(
                    config,
                    gt,
                    num_frames,
                    camera.id,
                    stream(config.seed, STREAM_DETECTIONS, p_index, camera.id),
                )
                gt_parts.append(gt)
                det_parts.append(det)
                bar.update(1)
            gts[period] = Boxes.concat(gt_parts).sorted()
            dets[period] = Boxes.concat(det_parts).sorted()
            root.write_boxes(gts[period], GT)
            root.write_boxes(dets[period], DET)
        bar.close()
        write_json(tmp / GROUND_TRUTH_NAME, _ground_truth(config, graph, people, visits, cameras))
        os.chmod(tmp, umask_mode(0o777))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return VideoNetwork(
        out=out, config=config, gt=gts, det=dets, cameras=cameras, visits=tuple(visits)
    )


def _ground_truth(
    config: VideoSynthConfig,
    graph: CameraGraph,
    people: list[Person],
    visits: list[Visit],
    cameras: Mapping[str, tuple[Camera, ...]],
) -> dict[str, Any]:
    links = []
    for link in graph.links:
        entry = {
            "from": link.source,
            "to": link.target,
            "kind": link.kind,
            "mean_s": link.mean / MS_PER_SECOND,
            "std_s": link.std / MS_PER_SECOND,
        }
        links.append(entry)
    return {
        "format": GROUND_TRUTH_FORMAT,
        "version": GROUND_TRUTH_VERSION,
        "config": config.to_json(),
        "time_unit": "seconds on the common clock; transit = centre of one visit to centre of the next",
        "graph": {
            "cameras": list(graph.cameras),
            "camera_order": list(graph.order),
            "links": links,
        },
        "periods": {
            period: {
                "cameras": [
                    {
                        "camera": c.id,
                        "fps": c.fps,
                        "offset": c.offset,
                        "width": c.width,
                        "height": c.height,
                    }
                    for c in cams
                ],
                "ids": sorted(p.pid for p in people if p.split == period),
            }
            for period, cams in cameras.items()
        },
        "lookalike_groups": [
            sorted(p.pid for p in people if p.group == g)
            for g in sorted({p.group for p in people if p.group >= 0})
        ],
        "visits": [
            {
                "pid": v.pid,
                "camera": v.camera,
                "enter": v.enter,
                "centre": round(v.centre, 4),
                "exit": v.exit,
            }
            for v in sorted(visits, key=lambda v: (v.enter, v.pid))
        ],
    }
