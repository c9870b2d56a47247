"""What an MTMC root holds (``dataset info ROOT``), annotated preview frames, and a Market-layout crop
dataset cut from its ground truth (``dataset crops ROOT --out DIR``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc.root import DET, GT, Boxes, MTMCRoot
from mtmct_reid.validation import positive_int

log = logging.getLogger(__name__)


def root_summary(root: MTMCRoot) -> dict[str, Any]:
    """Cameras (fps, offset, frames, size, duration), the common-clock span and, per box source,
    boxes, ids and the frames they cover.

    Example:
        >>> import tempfile
        >>> from mtmct_reid.mtmc.root import GT, Camera, create_root
        >>> folder = tempfile.TemporaryDirectory()
        >>> root = create_root(folder.name, [Camera(id=1, name="1", fps=10.0, offset=0.0)])
        >>> _ = root.write_boxes(Boxes.from_columns(cams=[1, 1], frames=[1, 3], ids=[4, 4],
        ...                                         x=[0, 2], y=[0, 0], w=[5, 5], h=[9, 9]), GT)
        >>> summary = root_summary(root)
        >>> summary["sources"]["gt"]["boxes"], summary["sources"]["gt"]["time_range"]
        (2, [0.0, 0.2])
        >>> folder.cleanup()
    """
    cameras = []
    starts, ends = [], []
    for c in root.cameras:
        n = root.num_frames(c.id)
        size = root.frame_size(c.id)
        cameras.append(
            {
                "camera": c.id,
                "name": c.name,
                "fps": c.fps,
                "offset": c.offset,
                "frames": n,
                "width": None if size is None else size[0],
                "height": None if size is None else size[1],
                "media": "img1"
                if (root.camera_dir(c.id) / "img1").is_dir()
                else (root.video_path(c.id).name if root.video_path(c.id) else None),
            }
        )
        if n is not None:
            starts.append(c.offset)
            ends.append(c.offset + n / c.fps)
    sources = {}
    for source in root.sources():
        boxes = root.read_boxes(source)
        per_camera = {
            str(cam): {
                "boxes": int(np.sum(boxes.cams == cam)),
                "ids": int(len(np.unique(boxes.ids[(boxes.cams == cam) & (boxes.ids >= 0)]))),
            }
            for cam in root.camera_ids.tolist()
        }
        times = root.times(boxes)
        sources[source] = {
            "boxes": len(boxes),
            "ids": int(len(np.unique(boxes.ids[boxes.ids >= 0]))),
            "time_range": [float(times.min()), float(times.max())] if len(boxes) else None,
            "cameras": per_camera,
        }
    return {
        "root": str(root.path),
        "cameras": cameras,
        "clock": {
            "start": min(starts) if starts else None,
            "end": max(ends) if ends else None,
            "duration": (max(ends) - min(starts)) if starts else None,
        },
        "sources": sources,
    }


def format_root_summary(summary: dict[str, Any]) -> str:
    """The summary as a few lines of text."""
    lines = [f"MTMC root: {summary['root']}"]
    lines.append("camera  fps  offset(s)  frames  size       media")
    for c in summary["cameras"]:
        size = f"{c['width']}x{c['height']}" if c["width"] else "?"
        lines.append(
            f"{c['name']:>6}  {c['fps']:g}  {c['offset']:>9.3f}  {c['frames'] if c['frames'] is not None else '?':>6}  "
            f"{size:<9}  {c['media'] or '-'}"
        )
    clock = summary["clock"]
    if clock["duration"] is not None:
        lines.append(
            f"common clock: {clock['start']:.3f} s to {clock['end']:.3f} s ({clock['duration']:.1f} s)"
        )
    for source, s in summary["sources"].items():
        per = ", ".join(f"{cam}: {v['boxes']}" for cam, v in s["cameras"].items())
        span = f", {s['time_range'][0]:.1f}-{s['time_range'][1]:.1f} s" if s["time_range"] else ""
        lines.append(f"{source}: {s['boxes']} boxes, {s['ids']} ids{span} (per camera {per})")
    return "\n".join(lines)


def _colour(identity: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(identity + 7)
    return tuple(int(v) for v in rng.integers(60, 256, size=3))


def write_previews(
    root: MTMCRoot, out: str | os.PathLike, source: str | None = None, frame: int | None = None
) -> list[Path]:
    """One annotated frame per camera (boxes and ids of ``source``), as ``out/camera_<name>.png``.

    Args:
        root: the network.
        out: folder to write into.
        source: box source (default ``gt``, else ``det``, else the first tracks file).
        frame: which frame (default the camera's frame with the most boxes).
    """
    from PIL import Image, ImageDraw

    from mtmct_reid._io import atomic_path

    sources = root.sources()
    if source is None:
        source = (
            GT if GT in sources else DET if DET in sources else (sources[0] if sources else None)
        )
    boxes = root.read_boxes(source) if source else Boxes.empty()
    out = Path(out)
    written = []
    for c in root.cameras:
        mine = boxes.camera(c.id)
        if frame is not None:
            chosen = frame
        elif len(mine):
            frames, counts = np.unique(mine.frames, return_counts=True)
            chosen = int(frames[np.argmax(counts)])
        else:
            chosen = 1
        image = next(root.iter_frames(c.id, [chosen]))[1]
        scale = max(1, int(np.ceil(480 / image.shape[1])))  # small frames drawn larger, for reading
        canvas = Image.fromarray(image).resize(
            (image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST
        )
        draw = ImageDraw.Draw(canvas)
        here = mine.select(mine.frames == chosen)
        for i in range(len(here)):
            x, y, w, h = (float(v) * scale for v in here.xywh[i])
            colour = _colour(int(here.ids[i])) if here.ids[i] >= 0 else (255, 255, 255)
            draw.rectangle((x, y, x + w, y + h), outline=colour, width=2)
            label = str(int(here.ids[i])) if here.ids[i] >= 0 else f"{here.conf[i]:.2f}"
            draw.rectangle(
                (x, max(y - 12, 0), x + 7 * len(label) + 4, max(y - 12, 0) + 12), fill=colour
            )
            draw.text((x + 2, max(y - 12, 0)), label, fill=(0, 0, 0))
        title = f"camera {c.name}  frame {chosen}  t={c.times(np.array([chosen]))[0]:.2f} s  {source}: {len(here)} boxes"
        draw.rectangle((0, 0, 8 * len(title) // 1 + 6, 14), fill=(0, 0, 0))
        draw.text((3, 1), title, fill=(255, 255, 255))
        path = out / f"camera_{c.name}.png"
        with atomic_path(path) as tmp:
            canvas.save(tmp, format="PNG")
        written.append(path)
    return written


def write_crop_dataset(
    root: MTMCRoot,
    out: str | os.PathLike,
    source: str = GT,
    query_per_camera: int = 1,
    step: int = 1,
    min_visibility: float = 0.0,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Cut every ground-truth box into a Market-1501 layout with times on the common clock.

    Identities are split in halves by id (lower half train, upper half test, as Market splits
    its people); for each test identity and camera, ``query_per_camera`` boxes go to ``query`` and
    the rest to ``bounding_box_test``. File names ``{pid:04d}_c{camera}s1_{time:06d}_00.jpg``
    carry the common-clock time in hundredths of a second (the time unit of the whole dataset, so
    the transit-time model's bins of 100 are seconds); ``manifest.csv`` (``path,pid,camera,time,
    split``, the same times) is written beside.

    Args:
        root: the network.
        out: the dataset folder (new or empty; ``overwrite`` replaces an earlier one).
        source: the labelled box source.
        query_per_camera: query boxes per test identity and camera.
        step: keep every ``step``-th box of each identity and camera (neighbouring frames are
            near duplicates).
        min_visibility: leave out boxes less visible than this (when the source has visibility).
        seed: which boxes become queries.
        overwrite: replace an earlier crop dataset in ``out``.

    Returns:
        Counts per split and the table of rows written (path, pid, camera, time, split).
    """
    import csv
    import io
    import shutil
    import tempfile

    from PIL import Image

    from mtmct_reid._io import umask_mode

    step = positive_int("crops: step", step)
    query_per_camera = positive_int("crops: query per camera", query_per_camera)
    out = Path(out)
    marker = out / "manifest.csv"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (marker.is_file() and (out / "bounding_box_train").is_dir()):
            raise ReIDError(f"{out}: not empty and not a crop dataset; choose a new folder")
        if not overwrite:
            raise ReIDError(f"{out}: holds a crop dataset; pass --force to replace it")
    boxes = root.read_boxes(source)
    boxes = boxes.select(
        (boxes.ids > 0) & ((boxes.visibility < 0) | (boxes.visibility >= min_visibility))
    )
    if max(root.camera_ids) > 9 or min(root.camera_ids) < 1:
        raise ReIDError(
            f"{root.path}: crops need cameras 1..9 (Market names hold one camera digit); cameras "
            f"{root.camera_ids.tolist()}"
        )
    # Every step-th box of each (identity, camera), in time order.
    order = np.lexsort((boxes.frames, boxes.cams, boxes.ids))
    b = boxes.select(order)
    new_group = np.r_[True, (np.diff(b.ids) != 0) | (np.diff(b.cams) != 0)]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(b)), 0))
    b = b.select(((np.arange(len(b)) - group_start) % step) == 0)
    times = root.times(b)
    if len(b) and times.min() < 0:
        raise ReIDError(f"{root.path}: negative common-clock times cannot be Market file names")
    ids = np.unique(b.ids)
    train_ids = set(ids[: len(ids) // 2].tolist())
    split = np.where(np.isin(b.ids, list(train_ids)), "train", "gallery").astype("<U7")
    rng = np.random.default_rng(seed)
    for pid in ids[len(ids) // 2 :].tolist():
        for cam in np.unique(b.cams[b.ids == pid]).tolist():
            rows = np.flatnonzero((b.ids == pid) & (b.cams == cam))
            if len(rows) > query_per_camera:
                split[rng.choice(rows, size=query_per_camera, replace=False)] = "query"
    folder = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    centi = np.rint(times * 100).astype(np.int64)
    names = [
        f"{pid:04d}_c{cam}s1_{t:06d}_{k:02d}.jpg"
        for k, (pid, cam, t) in enumerate(
            zip(b.ids.tolist(), b.cams.tolist(), centi.tolist(), strict=True)
        )
    ]
    # The last two digits hold a running number, so two boxes at the same hundredth stay apart.
    names = [n[:-6] + f"{i % 100:02d}.jpg" for i, n in enumerate(names)]
    if len(b) and centi.max() > 999_999:
        raise ReIDError(
            f"{root.path}: common-clock times up to {times.max():.0f} s do not fit Market names "
            "(hundredths of a second, 6 digits)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for sub in folder.values():
            (tmp / sub).mkdir()
        paths = [f"{folder[s]}/{n}" for s, n in zip(split.tolist(), names, strict=True)]
        for batch in root.iter_crops(b, batch_size=256):
            for r, crop in zip(batch.rows.tolist(), batch.images, strict=True):
                Image.fromarray(crop).save(tmp / paths[r], quality=95)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["path", "pid", "camera", "time", "split"])
        manifest_split = np.where(split == "train", "train", split)
        for p, pid, cam, t, s in zip(
            paths,
            b.ids.tolist(),
            b.cams.tolist(),
            centi.tolist(),
            manifest_split.tolist(),
            strict=True,
        ):
            writer.writerow([p, pid, cam, t, s])
        (tmp / "manifest.csv").write_text(text.getvalue())
        os.chmod(tmp, umask_mode(0o777))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    counts = {s: int(np.sum(split == s)) for s in ("train", "query", "gallery")}
    return {
        "out": str(out),
        "counts": counts,
        "ids": {"train": len(train_ids), "test": len(ids) - len(train_ids)},
        "paths": paths,
        "pids": b.ids,
        "cams": b.cams,
        "times": times,
        "splits": split,
    }
