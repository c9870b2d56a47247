"""``mtmct-reid extract``: query and gallery features of a dataset from a trained checkpoint."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mtmct_reid._runtime import usable_cores
from mtmct_reid.cli import add_layout_arguments
from mtmct_reid.validation import arg_int

#: Largest batch: beyond it a batch of 384x192 images alone takes gigabytes.
MAX_BATCH_SIZE = 4096


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="write query/gallery features of a dataset with a trained model",
        description=(
            "Extract st-ReID test features (image + horizontal flip, each part L2-normalised) of the "
            "query and gallery images of a dataset, and write them as a features .npz that "
            "'mtmct-reid evaluate' reads."
        ),
    )
    parser.add_argument(
        "checkpoint",
        type=Path,
        nargs="?",
        default=None,
        help="checkpoint written by 'mtmct-reid train' (or pass --onnx)",
    )
    parser.add_argument(
        "--onnx",
        type=Path,
        default=None,
        metavar="MODEL",
        help="extract with ONNX Runtime from a model written by 'mtmct-reid export' (no checkpoint)",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="dataset root folder")
    parser.add_argument("--out", type=Path, required=True, help="features file to write (.npz)")
    add_layout_arguments(parser)
    parser.add_argument(
        "--batch-size",
        type=arg_int(1, MAX_BATCH_SIZE),
        default=64,
        help=f"images per batch, 1..{MAX_BATCH_SIZE} (64)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N"
    )
    parser.add_argument(
        "--precision", default="32", choices=("32", "bf16"), help="32 or bf16 autocast"
    )
    scale = parser.add_argument_group("several devices or machines (Lightning DDP)")
    scale.add_argument(
        "--devices",
        type=arg_int(),
        default=1,
        metavar="N",
        help="processes per machine: GPUs, or CPU processes with --accelerator cpu (1)",
    )
    scale.add_argument(
        "--accelerator",
        default="auto",
        choices=("auto", "cpu", "gpu"),
        help="device kind for --devices (auto: GPUs when there are any)",
    )
    scale.add_argument(
        "--num-nodes",
        type=arg_int(),
        default=1,
        metavar="M",
        help="machines, each running this command (MASTER_ADDR, MASTER_PORT, NODE_RANK set) (1)",
    )
    parser.add_argument(
        "--image-size",
        default=None,
        metavar="HxW",
        help="input size, e.g. 384x192 (default: the size the checkpoint was trained at)",
    )
    parser.add_argument(
        "--no-flip", action="store_true", help="do not add the mirrored image's features"
    )
    parser.add_argument(
        "--num-workers",
        # No more worker processes than the cores this process may use.
        type=arg_int(0, usable_cores()),
        default=0,
        help=f"image decoding worker processes, 0..{usable_cores()} (0)",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing output file of another kind"
    )
    parser.set_defaults(func=run_extract)


def run_extract(args: argparse.Namespace) -> int:
    from mtmct_reid._io import check_output
    from mtmct_reid.data.image_size import parse_image_size
    from mtmct_reid.data.readers import read_dataset
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.features import extract_featureset
    from mtmct_reid.models.checkpoint import load_model_from_checkpoint

    check_output(
        args.out,
        "--out",
        "features",
        inputs=(args.checkpoint, args.onnx, args.data_dir),
        force=args.force,
    )
    if (args.checkpoint is None) == (args.onnx is None):
        raise ReIDError("pass either a checkpoint or --onnx MODEL (exactly one)")
    if args.devices > 1 or args.num_nodes > 1:
        from mtmct_reid.distributed import check_devices

        if args.onnx is not None:
            raise ReIDError(
                "--onnx runs in one process; --devices and --num-nodes need a checkpoint"
            )
        # Refused here, before the model is read or any process starts.
        check_devices(args.accelerator, args.devices, args.num_nodes)
    if args.onnx is not None:
        return _extract_onnx(args)
    model, hparams = load_model_from_checkpoint(args.checkpoint)
    if args.image_size is not None:
        image_size = parse_image_size(args.image_size)
    elif "image_size" in hparams:
        image_size = hparams["image_size"]
    else:
        raise ReIDError(
            f"{args.checkpoint}: checkpoint does not record its image size; pass --image-size HxW"
        )
    records = read_dataset(args.data_dir, layout=args.layout, pattern=args.pattern)
    start = time.perf_counter()
    if args.devices > 1 or args.num_nodes > 1:
        from mtmct_reid.distributed import extract_featureset_distributed

        features = extract_featureset_distributed(
            model,
            records,
            image_size,
            args.out,
            devices=args.devices,
            num_nodes=args.num_nodes,
            accelerator=args.accelerator,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            flip=not args.no_flip,
            precision=args.precision,
            metadata={"checkpoint": str(args.checkpoint)},
        )
        if features is not None:  # only global rank 0 has the merged file to report
            _report(args, features, time.perf_counter() - start)
        return 0
    features = extract_featureset(
        model,
        records,
        image_size,
        batch_size=args.batch_size,
        device=args.device,
        flip=not args.no_flip,
        precision=args.precision,
        num_workers=args.num_workers,
        metadata={"checkpoint": str(args.checkpoint)},
    )
    _save(args, features, time.perf_counter() - start)
    return 0


def _extract_onnx(args: argparse.Namespace) -> int:
    from mtmct_reid.data.readers import read_dataset
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.features import FeatureExtractor, extract_featureset

    if args.no_flip:
        raise ReIDError(
            "--no-flip: the flip is part of the exported model; export it with --no-flip"
        )
    if args.precision != "32":
        raise ReIDError("--precision: an ONNX model runs in the precision it was exported in (32)")
    if args.device not in ("auto", "cpu"):
        raise ReIDError(f"--device {args.device}: ONNX extraction runs on the CPU")
    extractor = FeatureExtractor.from_onnx(
        args.onnx,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        image_size=args.image_size,
    )
    records = read_dataset(args.data_dir, layout=args.layout, pattern=args.pattern)
    start = time.perf_counter()
    features = extract_featureset(extractor, records, None, metadata={"onnx": str(args.onnx)})
    _save(args, features, time.perf_counter() - start)
    return 0


def _save(args: argparse.Namespace, features, elapsed: float) -> None:
    features.save(args.out)
    _report(args, features, elapsed)


def _report(args: argparse.Namespace, features, elapsed: float) -> None:
    meta = features.metadata
    count = len(features.query) + len(features.gallery)
    print(
        f"wrote {args.out}: {len(features.query)} query + {len(features.gallery)} gallery features, "
        f"{features.dim}-d ({meta.get('model')}/{meta.get('backbone')}, "
        f"{meta.get('image_size')}) in {elapsed:.1f}s ({count / max(elapsed, 1e-9):.1f} img/s)"
    )
