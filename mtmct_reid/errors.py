"""The one error type that carries a user-facing message.

The library raises :class:`ReIDError` for anything a user can fix (a bad path, a malformed file, a wrong
argument). Its text is a single line naming the file, field or argument and what was expected; the CLI
prints that line and exits with status 2, never a traceback.
"""

from __future__ import annotations

import re

_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class ReIDError(Exception):
    """A problem with the user's input, described in one line.

    Example:
        >>> raise ReIDError("features.npz: missing array 'query_pids' (expected int64 [Nq])")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: features.npz: missing array 'query_pids' (expected int64 [Nq])
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line
    errors that quote a library's own reason.

    Example:
        >>> first_line(OSError("truncated file\\nmore detail"))
        'truncated file'
    """
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def torch_load_failure(errors: list[BaseException], what: str) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in one line that never repeats
    torch's advice to retry with ``weights_only=False`` (that runs whatever code the file holds).

    Args:
        errors: the exceptions ``torch.load`` raised (one per attempt).
        what: what the file should be (``"checkpoint"``, ``"state-dict file"``).

    Example:
        >>> torch_load_failure([RuntimeError("failed finding central directory")], "checkpoint")
        'a truncated or corrupt checkpoint (its zip archive is incomplete)'
    """
    texts = [str(exc) for exc in errors]
    for text in texts:
        unsupported = _UNSUPPORTED.search(text)
        if unsupported:
            return (
                f"the {what} holds a Python object ({unsupported.group(1)}) that only pickle could "
                "rebuild; files are read without pickle, refusing it"
            )
    if any("central directory" in text or "zip archive" in text for text in texts):
        return f"a truncated or corrupt {what} (its zip archive is incomplete)"
    return (
        f"not a {what} (expected a file written by torch.save, such as 'mtmct-reid train' writes)"
    )
