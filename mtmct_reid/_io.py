"""Small file helpers shared by every stage: the output-path policy and atomic writes, and ``.npz``
reading that checks each array's declared size before allocating it.

The output-path policy, the same for every verb:

- an output that is a pipe, a character device (``/dev/null``, a terminal) or ``/dev/stdout`` is
  written INTO (after the result is complete), never replaced; a block device is refused;
- a symlink output writes the file it points to, and the link stays;
- an output that is one of the command's inputs (the same file, links resolved) is refused;
- an existing file that is not the kind the command writes is refused unless ``--force``;
- a folder, a path whose parent is a file, a read-only or full filesystem, or a place under
  ``/proc`` or ``/sys`` is one line naming the path, and any previous file is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mtmct_reid.errors import ReIDError, first_line

#: What each kind of output file is called in messages.
OUTPUT_KINDS = {
    "npz": ".npz archive of arrays",
    "features": "features file (.npz)",
    "gallery cache": "gallery cache (.npz)",
    "transit": "transit-time model (.npz)",
    "index side": "index side file (.npz)",
    "npy": "single .npy array",
    "json": "JSON file",
    "csv": "CSV text file",
    "text": "text file",
    "image": "image (.png/.pdf/.svg)",
    "onnx": "ONNX model",
    "faiss": "FAISS index",
    "folder": "folder",
    # A format with no recognisable signature: every rule but the kind's.
    "file": "file",
}

#: The .npz archives this project writes, told apart by the arrays each must hold (the first
#: match wins), so that one kind of result never silently replaces another.
_NPZ_CONTENTS = (
    ("a features file", "features", {"query_features", "gallery_features"}),
    ("a gallery cache", "gallery cache", {"gallery_features"}),
    ("a transit-time model", "transit", {"format", "probabilities", "camera_ids"}),
    ("an index side file", "index side", {"meta_index_fingerprint"}),
)
_NPZ_DESCRIPTIONS = {kind: description for description, kind, _ in _NPZ_CONTENTS}
#: ModelProto's field tags that may follow its first field (ir_version): an ONNX file's start.
_ONNX_SECOND_TAGS = frozenset(b"\x12\x1a\x22\x28\x32\x3a\x42")

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
#: Where no output file is created: the kernel's trees, and /dev (whose existing devices are
#: written into, but where a new regular file is never what the user meant).
_KERNEL_TREES = ("/proc", "/sys", "/dev")
#: Errors of the filesystem (not of the data) met while writing an output.
_WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.EPIPE,
}


def _under(path: str, trees: Iterable[str]) -> bool:
    return any(path == tree or path.startswith(tree + "/") for tree in trees)


def _stream_target(path: Path) -> bool:
    """Whether ``path`` is written INTO rather than replaced: a pipe, socket or character device,
    or a path under /dev or /proc/self/fd (``/dev/stdout`` redirected to a file stays the shell's
    file, whose open descriptor a rename would orphan)."""
    text = os.path.abspath(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode):
        return True
    return stat.S_ISREG(mode) and (
        _under(text, ("/dev",)) or re.match(r"^/proc/(self|\d+)/fd/\d+$", text) is not None
    )


def _own_descriptor(path: Path) -> int | None:
    """The descriptor number ``path`` names, for /dev/stdout, /dev/stderr, /dev/fd/N and
    /proc/self/fd/N; None for any other path."""
    text = os.path.abspath(path)
    named = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
    if text in named:
        return named[text]
    match = re.match(rf"^(?:/dev/fd|/proc/(?:self|{os.getpid()})/fd)/(\d+)$", text)
    return int(match.group(1)) if match else None


def _open_stream(path: Path) -> BinaryIO:
    """Open a pipe or device for appending. One of this process's own descriptors (/dev/stdout)
    is written through itself, so the shared offset keeps what was printed before and after in
    order."""
    fd = _own_descriptor(path)
    if fd is not None:
        return os.fdopen(os.dup(fd), "ab")
    return open(path, "ab")


def _nearest_existing(path: Path) -> Path:
    current = Path(os.path.abspath(path))
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    return current


def describe_file(path: str | os.PathLike) -> str:
    """What an existing file looks like, for a refusal message: one of this project's results
    (``"a features file"``, ``"a transit-time model"``, ...), a known format (``"a PyTorch
    checkpoint"``, ``"a FAISS index"``, ``"an ONNX model"``, ``"JSON text"``, ...), ``"text"`` or
    ``"binary data"``.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(suffix=".csv") as fh:
        ...     _ = fh.write(b"path,pid,camera\\n")
        ...     fh.flush()
        ...     describe_file(fh.name)
        'text'
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        return f"an unreadable file ({exc.strerror})"
    if head[:4] in _ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "a damaged zip archive"
        if any(name.endswith("data.pkl") for name in names):
            return "a PyTorch checkpoint"
        if names and all(name.endswith(".npy") for name in names):
            arrays = {name[: -len(".npy")] for name in names}
            for description, _kind, required in _NPZ_CONTENTS:
                if required <= arrays:
                    return description
            return "an .npz archive of arrays"
        return "a zip archive"
    if head.startswith(_NPY_MAGIC):
        return "a single .npy array"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    # FAISS writes a four-letter code ("IxFI", "IwPf", ...) and then binary sizes.
    if head[:1] == b"I" and head[1:4].isalnum() and b"\x00" in head[4:64]:
        return "a FAISS index"
    # ModelProto starts with ir_version (tag 0x08, a one-byte varint), then another field.
    if len(head) > 2 and head[0] == 0x08 and head[1] < 0x80 and head[2] in _ONNX_SECOND_TAGS:
        return "an ONNX model"
    if b"\x00" in head:
        return "binary data"
    text = head.decode("utf-8", errors="replace").lstrip()
    if text.startswith(("<?xml", "<svg")):
        return "an SVG image" if "<svg" in text else "an XML document"
    if text.startswith(("{", "[")):
        return "JSON text"
    return "text"


#: What :func:`describe_file` may say of an existing file that an output of each kind may replace
#: (``file``, a format without a signature, replaces anything).
_REPLACEABLE = {
    "npz": {"an .npz archive of arrays", *_NPZ_DESCRIPTIONS.values()},
    **{kind: {description} for kind, description in _NPZ_DESCRIPTIONS.items()},
    "npy": {"a single .npy array"},
    "json": {"JSON text"},
    "csv": {"text"},
    "text": {"text", "JSON text"},
    "image": {"a PNG image", "a PDF document", "an SVG image"},
    "onnx": {"an ONNX model"},
    "faiss": {"a FAISS index"},
}


def _is_kind(path: Path, kind: str) -> bool:
    if kind != "file" and kind not in _REPLACEABLE:
        raise ValueError(f"unknown output kind {kind!r}; known: {', '.join(OUTPUT_KINDS)}")
    if kind == "file" or path.stat().st_size == 0:
        return True  # an empty file holds nothing to lose
    return describe_file(path) in _REPLACEABLE[kind]


def check_output(
    path: str | os.PathLike,
    option: str,
    kind: str,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    force: bool = False,
) -> Path:
    """Refuse, before any work is done, an output the command must not write (see the module's
    policy); return the path.

    Args:
        path: the output (a file, or a folder for ``kind="folder"``).
        option: how the user named it (``"--out"``, ``"--json"``, ``"OUT"``), put in messages.
        kind: what the command writes there, a key of :data:`OUTPUT_KINDS`.
        inputs: the command's input files (None entries are skipped); the output may be none of them.
        force: overwrite an existing file of another kind.

    Raises:
        ReIDError: one line naming the option, the path and the reason.

    Example:
        >>> check_output("/proc/version", "--json", "json")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: --json /proc/version: is under /proc, not a place for output
    """
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}; known: {', '.join(OUTPUT_KINDS)}")
    out = Path(path)
    where = f"{option} {out}"
    if _stream_target(out):
        if kind == "folder":
            raise ReIDError(f"{where}: is a pipe or device, expected a folder")
        return out
    resolved = os.path.realpath(out)
    if _under(resolved, _KERNEL_TREES) or _under(os.path.abspath(out), _KERNEL_TREES):
        tree = next(t for t in _KERNEL_TREES if _under(resolved, (t,)) or _under(str(out), (t,)))
        raise ReIDError(f"{where}: is under {tree}, not a place for output")
    existing = Path(resolved)
    if existing.exists():
        mode = existing.stat().st_mode
        if stat.S_ISBLK(mode):
            raise ReIDError(f"{where}: is a block device; refusing to write a disk")
        if kind == "folder":
            if not stat.S_ISDIR(mode):
                raise ReIDError(f"{where}: is a file, expected a folder")
        elif stat.S_ISDIR(mode):
            raise ReIDError(f"{where}: is a folder, expected the path of {_a(OUTPUT_KINDS[kind])}")
    ancestor = _nearest_existing(Path(resolved).parent if kind != "folder" else Path(resolved))
    if not ancestor.is_dir():
        raise ReIDError(
            f"{where}: {ancestor} is a file, not a folder, so nothing can be made in it"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(ancestor).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        reason = "is on a read-only filesystem" if read_only else "is not writable"
        raise ReIDError(f"{where}: cannot write there ({ancestor} {reason})")
    for source in inputs:
        if source is None or not os.path.exists(source) or not existing.exists():
            continue
        if os.path.samefile(source, existing):
            raise ReIDError(
                f"{where}: is the command's input {source} (the same file); "
                "write the output to another path"
            )
    if kind != "folder" and existing.is_file() and not force and not _is_kind(existing, kind):
        raise ReIDError(
            f"{where}: exists and is {describe_file(existing)}, not {_a(OUTPUT_KINDS[kind])}; "
            "pass --force to overwrite it"
        )
    return out


def utf8_text(data: bytes, name: str) -> str:
    """The text of a file's bytes (UTF-8, a leading byte-order mark dropped), for every text reader.

    An undecodable byte is refused with the row (line, counted from 1) it is on, its value and its
    place in that row (from 1), so a bad file name in a 100,000-row manifest can be found.

    Args:
        data: the file's bytes.
        name: the file, put in front of the message.

    Raises:
        ReIDError: ``name: row R: not UTF-8 text (...)``.

    Example:
        >>> utf8_text(b"path,pid\\nok.jpg,1\\ncaf\\xe9.jpg,2\\n", "m.csv")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: m.csv: row 3: not UTF-8 text (invalid continuation byte 0xe9 at byte 4 of the row)
        >>> utf8_text(b"\\xef\\xbb\\xbfcamera", "cameras.csv")
        'camera'
    """
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        row = data.count(b"\n", 0, at) + 1
        column = at - (data.rfind(b"\n", 0, at) + 1) + 1
        raise ReIDError(
            f"{name}: row {row}: not UTF-8 text ({exc.reason} {data[at]:#04x} at byte {column} "
            "of the row)"
        ) from None


def require_file(path: str | os.PathLike, label: str, what: str) -> Path:
    """``path`` if it is a file to read; otherwise one line saying it is a folder or is missing.

    Args:
        path: the input.
        label: how to name it in the message (an option such as ``"--checkpoint"``, or ``""``).
        what: what it should be (``"checkpoint"``, ``"features file"``).

    Example:
        >>> require_file("/", "--checkpoint", "checkpoint")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: --checkpoint /: is a folder, expected a checkpoint file
    """
    path = Path(path)
    where = f"{label} {path}" if label else str(path)
    if path.is_dir():
        suffix = "" if what.endswith("file") else " file"
        raise ReIDError(f"{where}: is a folder, expected {_a(what)}{suffix}")
    if not path.is_file():
        raise ReIDError(f"{where}: {what} not found")
    return path


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou.' else 'a'} {noun}"


def _write_error(path: Path, exc: OSError) -> ReIDError:
    reason = exc.strerror or first_line(exc)
    return ReIDError(f"{path}: cannot write ({reason}); any previous file there is unchanged")


def _clean_stale_temporaries(folder: Path, name: str) -> None:
    """Remove temporaries of ``name`` left by writers that were killed (their pid is gone)."""
    try:
        candidates = list(folder.glob(f".{glob_escape(name)}.*.tmp*"))
    except OSError:
        return
    for candidate in candidates:
        match = re.match(rf"^\.{re.escape(name)}\.(\d+)\.", candidate.name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                candidate.unlink()


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters escaped (``[``, ``*``, ``?``).

    Example:
        >>> glob_escape("a[1]*.npz")
        'a[[]1][*].npz'
    """
    return re.sub(r"([\[*?])", r"[\1]", text)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path; when the block succeeds, its content becomes ``path``.

    A regular file is replaced by a rename (readers see the old file or the new one, never half of
    one); a pipe or device is written into; a symlink's target is replaced and the link kept. Any
    failure removes the temporary and leaves a previous file as it was. Temporaries left by a
    killed writer are removed by the next write of the same file.

    Args:
        path: the final destination. Its parent folder is created if needed.
        suffix: suffix of the temporary file (defaults to that of ``path``, so libraries that
            append an extension, such as ``np.savez``, see the one they expect).

    Raises:
        ReIDError: the destination cannot be written (a folder, a file as parent, a read-only or
            full filesystem, /proc), naming it.

    Example:
        >>> import tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> out = Path(folder.name) / "table.csv"
        >>> with atomic_path(out) as tmp:
        ...     _ = tmp.write_text("a,b\\n")
        >>> out.read_text()
        'a,b\\n'
        >>> folder.cleanup()
    """
    given = Path(path)
    suffix = suffix if suffix is not None else given.suffix
    stream = _stream_target(given)
    if stream:
        folder, final = Path(tempfile.gettempdir()), given
    else:
        final = Path(os.path.realpath(given)) if given.is_symlink() else given
        absolute = os.path.abspath(final)
        if _under(absolute, _KERNEL_TREES) or _under(os.path.realpath(final), _KERNEL_TREES):
            raise ReIDError(f"{given}: is under /proc, /sys or /dev, not a place for output")
        if os.path.exists(final) and not os.path.isfile(final):
            kind = "a folder" if os.path.isdir(final) else "not a regular file"
            raise ReIDError(f"{given}: is {kind}, expected the path of a file to write")
        folder = final.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise ReIDError(
                f"{given}: {_nearest_existing(folder)} is a file, not a folder"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise ReIDError(
                    f"{given}: {_nearest_existing(folder)} is a file, not a folder"
                ) from None
            raise _write_error(given, exc) from None
        _clean_stale_temporaries(folder, final.name)
    # The name is chosen before the file exists and the file is created inside the ``try``: a
    # Ctrl-C at any point after creation (even inside the creating call) still removes it.
    tmp = folder / f".{final.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp{suffix}"
    try:
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise _write_error(given, exc) from None
        yield tmp
        if stream:
            # Appended, not truncated: /dev/stdout redirected to a file already holds what this
            # process printed (flushed first, so the two stay in order).
            sys.stdout.flush()
            sys.stderr.flush()
            with open(tmp, "rb") as src, _open_stream(final) as dst:
                shutil.copyfileobj(src, dst)
            tmp.unlink()
        else:
            # The temporary is created private (0600); give it the mode a plain open() would have.
            os.chmod(tmp, umask_mode())
            os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in _WRITE_ERRNOS:
            raise _write_error(given, exc) from None
        raise
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
        The open archive (use it in a ``with`` block; read arrays with :func:`npz_array`).

    Example:
        >>> with open_npz("features.npz", "features file") as npz:  # doctest: +SKIP
        ...     names = npz.files
    """
    path = require_file(path, "", what)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ReIDError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    # np.load takes anything that is neither a zip nor an .npy for a pickle, and would say so
    # about a text file; the file's first bytes say what it really is.
    if head.startswith(_NPY_MAGIC):
        raise ReIDError(f"{path}: expected an .npz archive of named arrays, found a single array")
    if head[:4] not in _ZIP_MAGIC:
        raise ReIDError(
            f"{path}: not a readable .npz {what} (an .npz is a zip archive of arrays; this file "
            f"holds {describe_file(path)})"
        )
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ReIDError(
            f"{path}: not a readable .npz {what} (a truncated or corrupt zip archive: "
            f"{first_line(exc)})"
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ReIDError(f"{path}: expected an .npz archive of named arrays, found a single array")
    return npz


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on Linux
        return 2**40


def npz_shape(
    npz: np.lib.npyio.NpzFile, key: str, path: str | os.PathLike
) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an array of an open archive declares, read from its header only.

    The declared size is checked against the data the archive holds and against the machine's
    memory, so that a corrupt or hostile header (a shape of 29 TiB, a zip bomb) is refused before
    anything is allocated or decompressed.

    Raises:
        ReIDError: an object array (which would need pickle), an unreadable header, or a declared
            size that does not match the stored data or exceeds the memory.
    """
    member = key if key in npz.zip.namelist() else f"{key}.npy"
    try:
        info = npz.zip.getinfo(member)
        with npz.zip.open(member) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            header = fh.tell()
    except KeyError:
        raise ReIDError(f"{path}: has no array '{key}'") from None
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, SyntaxError) as exc:
        raise ReIDError(
            f"{path}: array '{key}' has no readable .npy header ({first_line(exc)})"
        ) from None
    if (
        info.compress_type == zipfile.ZIP_DEFLATED
        and info.file_size > 1032 * info.compress_size + 4096
    ):
        # Deflate cannot expand data more than ~1032 times: the header lies about the size.
        raise ReIDError(
            f"{path}: array '{key}' declares {_human(info.file_size)} from "
            f"{_human(info.compress_size)} of compressed data, more than deflate can hold: corrupt"
        )
    if dtype.hasobject:
        raise ReIDError(
            f"{path}: array '{key}' holds Python objects (dtype {dtype}); they would need pickle, "
            "which is never used; store numbers or fixed-width strings"
        )
    declared = dtype.itemsize
    for size in shape:
        declared *= int(size)
    stored = info.file_size - header
    if declared != stored:
        raise ReIDError(
            f"{path}: array '{key}' declares shape {tuple(shape)} of {dtype} "
            f"({_human(declared)}) but holds {_human(max(stored, 0))} of data: the file is "
            "truncated or corrupt"
        )
    if declared > _memory_bytes():
        raise ReIDError(
            f"{path}: array '{key}' declares {_human(declared)}, more than this machine's memory"
        )
    return tuple(int(v) for v in shape), dtype


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


def npz_array(npz: np.lib.npyio.NpzFile, key: str, path: str | os.PathLike) -> np.ndarray:
    """One array of an open archive, its header checked first (see :func:`npz_shape`)."""
    npz_shape(npz, key, path)
    try:
        return npz[key]
    except ValueError as exc:
        raise ReIDError(f"{path}: array '{key}' is unreadable ({first_line(exc)})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ReIDError(f"{path}: array '{key}' is unreadable ({first_line(exc)})") from None
