"""The MTMC root: a camera network's frames (or videos), clocks and boxes on disk.

Layout (``ROOT`` is any folder)::

    ROOT/cameras.csv                 camera,fps,offset[,width,height]
    ROOT/<camera>/img1/000001.jpg …  frames (MOTChallenge), or
    ROOT/<camera>/video.mp4|avi|mkv  one video, decoded in order by PyAV
    ROOT/<camera>/gt/gt.txt          frame,id,x,y,w,h,conf,class,visibility (ids global across cameras)
    ROOT/<camera>/det/det.txt        frame,-1,x,y,w,h,conf,-1,-1,-1
    ROOT/<camera>/tracks/NAME.txt    frame,id,x,y,w,h,conf,-1,-1,-1 (one tracker's local ids)

Frames are 1-based. ``offset`` is the time, in seconds on the network's common clock, of a camera's
frame 1, so frame ``f`` of a camera is at ``offset + (f - 1) / fps``. The ``camera`` column holds
integer ids (the folder is the id as written) or names; names become ids 1..C in sorted order, as
the CSV manifest does. The AI City single-file format (``camera_id obj_id frame_id xmin ymin width
height xworld yworld``, space separated) is read and written too.

Boxes travel as :class:`Boxes`, aligned numpy columns, never as per-box objects.

This module is the root's layout and the :class:`MTMCRoot` that reads it; the types live in
:mod:`~mtmct_reid.mtmc.boxes`, the text files in :mod:`~mtmct_reid.mtmc.textfiles` and the pixels
(frames, videos, crops) in :mod:`~mtmct_reid.mtmc.frames`. Every public name of those modules is
importable from here too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from mtmct_reid.errors import ReIDError, first_line
from mtmct_reid.mtmc.boxes import DET, GT, NO_ID, Boxes, Camera, camera_ids
from mtmct_reid.mtmc.frames import (
    CropBatch,
    crop_batch,
    crop_box,
    iter_image_frames,
    iter_video_frames,
    video_frame_count,
    video_size,
    write_video,
)
from mtmct_reid.mtmc.textfiles import (
    AICITY_FIELDS,
    CAMERAS_NAME,
    MOT_FIELDS,
    is_aicity_file,
    read_aicity,
    read_cameras,
    read_mot,
    read_mot_rows,
    write_aicity,
    write_cameras,
    write_mot,
)
from mtmct_reid.validation import positive_int

__all__ = [
    "AICITY_FIELDS",
    "CAMERAS_NAME",
    "DET",
    "FRAMES_DIR",
    "FRAME_DIGITS",
    "FRAME_SUFFIXES",
    "GT",
    "MOT_FIELDS",
    "NO_ID",
    "VIDEO_NAMES",
    "Boxes",
    "Camera",
    "CropBatch",
    "MTMCRoot",
    "camera_ids",
    "create_root",
    "is_aicity_file",
    "is_root",
    "looks_like_root",
    "read_aicity",
    "read_cameras",
    "read_mot",
    "read_root",
    "write_aicity",
    "write_cameras",
    "write_mot",
    "write_video",
]

log = logging.getLogger(__name__)

#: Video file names a camera folder may hold instead of ``img1/``, in the order they are looked for.
VIDEO_NAMES = ("video.mp4", "video.avi", "video.mkv")
FRAMES_DIR = "img1"
#: Digits of a frame file name (``000001.jpg``).
FRAME_DIGITS = 6
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


class MTMCRoot:
    """A camera network on disk (see the module documentation for the layout).

    Args:
        path: the root folder.
        cameras: its cameras, in ``cameras.csv`` order.

    Example:
        >>> import tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> tmp = folder.name
        >>> root = create_root(tmp, [Camera(id=1, name="1", fps=10.0, offset=0.0)])
        >>> gt = Boxes.from_columns(cams=[1], frames=[3], ids=[5], x=[1], y=[2], w=[3], h=[4])
        >>> _ = root.write_boxes(gt, GT)
        >>> root.read_boxes(GT).equals(gt.replace(cls=[-1]))
        True
        >>> root.times(gt).tolist()
        [0.2]
        >>> folder.cleanup()
    """

    def __init__(self, path: str | os.PathLike, cameras: Sequence[Camera]) -> None:
        self.path = Path(path)
        self.cameras = tuple(cameras)
        self._by_id = {c.id: c for c in self.cameras}
        self._num_frames: dict[int, int | None] = {}
        self._sizes: dict[int, tuple[int, int] | None] = {}

    def __repr__(self) -> str:
        return f"MTMCRoot({str(self.path)!r}, cameras={[c.name for c in self.cameras]})"

    @property
    def camera_ids(self) -> np.ndarray:
        """Camera ids, int64 [C], in ``cameras.csv`` order."""
        return np.array([c.id for c in self.cameras], dtype=np.int64)

    def camera(self, cam: int) -> Camera:
        """The camera with id ``cam``."""
        try:
            return self._by_id[int(cam)]
        except KeyError:
            raise ReIDError(
                f"{self.path / CAMERAS_NAME}: no camera {cam} (cameras "
                f"{', '.join(str(c.id) for c in self.cameras)})"
            ) from None

    def camera_dir(self, cam: int) -> Path:
        """The folder of camera ``cam``."""
        return self.path / self.camera(cam).name

    def times(self, boxes: Boxes) -> np.ndarray:
        """Common-clock seconds of every box (float64 [N])."""
        out = np.empty(len(boxes), dtype=np.float64)
        for c in self.cameras:
            sel = boxes.cams == c.id
            out[sel] = c.times(boxes.frames[sel])
        unknown = ~np.isin(boxes.cams, self.camera_ids)
        if unknown.any():
            self.camera(int(boxes.cams[np.argmax(unknown)]))  # raises, naming the camera
        return out

    # ---- files

    def source_path(self, cam: int, source: str) -> Path:
        """``gt/gt.txt``, ``det/det.txt`` or ``tracks/<source>.txt`` of camera ``cam``."""
        if source in (GT, DET):
            return self.camera_dir(cam) / source / f"{source}.txt"
        if not source or "/" in source or source.startswith("."):
            raise ReIDError(f"tracks name '{source}' is not a file name")
        return self.camera_dir(cam) / "tracks" / f"{source}.txt"

    def sources(self) -> list[str]:
        """Box sources present in at least one camera: ``gt``, ``det`` and tracker names."""
        found: list[str] = []
        for source in (GT, DET):
            if any(self.source_path(c.id, source).is_file() for c in self.cameras):
                found.append(source)
        names = set()
        for c in self.cameras:
            tracks = self.path / c.name / "tracks"
            if tracks.is_dir():
                names.update(p.stem for p in tracks.glob("*.txt") if not p.name.startswith("."))
        return found + sorted(names)

    def read_boxes(self, source: str = GT, check_frames: bool = True) -> Boxes:
        """Boxes of every camera from ``source`` (``"gt"``, ``"det"`` or a tracks name), sorted.

        Boxes partly outside a frame of known size are clipped to it and those entirely outside
        dropped, with one warning per file. A camera without the file has no boxes (one warning),
        unless no camera has it (ReIDError).

        Args:
            source: which file of each camera.
            check_frames: refuse rows past a camera's last frame (needs the frames or video).
        """
        parts = []
        missing = []
        for c in self.cameras:
            path = self.source_path(c.id, source)
            if not path.is_file():
                missing.append(path)
                continue
            boxes, lines = read_mot_rows(path, c.id, allow_no_id=source == DET)
            if check_frames and len(boxes):
                last = self.num_frames(c.id)
                if last is not None and boxes.frames.max() > last:
                    r = int(np.argmax(boxes.frames > last))
                    raise ReIDError(
                        f"{path}: row {lines[r]}: frame {boxes.frames[r]} is past the camera's "
                        f"last frame {last}"
                    )
            parts.append(self._clip(path, boxes))
        if len(missing) == len(self.cameras):
            raise ReIDError(
                f"{self.path}: no camera has {source} boxes (looked for {missing[0].relative_to(self.path)})"
            )
        for path in missing:
            log.warning("%s: not found; camera has no %s boxes", path, source)
        return Boxes.concat(parts).sorted()

    def _clip(self, path: Path, boxes: Boxes) -> Boxes:
        if not len(boxes):
            return boxes
        size = self.frame_size(int(boxes.cams[0]))
        if size is None:
            return boxes
        width, height = size
        # A hair of tolerance: "x + w" of a box written to the frame's edge may round past it.
        tol = 1e-6
        outside = (
            (boxes.x < -tol)
            | (boxes.y < -tol)
            | (boxes.x + boxes.w > width + tol)
            | (boxes.y + boxes.h > height + tol)
        )
        if not outside.any():
            return boxes
        x1 = np.clip(boxes.x, 0, width)
        y1 = np.clip(boxes.y, 0, height)
        x2 = np.clip(boxes.x + boxes.w, 0, width)
        y2 = np.clip(boxes.y + boxes.h, 0, height)
        inside = (x2 > x1) & (y2 > y1)
        log.warning(
            "%s: %d box(es) partly outside the %dx%d frame clipped to it, %d entirely outside dropped",
            path,
            int((outside & inside).sum()),
            width,
            height,
            int((~inside).sum()),
        )
        clipped = boxes.replace(
            x=np.where(outside, x1, boxes.x),
            y=np.where(outside, y1, boxes.y),
            w=np.where(outside, x2 - x1, boxes.w),
            h=np.where(outside, y2 - y1, boxes.h),
        )
        return clipped.select(inside)

    def write_boxes(
        self, boxes: Boxes, source: str, cameras: Iterable[int] | None = None
    ) -> list[Path]:
        """Write ``source`` files for every camera (an empty file where it has no boxes).

        Args:
            boxes: rows of any of the root's cameras.
            source: ``"gt"``, ``"det"`` or a tracks name.
            cameras: cameras to write (default all).
        """
        unknown = ~np.isin(boxes.cams, self.camera_ids)
        if unknown.any():
            self.camera(int(boxes.cams[np.argmax(unknown)]))
        written = []
        for cam in self.camera_ids.tolist() if cameras is None else cameras:
            written.append(write_mot(self.source_path(cam, source), boxes.camera(cam), kind=source))
        return written

    # ---- frames

    def video_path(self, cam: int) -> Path | None:
        """The camera's video file, when it has no ``img1/`` folder."""
        folder = self.camera_dir(cam)
        if (folder / FRAMES_DIR).is_dir():
            return None
        for name in VIDEO_NAMES:
            if (folder / name).is_file():
                return folder / name
        return None

    def has_frames(self, cam: int) -> bool:
        """Whether the camera has ``img1/`` frames or a video."""
        return (self.camera_dir(cam) / FRAMES_DIR).is_dir() or self.video_path(cam) is not None

    def frame_paths(self, cam: int) -> list[Path]:
        """``img1/`` frame files in order; a gap in the numbering is a ReIDError."""
        folder = self.camera_dir(cam) / FRAMES_DIR
        names = sorted(
            p.name
            for p in folder.iterdir()
            if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")
        )
        numbers = []
        for name in names:
            stem = name.rsplit(".", 1)[0]
            if not stem.isdigit():
                raise ReIDError(
                    f"{folder / name}: frame file name is not a frame number (000001.jpg)"
                )
            numbers.append(int(stem))
        numbers_a = np.asarray(numbers, dtype=np.int64)
        order = np.argsort(numbers_a, kind="stable")
        numbers_a = numbers_a[order]
        expected = np.arange(1, len(numbers_a) + 1)
        if len(numbers_a) == 0:
            raise ReIDError(f"{folder}: no frames (expected 000001.jpg ...)")
        if not np.array_equal(numbers_a, expected):
            k = int(np.argmax(numbers_a != expected))
            if k > 0 and numbers_a[k] == numbers_a[k - 1]:
                raise ReIDError(f"{folder}: frame {numbers_a[k]} appears twice ({names[order[k]]})")
            raise ReIDError(
                f"{folder}: frame {expected[k]:0{FRAME_DIGITS}d} is missing (frames run to "
                f"{numbers_a[-1]})"
            )
        return [folder / names[i] for i in order]

    def num_frames(self, cam: int) -> int | None:
        """Frames of the camera (``img1/`` files or video frames); None without frames or PyAV."""
        if cam not in self._num_frames:
            n: int | None = None
            if (self.camera_dir(cam) / FRAMES_DIR).is_dir():
                n = len(self.frame_paths(cam))
            elif (video := self.video_path(cam)) is not None:
                n = video_frame_count(video)
            self._num_frames[cam] = n
        return self._num_frames[cam]

    def frame_size(self, cam: int) -> tuple[int, int] | None:
        """``(width, height)`` from ``cameras.csv``, else the first frame or the video; None if unknown."""
        if cam not in self._sizes:
            c = self.camera(cam)
            size: tuple[int, int] | None = None
            if c.width is not None and c.height is not None:
                size = (c.width, c.height)
            elif (self.camera_dir(cam) / FRAMES_DIR).is_dir():
                from PIL import Image

                first = self.frame_paths(cam)[0]
                try:
                    with Image.open(first) as im:
                        size = im.size
                except OSError as exc:
                    raise ReIDError(f"{first}: unreadable image ({first_line(exc)})") from None
            elif (video := self.video_path(cam)) is not None:
                size = video_size(video)
            self._sizes[cam] = size
        return self._sizes[cam]

    def duration(self, cam: int) -> float | None:
        """Seconds covered by the camera's frames, when their number is known."""
        n = self.num_frames(cam)
        return None if n is None else n / self.camera(cam).fps

    def iter_frames(
        self, cam: int, frames: Iterable[int] | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame, RGB uint8 [H, W, 3])`` in frame order, one frame in memory at a time.

        Args:
            cam: camera id.
            frames: 1-based frames wanted (default every frame); a video is still decoded in order
                up to the last one wanted.

        Raises:
            ReIDError: no frames, a missing or unreadable frame file, a video that cannot be decoded.
        """
        wanted = None if frames is None else np.unique(np.asarray(list(frames), dtype=np.int64))
        if (self.camera_dir(cam) / FRAMES_DIR).is_dir():
            yield from iter_image_frames(self.frame_paths(cam), wanted)
            return
        video = self.video_path(cam)
        if video is None:
            raise ReIDError(
                f"{self.camera_dir(cam)}: no frames ({FRAMES_DIR}/000001.jpg ...) and no video "
                f"({', '.join(VIDEO_NAMES)})"
            )
        yield from iter_video_frames(video, wanted)

    def iter_crops(
        self, boxes: Boxes, batch_size: int = 64, size: tuple[int, int] | None = None
    ) -> Iterator[CropBatch]:
        """Crop every box from its frame, in batches, reading each camera's frames once in order.

        Args:
            boxes: boxes of this root's cameras (any order; ``CropBatch.rows`` index into them).
            batch_size: crops per batch (> 0); memory holds one batch and one frame.
            size: ``(height, width)`` to resize every crop to (bilinear), giving a stacked array.

        Example:
            >>> import tempfile
            >>> from PIL import Image
            >>> folder = tempfile.TemporaryDirectory()
            >>> root = create_root(folder.name, [Camera(id=1, name="1", fps=10.0, offset=0.0)])
            >>> (root.camera_dir(1) / FRAMES_DIR).mkdir()
            >>> for f in (1, 2):
            ...     Image.new("RGB", (40, 30)).save(root.camera_dir(1) / FRAMES_DIR / f"{f:06d}.jpg")
            >>> boxes = Boxes.from_columns(cams=[1, 1, 1], frames=[2, 1, 2], ids=[1, 1, 2],
            ...                            x=[0, 5, 20], y=[0, 5, 10], w=[10, 10, 8], h=[20, 20, 16])
            >>> [(b.rows.tolist(), b.images.shape) for b in root.iter_crops(boxes, 2, (32, 16))]
            [([1, 0], (2, 32, 16, 3)), ([2], (1, 32, 16, 3))]
            >>> folder.cleanup()
        """
        batch_size = positive_int("crop batch size", batch_size)
        order = np.lexsort((boxes.frames, boxes.cams))
        rows: list[int] = []
        images: list[np.ndarray] = []
        for cam in np.unique(boxes.cams).tolist():
            cam_rows = order[boxes.cams[order] == cam]
            frame_of = boxes.frames[cam_rows]
            pos = 0
            for frame, image in self.iter_frames(cam, frame_of):
                end = pos
                while end < len(cam_rows) and frame_of[end] == frame:
                    end += 1
                for r in cam_rows[pos:end].tolist():
                    rows.append(r)
                    images.append(
                        crop_box(image, boxes.x[r], boxes.y[r], boxes.w[r], boxes.h[r], size)
                    )
                    if len(rows) == batch_size:
                        yield crop_batch(rows, images, size)
                        rows, images = [], []
                pos = end
            if pos != len(cam_rows):
                raise ReIDError(
                    f"{self.camera_dir(cam)}: frame {frame_of[pos]} is past the camera's last frame"
                )
        if rows:
            yield crop_batch(rows, images, size)


def read_root(path: str | os.PathLike) -> MTMCRoot:
    """Open an MTMC root: read ``cameras.csv`` and check every camera has its folder.

    Raises:
        ReIDError: no folder, no or bad ``cameras.csv``, a camera folder missing.
    """
    path = Path(path)
    if not path.is_dir():
        raise ReIDError(f"{path}: MTMC root folder not found")
    cameras = read_cameras(path / CAMERAS_NAME)
    for c in cameras:
        if not (path / c.name).is_dir():
            raise ReIDError(
                f"{path / CAMERAS_NAME}: camera '{c.name}' has no folder {path / c.name}"
            )
    return MTMCRoot(path, cameras)


def is_root(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with a ``cameras.csv``."""
    return (Path(path) / CAMERAS_NAME).is_file()


