"""The ``mtmct-reid`` command line: subcommands parse arguments, call the library, and turn library
errors into one line on stderr with exit status 2.

Each verb lives in its own module of this package with two functions: ``register(subparsers)`` adds its
parser (and sets ``func``), and the handler does the work. Handlers import heavy packages (torch,
Lightning) inside the function so that ``mtmct-reid --help`` and the numpy-only verbs start quickly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

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

LAYOUT_HELP = "dataset layout (market1501, dukemtmc, msmt17, regex, manifest; default: detected)"
PATTERN_HELP = (
    "regex searched in each file name, with named groups pid, cam and optionally time "
    "(implies --layout regex), e.g. '(?P<pid>-?\\d+)_c(?P<cam>\\d+)_(?P<time>\\d+)'"
)


def add_layout_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--layout`` and ``--pattern``, the same for every verb that reads a dataset."""
    parser.add_argument("--layout", default=None, metavar="L", help=LAYOUT_HELP)
    parser.add_argument("--pattern", default=None, metavar="RE", help=PATTERN_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtmct-reid",
        description="Multi-camera person re-identification with spatial-temporal fusion (st-ReID).",
    )
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mtmct-reid`` console script; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    try:
        result = args.func(args)
    except ReIDError as exc:
        print(f"mtmct-reid {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mtmct-reid {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
