"""The ``mtmct-reid`` command line: subcommands parse arguments, call the library, and turn library
errors into one line on stderr with exit status 2.

Each verb lives in its own module of this package with two functions: ``register(subparsers)`` adds its
parser (and sets ``func``), and the handler does the work. Handlers import heavy packages (torch,
Lightning) inside the function so that ``mtmct-reid --help`` and the numpy-only verbs start quickly.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from mtmct_reid.errors import ReIDError

#: Verb modules, in the order ``--help`` lists them.
VERB_MODULES = (
    "synth",
    "dataset",
    "train",
    "extract",
    "export",
    "st",
    "evaluate",
    "search",
    "index",
    "track",
    "demo",
    "track_sct",
    "track_eval",
)

log = logging.getLogger("mtmct_reid")

PATTERN_HELP = (
    "regex searched in each file name, with named groups pid, cam and optionally time "
    "(implies --layout regex), e.g. '(?P<pid>-?\\d+)_c(?P<cam>\\d+)_(?P<time>\\d+)'"
)


def layout_help() -> str:
    """``--layout``'s help: the layouts registered when the parser is built, a user's own included.

    Example:
        >>> layout_help()
        'dataset layout (market1501, dukemtmc, msmt17, manifest, regex; default: detected)'
    """
    from mtmct_reid.data.layouts import available_layouts

    return f"dataset layout ({', '.join(available_layouts())}; default: detected)"


def add_layout_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--layout`` and ``--pattern``, the same for every verb that reads a dataset."""
    parser.add_argument("--layout", default=None, metavar="L", help=layout_help())
    parser.add_argument("--pattern", default=None, metavar="RE", help=PATTERN_HELP)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), exit status 2, like every
    other error of the command line. Sub-command parsers are of the same class."""

    #: Whether arguments left over are this parser's error. argparse hands a sub-command's
    #: leftovers up to the top parser, whose message would name ``mtmct-reid`` instead of the verb.
    refuses_leftovers = True

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, leftovers = super().parse_known_args(args, namespace)
        if leftovers and self.refuses_leftovers:
            self.error(f"unrecognized arguments: {' '.join(leftovers)}")
        return parsed, leftovers


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mtmct-reid",
        description="Multi-camera person re-identification with spatial-temporal fusion (st-ReID).",
    )
    parser.refuses_leftovers = False  # the verb's parser names them (its own parse refuses them)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in VERB_MODULES:
        importlib.import_module(f"mtmct_reid.cli.{name}").register(subparsers)
    return parser


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_an_advert)


def _not_an_advert(record: logging.LogRecord) -> bool:
    """Lightning's Trainer logs tips for its paid services ("💡 Tip: ..."); they are not progress."""
    return not (record.name.startswith("lightning") and str(record.msg).startswith("💡"))


class _Interrupted:
    """Whether Ctrl-C (SIGINT) reached this process: errors it causes elsewhere (a data-loading
    worker killed by the same Ctrl-C, a library that turns KeyboardInterrupt into its own error)
    still end as "interrupted", exit 130."""

    seen = False

    @classmethod
    def handler(cls, signum: int, frame: object) -> None:
        cls.seen = True
        raise KeyboardInterrupt


def _install_interrupt_handler() -> object:
    """Install the handler; return the one it replaced (None when nothing was replaced)."""
    # Only where SIGINT is handled at all: a process started with SIGINT ignored (a background
    # job of a script) keeps ignoring it, as its parent asked.
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        return signal.signal(signal.SIGINT, _Interrupted.handler)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mtmct-reid`` console script; returns the process exit status.

    A :class:`~mtmct_reid.errors.ReIDError` is printed as one line, exit status 2; Ctrl-C prints
    ``interrupted``, exit status 130.
    """
    _Interrupted.seen = False
    previous = _install_interrupt_handler()
    try:
        return _run(argv)
    finally:
        if argv is None and previous is not None:
            # The program's run is over (its outputs are whole, or it said why not): a Ctrl-C
            # while the interpreter shuts down would only turn that outcome into a traceback.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        elif previous is not None:  # called in-process: give the caller its handler back
            signal.signal(signal.SIGINT, previous)


def _run(argv: Sequence[str] | None) -> int:
    command = "mtmct-reid"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = f"mtmct-reid {args.command}"
        _setup_logging(args.verbose, args.quiet)
        result = args.func(args)
    except ReIDError as exc:
        if _Interrupted.seen:
            return _interrupted(command)
        message = " ".join(str(exc).split("\n"))  # one line, whatever a message quoted
        print(f"{command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass  # handled below, once the exception (and the frames it holds) is released
    except Exception:
        if not _Interrupted.seen:
            raise
    else:
        return int(result or 0)
    return _interrupted(command)


def _interrupted(command: str) -> int:
    """Say "interrupted"; exit status 130 (128 + SIGINT, as a shell reports it)."""
    # Objects cut off mid-construction by Ctrl-C (a DataLoader iterator whose workers were
    # starting) complain from their destructors; collect them now, quietly, so that the
    # last line the user sees is this one.
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook
    print(f"{command}: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
