"""``mtmct-reid train``: train a re-id model with Lightning, validate it with st-ReID retrieval.

The arguments go to Lightning's CLI (:class:`~mtmct_reid.training.cli.ReIDCLI`): ``--config``
YAML files, ``--print_config``, ``--trainer.*``, ``--model.*``, ``--data.*``, and the short flags
``--data-dir --model --backbone --weights --image-size --max-epochs --batch-size --devices
--accelerator --strategy --precision --ckpt-path --out`` as aliases.

Output: ``<root>/lightning_logs/version_N/`` with ``checkpoints/`` (``last.ckpt`` and the best by
``val/mAP``), ``hparams.yaml``, ``config.yaml``, TensorBoard events, ``transit_time.npz`` (the
transit-time model of the training split) and, after the test, ``test_results.json`` / ``.md`` and
``features.npz``.
"""

from __future__ import annotations

import argparse
import logging

HELP = (
    "Train a re-id model on the train split of a dataset (identity classification), validating "
    "each epoch on query/gallery with mAP/CMC, visually and fused with the transit-time model of "
    "the training split. Writes <root>/lightning_logs/version_N/ with checkpoints (last.ckpt, best "
    "by val/mAP), hparams.yaml, config.yaml, TensorBoard events, transit_time.npz and, after the "
    "test, test_results.json/.md and features.npz. Options are Lightning CLI's (--config, "
    "--print_config, --trainer.*, --model.*, --data.*; see 'mtmct-reid train --help'). Resume an "
    "interrupted run with --ckpt-path last."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    # Every argument goes to Lightning's CLI: a prefix character no option uses keeps argparse
    # from reading them itself (``--help`` included).
    parser = subparsers.add_parser(
        "train",
        help="train a re-id model (PCB, ResNet50, DenseNet121) with Lightning",
        description=HELP,
        add_help=False,
        prefix_chars="\x00",
    )
    parser.add_argument("argv", nargs="*", help="Lightning CLI arguments")
    parser.set_defaults(func=run_train)


def _route_lightning_logs() -> None:
    """Send Lightning's log lines through the command's logging set-up, once each.

    ``import lightning`` gives its logger a console handler of its own; under the command's root
    handler every Lightning line would print twice and ignore ``--quiet``.
    """
    root = logging.getLogger()
    if not root.handlers:
        return
    level = max(root.level, logging.INFO)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(level)


def run_train(args: argparse.Namespace) -> int:
    from mtmct_reid.training.cli import run

    _route_lightning_logs()
    return run(list(args.argv))
