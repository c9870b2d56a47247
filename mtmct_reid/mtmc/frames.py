"""Pixels of an MTMC root: frame files and videos read one frame at a time, crops, video writing.

Videos go through PyAV (the ``video`` extra), imported inside the functions that need it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtmct_reid._io import atomic_path
from mtmct_reid.errors import ReIDError, first_line

log = logging.getLogger(__name__)

_VIDEO_EXTRA = "PyAV is needed to read video: pip install 'mtmct-reid[video]'"


@dataclass(frozen=True)
class CropBatch:
    """Crops of some boxes.

    Args:
        rows: index of each crop's box in the :class:`Boxes` that was cropped, int64 [B].
        images: uint8 RGB crops, [B, H, W, 3] when a size was asked for, else a list of [h, w, 3].
    """

    rows: np.ndarray
    images: np.ndarray | list[np.ndarray]


def crop_batch(
    rows: list[int], images: list[np.ndarray], size: tuple[int, int] | None
) -> CropBatch:
    """A :class:`CropBatch` of ``rows`` and their crops, stacked when they share a ``size``."""
    return CropBatch(
        rows=np.asarray(rows, dtype=np.int64), images=np.stack(images) if size else images
    )


def crop_box(
    image: np.ndarray, x: float, y: float, w: float, h: float, size: tuple[int, int] | None
) -> np.ndarray:
    """The pixels of box ``x, y, w, h`` (outward to whole pixels, at least one, inside the image),
    resized bilinearly to ``size`` = ``(height, width)`` when given.

    Example:
        >>> image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
        >>> crop_box(image, 0.5, 1.0, 2.0, 9.0, None).shape
        (3, 3, 3)
        >>> crop_box(image, 0, 0, 6, 4, (8, 4)).shape
        (8, 4, 3)
    """
    height, width = image.shape[:2]
    x1 = min(max(int(math.floor(x)), 0), width - 1)
    y1 = min(max(int(math.floor(y)), 0), height - 1)
    x2 = min(max(int(math.ceil(x + w)), x1 + 1), width)
    y2 = min(max(int(math.ceil(y + h)), y1 + 1), height)
    crop = image[y1:y2, x1:x2]
    if size is None:
        return crop.copy()
    from PIL import Image

    return np.asarray(Image.fromarray(crop).resize((size[1], size[0]), Image.BILINEAR))


def iter_image_frames(
    paths: list[Path], wanted: np.ndarray | None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame, RGB uint8 [H, W, 3])`` from frame files, ``paths[f - 1]`` being frame ``f``.

    Args:
        paths: the camera's frame files in order.
        wanted: sorted unique 1-based frames (None: every frame).
    """
    from PIL import Image

    numbers = range(1, len(paths) + 1) if wanted is None else wanted.tolist()
    for frame in numbers:
        if frame < 1 or frame > len(paths):
            raise ReIDError(
                f"{paths[0].parent}: frame {frame} is past the camera's last frame {len(paths)}"
            )
        path = paths[frame - 1]
        try:
            with Image.open(path) as im:
                array = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise ReIDError(f"{path}: unreadable image ({first_line(exc)})") from None
        yield frame, array


def _import_av():
    try:
        import av
    except ImportError:
        raise ReIDError(_VIDEO_EXTRA) from None
    return av


def _open_video(path: Path):
    av = _import_av()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise ReIDError(f"{path}: cannot be decoded ({first_line(exc)})") from None
    if not container.streams.video:
        container.close()
        raise ReIDError(f"{path}: has no video stream")
    return av, container


def iter_video_frames(path: Path, wanted: np.ndarray | None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame, RGB uint8 [H, W, 3])`` decoding a video in order, up to the last frame wanted.

    Args:
        path: the video file.
        wanted: sorted unique 1-based frames (None: every frame).
    """
    av, container = _open_video(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        last = None if wanted is None else int(wanted[-1])
        k = 0
        frame_no = 0
        try:
            for frame in container.decode(stream):
                frame_no += 1
                if wanted is None:
                    yield frame_no, frame.to_ndarray(format="rgb24")
                else:
                    if frame_no == wanted[k]:
                        yield frame_no, frame.to_ndarray(format="rgb24")
                        k += 1
                        if k == len(wanted):
                            return
                if last is not None and frame_no >= last:
                    break
        except (av.error.FFmpegError, ValueError) as exc:
            raise ReIDError(
                f"{path}: cannot be decoded after frame {frame_no} ({first_line(exc)})"
            ) from None
        if wanted is not None and k < len(wanted):
            raise ReIDError(f"{path}: frame {wanted[k]} is past the video's last frame {frame_no}")
    finally:
        container.close()


def video_frame_count(path: Path) -> int | None:
    """Frames in a video, from its header or by counting packets; None (one warning) without PyAV."""
    try:
        av, container = _open_video(path)
    except ReIDError as exc:
        if str(exc) == _VIDEO_EXTRA:
            log.warning("%s: frames not counted (%s)", path, _VIDEO_EXTRA)
            return None
        raise
    try:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        # Containers without a frame count in their header (mkv): count packets, no decoding.
        try:
            return sum(1 for p in container.demux(stream) if p.size)
        except (av.error.FFmpegError, ValueError) as exc:
            raise ReIDError(f"{path}: cannot be decoded ({first_line(exc)})") from None
    finally:
        container.close()


def video_size(path: Path) -> tuple[int, int] | None:
    """A video's ``(width, height)``; None without PyAV."""
    try:
        _, container = _open_video(path)
    except ReIDError as exc:
        if str(exc) == _VIDEO_EXTRA:
            return None
        raise
    try:
        stream = container.streams.video[0]
        return int(stream.codec_context.width), int(stream.codec_context.height)
    finally:
        container.close()


def write_video(
    path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, codec: str = "mpeg4"
) -> Path:
    """Encode RGB uint8 frames as a video with PyAV (atomically), one frame in memory at a time.

    Args:
        path: ``.mp4``, ``.avi`` or ``.mkv`` file.
        frames: [H, W, 3] uint8 arrays, all the same size (even width and height).
        fps: frames per second.
        codec: an encoder FFmpeg has (``mpeg4`` is built into every FFmpeg).
    """
    av = _import_av()
    from fractions import Fraction

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w")
        try:
            stream = None
            for image in frames:
                if stream is None:
                    stream = container.add_stream(codec, rate=rate)
                    stream.width, stream.height = image.shape[1], image.shape[0]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"qscale": "3"} if codec == "mpeg4" else {}
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        finally:
            container.close()
    return path