def looks_like_root(path: str | os.PathLike) -> bool:
    """Whether ``path`` is, or looks meant to be, an MTMC root.

    True for a folder with a ``cameras.csv`` (:func:`is_root`), and for one without it that holds a
    camera folder (``img1/``, a video, ``det/det.txt`` or ``gt/gt.txt`` inside): :func:`read_root`
    then names the missing ``cameras.csv`` rather than a caller guessing at another layout. A bare
    ``gt/`` or ``det/`` folder is not enough: image datasets use those names too.
    """
    path = Path(path)
    if is_root(path):
        return True
    if not path.is_dir():
        return False
    try:  # scandir: a flat folder of many images costs no stat per file
        with os.scandir(path) as entries:
            folders = [Path(e.path) for e in entries if e.is_dir()]
    except OSError:
        return False
    marks = (FRAMES_DIR, f"{DET}/{DET}.txt", f"{GT}/{GT}.txt", *VIDEO_NAMES)
    return any((folder / mark).exists() for folder in folders for mark in marks)


def create_root(path: str | os.PathLike, cameras: Sequence[Camera]) -> MTMCRoot:
    """Make an MTMC root's folders and write its ``cameras.csv``; returns it opened."""
    path = Path(path)
    for c in cameras:
        (path / c.name).mkdir(parents=True, exist_ok=True)
    write_cameras(path / CAMERAS_NAME, cameras)
    return MTMCRoot(path, cameras)
