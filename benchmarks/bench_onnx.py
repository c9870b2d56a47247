"""ONNX Runtime against PyTorch eager on the CPU: parity and extraction speed, same run.

Both sides run the code paths the commands use: ``FeatureExtractor(model)`` (``mtmct-reid extract
CKPT``) and ``FeatureExtractor.from_onnx`` on the file ``export_onnx`` wrote (``mtmct-reid export`` /
``extract --onnx``), over the same JPEG files, with the same batch size and the same number of threads
(torch intra-op threads = ONNX Runtime intra-op threads). Models have random weights (``--weights
none``): speed and parity do not depend on the weights' values.

Run:
    .venv/bin/python -m benchmarks.bench_onnx                                   # PCB and ResNet50
    .venv/bin/python -m benchmarks.bench_onnx --models pcb --num-images 32 --threads 2

Prints per model: export seconds, max |ONNX - PyTorch| over every feature value (target <= 1e-4),
images/s of each side (best of --repeats passes) and the ratio ONNX / PyTorch (target >= 1.2).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mtmct_reid._runtime import usable_cores
from mtmct_reid.export import export_onnx, generated_images
from mtmct_reid.features import FeatureExtractor
from mtmct_reid.models import build_model, default_image_size

MODELS = {"pcb": "resnet50", "resnet50": "resnet50", "densenet121": "densenet121"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["pcb", "resnet50"], choices=sorted(MODELS))
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per side; best kept")
    parser.add_argument("--threads", type=int, default=None, help="default: every usable core")
    return parser.parse_args(argv)


def write_images(folder: Path, count: int) -> list[Path]:
    """JPEG files of Market-crop size (128×64), so both sides decode and resize real files."""
    paths = []
    for i, image in enumerate(generated_images(count, size=(128, 64))):
        path = folder / f"{i:05d}.jpg"
        image.save(path, quality=95)
        paths.append(path)
    return paths


def images_per_second(extractor: FeatureExtractor, paths: list[Path], repeats: int) -> float:
    extractor(paths[: extractor.batch_size])  # warm-up: allocator, oneDNN / ORT kernels
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        extractor(paths)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    load = os.getloadavg()[0]
    print(f"threads {threads}, {args.num_images} images, batch {args.batch_size}, load {load:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), args.num_images)
        for name in args.models:
            size = default_image_size(name)
            torch.manual_seed(0)
            model = build_model(name, num_classes=751, backbone=MODELS[name], weights="none")
            model.eval()
            onnx_path = Path(tmp) / f"{name}.onnx"
            start = time.perf_counter()
            report = export_onnx(model, onnx_path, size, check_images=[Image.open(paths[0])])
            export_s = time.perf_counter() - start
            ours = FeatureExtractor.from_onnx(
                onnx_path, batch_size=args.batch_size, threads=threads
            )
            eager = FeatureExtractor(model, size, batch_size=args.batch_size, device="cpu")
            diff = float(np.max(np.abs(ours(paths) - eager(paths))))
            onnx_ips = images_per_second(ours, paths, args.repeats)
            torch_ips = images_per_second(eager, paths, args.repeats)
            print(
                f"{name}/{MODELS[name]} {size[0]}x{size[1]} ({report.metadata['feature_dim']}-d): "
                f"export {export_s:.1f}s, max |onnx - torch| {diff:.2e}, "
                f"onnxruntime {onnx_ips:.1f} img/s, pytorch eager {torch_ips:.1f} img/s, "
                f"ratio {onnx_ips / torch_ips:.2f}x"
            )
    print(f"load average at the end {os.getloadavg()[0]:.1f} (2-core machine shared)")


if __name__ == "__main__":
    main()
