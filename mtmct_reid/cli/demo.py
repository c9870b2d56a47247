"""``mtmct-reid demo``: st-ReID end to end on a generated camera network, with a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtmct_reid.validation import arg_int


def register(subparsers: argparse._SubParsersAction) -> None:
    from mtmct_reid.pipelines.demo import DemoConfig

    defaults = DemoConfig()
    parser = subparsers.add_parser(
        "demo",
        help="generate a camera network, train, fit transit times, evaluate, write a report",
        description=(
            "Run st-ReID end to end in a few minutes on a CPU: generate a synthetic camera network "
            "whose look-alike people only timing can tell apart, train a small PCB model, fit the "
            "transit-time model on the training split, evaluate visual / +ST / +re-rank / "
            "+ST+re-rank, and write DIR/report.md, DIR/report.json and pictures."
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=Path("demo"), metavar="DIR", help="output folder (./demo)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty folder that is not a previous demo's output",
    )
    parser.add_argument(
        "--ids", type=arg_int(), default=defaults.ids, help=f"identities ({defaults.ids})"
    )
    parser.add_argument(
        "--cameras", type=arg_int(), default=defaults.cameras, help=f"cameras ({defaults.cameras})"
    )
    parser.add_argument(
        "--epochs",
        type=arg_int(),
        default=defaults.epochs,
        help=f"training epochs ({defaults.epochs})",
    )
    parser.add_argument("--seed", type=arg_int(), default=defaults.seed, help="random seed (0)")
    parser.add_argument(
        "--device", default=defaults.device, help="auto (CUDA when available), cpu, cuda, cuda:N"
    )
    parser.add_argument(
        "--image-size",
        default=None,
        metavar="HxW",
        help=f"image and input size ({defaults.image_size[0]}x{defaults.image_size[1]})",
    )
    parser.add_argument(
        "--synth",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="synthetic network option, e.g. lookalike_fraction=0.8 (repeatable; see "
        "'mtmct-reid synth --help')",
    )
    parser.add_argument(
        "--no-tracking",
        dest="tracking",
        action="store_false",
        help="skip the multi-camera tracking stage (a small synthetic video network)",
    )
    parser.set_defaults(func=run_demo_command)


def _synth_options(items: list[str]) -> dict:
    import json

    from mtmct_reid.errors import ReIDError

    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ReIDError(f"--synth {item!r}: expected KEY=VALUE, e.g. lookalike_fraction=0.8")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        options[key.strip()] = tuple(value) if isinstance(value, list) else value
    return options


def run_demo_command(args: argparse.Namespace) -> int:
    from mtmct_reid._io import check_output
    from mtmct_reid.data.image_size import parse_image_size
    from mtmct_reid.pipelines.demo import DemoConfig, run_demo

    check_output(args.out, "--out", "folder")
    defaults = DemoConfig()
    config = DemoConfig(
        ids=args.ids,
        cameras=args.cameras,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        image_size=defaults.image_size
        if args.image_size is None
        else parse_image_size(args.image_size),
        synth=_synth_options(args.synth),
        tracking=args.tracking,
        force=args.force,
    )
    result = run_demo(args.out, config)
    print(result.evaluation.format_table())
    print()
    stages = ", ".join(
        f"{name} {value:.0f}s" for name, value in result.seconds.items() if name != "total"
    )
    print(f"stage times: {stages}; total {result.seconds['total']:.0f}s")
    print(f"report: {result.report_md}")
    print(f"training curves: tensorboard --logdir {result.log_dir.parent}")
    return 0
