"""``mtmct-reid export``: the test-time model of a checkpoint as ONNX, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX (dynamic batch, preprocessing in its metadata)",
        description=(
            "Write the st-ReID test feature of a checkpoint (ImageNet normalisation, image + "
            "horizontal flip, part normalisation) as one ONNX graph with a dynamic batch; its "
            "input is RGB in [0, 1] at the checkpoint's size, and the file's metadata records the "
            "preprocessing and the output layout. The file is written only after ONNX Runtime and "
            "PyTorch agree within 1e-4 on the same images (--no-check skips that)."
        ),
    )
    parser.add_argument("checkpoint", type=Path, help="checkpoint written by 'mtmct-reid train'")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write (.onnx)")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing output file of another kind"
    )
    parser.add_argument(
        "--image-size",
        default=None,
        metavar="HxW",
        help="input size (default: the size the checkpoint was trained at)",
    )
    parser.add_argument(
        "--no-flip", action="store_true", help="leave out the mirrored image's features"
    )
    parser.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compare ONNX Runtime with PyTorch features before writing (default: on)",
    )
    parser.add_argument(
        "--check-images",
        nargs="+",
        type=Path,
        default=None,
        metavar="PATH",
        help="images or folders for the check (first 16 images; default: 8 generated pictures)",
    )
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from mtmct_reid._io import check_output
    from mtmct_reid.data.image_size import parse_image_size
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.export import export_onnx, generated_images, list_images, require_onnx
    from mtmct_reid.models.checkpoint import load_model_from_checkpoint

    require_onnx()
    check_output(args.out, "--out", "onnx", inputs=(args.checkpoint,), force=args.force)
    images = None
    if args.check:
        images = list_images(args.check_images) if args.check_images else generated_images()
    model, hparams = load_model_from_checkpoint(args.checkpoint)
    if args.image_size is not None:
        image_size = parse_image_size(args.image_size, "--image-size")
    elif "image_size" in hparams:
        image_size = hparams["image_size"]
    else:
        raise ReIDError(
            f"{args.checkpoint}: checkpoint does not record its image size; pass --image-size HxW"
        )
    report = export_onnx(
        model,
        args.out,
        image_size,
        flip=not args.no_flip,
        check_images=images,
        extra_metadata={"checkpoint": args.checkpoint.name},
    )
    check = (
        f"ONNX Runtime vs PyTorch on {report.checked_images} images: max |diff| "
        f"{report.max_abs_diff:.2g}"
        if report.max_abs_diff is not None
        else "not checked"
    )
    meta = report.metadata
    print(
        f"wrote {args.out}: {meta['model']}/{meta['backbone']}, input {INPUT_TEXT} "
        f"{meta['image_size']}, output {meta['feature_dim']}-d; {check}"
    )
    return 0


INPUT_TEXT = "RGB [0, 1] NCHW"
