"""Market-1501's clock: frames restart at every session, so a global time per camera adds the lengths of
that camera's earlier sessions (table from the dataset's authors, in frames)."""

from __future__ import annotations

import numpy as np

from mtmct_reid.errors import ReIDError

#: Frames in each session (s1, s2, ...) of each Market-1501 camera.
MARKET_SESSION_FRAMES: dict[int, tuple[int, ...]] = {
    1: (72681, 74546, 74881, 74661, 74891, 54346),
    2: (163691, 164677, 98102),
    3: (161708, 161769, 104469),
    4: (72107, 72373, 74810, 74541, 74910, 50616),
    5: (161095, 161724, 103487),
    6: (87551, 131268, 95817, 30952),
}


def _offsets(cam: int) -> np.ndarray:
    lengths = MARKET_SESSION_FRAMES.get(int(cam), ())
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])


def market_global_time(cams: np.ndarray, sessions: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Global frame index per camera: ``frame`` + lengths of the camera's earlier sessions.

    Cameras outside the table (a user's network in Market naming) have no session offsets; for them
    only session 1 is valid and the frame is the time.

    Args:
        cams: camera ids [N].
        sessions: 1-based session numbers [N].
        frames: frame within the session [N].

    Example:
        >>> int(market_global_time(np.array([2]), np.array([3]), np.array([100]))[0])
        328468
    """
    cams = np.asarray(cams, dtype=np.int64)
    sessions = np.asarray(sessions, dtype=np.int64)
    frames = np.asarray(frames, dtype=np.float64)
    out = np.empty(len(cams), dtype=np.float64)
    for cam in np.unique(cams):
        sel = cams == cam
        offsets = _offsets(cam)
        s = sessions[sel]
        last = max(len(offsets) - 1, 1)
        bad = (s < 1) | (s > last)
        if bad.any():
            raise ReIDError(
                f"camera {cam}: session {int(s[bad][0])} is not in the Market-1501 session table "
                f"(camera {cam} has sessions 1..{last})"
            )
        out[sel] = offsets[s - 1] + frames[sel]
    return out


def market_session_frame(cams: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`market_global_time`: the (session, frame) of each global time.

    Times past the last session of a camera stay in that last session (frames beyond its nominal
    length), so every non-negative time has a name.
    """
    cams = np.asarray(cams, dtype=np.int64)
    times = np.asarray(times, dtype=np.int64)
    sessions = np.ones(len(cams), dtype=np.int64)
    frames = times.copy()
    for cam in np.unique(cams):
        if cam not in MARKET_SESSION_FRAMES:
            continue
        sel = cams == cam
        starts = _offsets(cam)[:-1]
        idx = np.searchsorted(starts, times[sel], side="right") - 1
        sessions[sel] = idx + 1
        frames[sel] = times[sel] - starts[idx]
    return sessions, frames
