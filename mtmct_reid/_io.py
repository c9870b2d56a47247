"""Small file helpers shared by every stage: atomic writes so nothing half-written is left behind."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mtmct_reid.errors import ReIDError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Args:
        path: the final destination. Its parent folder is created if needed.
        suffix: suffix of the temporary file (defaults to that of ``path``, so libraries that
            append an extension, such as ``np.savez``, see the one they expect).

    Example:
        >>> with atomic_path("out/table.csv") as tmp:
        ...     tmp.write_text("a,b\\n")
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{final.name}.",
        suffix=suffix if suffix is not None else final.suffix,
        dir=final.parent,
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        os.chmod(tmp, umask_mode())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def umask_mode(base: int = 0o666) -> int:
    """``base`` less this process's umask: the mode ``open()`` (0o666) or ``mkdir()`` (0o777) gives.

    Temporary files and folders are created private (0600 / 0700); what they become is given this
    mode before the rename, so results are as readable as any other file the user writes.
    """
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """Write arrays to an uncompressed ``.npz`` atomically (no pickled objects inside)."""
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def open_npz(path: str | os.PathLike, what: str) -> np.lib.npyio.NpzFile:
    """Open an ``.npz`` archive without pickle, or raise :class:`ReIDError` naming the file.

    Args:
        path: the file.
        what: what the file should be, for messages (e.g. ``"features file"``).

    Returns:
        The open archive (use it in a ``with`` block).

    Example:
        >>> with open_npz("features.npz", "features file") as npz:  # doctest: +SKIP
        ...     names = npz.files
    """
    path = Path(path)
    if not path.is_file():
        raise ReIDError(f"{path}: {what} not found")
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ReIDError(f"{path}: not a readable .npz {what} ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ReIDError(f"{path}: expected an .npz archive of named arrays, found a single array")
    return npz


def npz_array(npz: np.lib.npyio.NpzFile, key: str, path: str | os.PathLike) -> np.ndarray:
    """One array of an open archive; an object array (which would need pickle) is a ReIDError."""
    try:
        return npz[key]
    except ValueError as exc:
        raise ReIDError(f"{path}: array '{key}' cannot be read without pickle ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ReIDError(f"{path}: array '{key}' is unreadable ({exc})") from None
