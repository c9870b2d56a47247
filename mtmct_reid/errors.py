"""The one error type that carries a user-facing message.

The library raises :class:`ReIDError` for anything a user can fix (a bad path, a malformed file, a wrong
argument). Its text is a single line naming the file, field or argument and what was expected; the CLI
prints that line and exits with status 2, never a traceback.
"""

from __future__ import annotations


class ReIDError(Exception):
    """A problem with the user's input, described in one line.

    Example:
        >>> raise ReIDError("features.npz: missing array 'query_pids' (expected int64 [Nq])")
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
