"""Feature-extraction throughput: our FeatureExtractor against a bare torchvision forward, same run.

Both sides get the same preloaded PIL images and the same batch size, and both do the full test-time
work: test transform (resize + normalise), forward of the image and its horizontal flip, sum, part
normalisation. The baseline is what one writes by hand: the torchvision constructor of the same backbone
(same last stride), default memory layout, a Python loop over batches. A third line times the bare
network alone on pre-transformed tensors, the ceiling for any pipeline.

Run:
    .venv/bin/python benchmarks/bench_extract.py --backbone resnet18 --image-size 128x64 --num-images 64
    .venv/bin/python benchmarks/bench_extract.py --device cuda --precision bf16 --num-images 2048

Prints images per second for each side, the ratio ours / baseline (target >= 0.9) and peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torchvision
from PIL import Image

from mtmct_reid.data.image_size import parse_image_size
from mtmct_reid.data.images import build_transforms
from mtmct_reid.features import FeatureExtractor, normalize_parts, resolve_device
from mtmct_reid.models import build_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pcb", help="pcb, resnet50 or densenet121")
    parser.add_argument("--backbone", default=None, help="default: the model's")
    parser.add_argument(
        "--image-size", default=None, help="HxW; default 384x192 for pcb, else 256x128"
    )
    parser.add_argument("--precision", default="32", choices=("32", "bf16"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per side; best kept")
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def make_images(count: int, size: tuple[int, int], seed: int = 0) -> list[Image.Image]:
    """Smooth random pictures about the size of a Market crop (128x64), already decoded."""
    rng = np.random.default_rng(seed)
    height, width = size
    images = []
    for _ in range(count):
        coarse = rng.integers(0, 256, (8, 4, 3), dtype=np.uint8)
        images.append(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
    return images


def torchvision_trunk(model_name: str, backbone: str, num_parts: int) -> torch.nn.Module:
    """The torchvision network of the same backbone, last stride 1, pooled the way the head pools."""
    net = torchvision.models.get_model(backbone, weights=None)
    pool = torch.nn.AdaptiveAvgPool2d((num_parts, 1) if model_name == "pcb" else 1)
    if backbone.startswith("densenet"):
        net.features.transition3.pool = torch.nn.Identity()
        features = net.features

        class DenseTrunk(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return pool(torch.relu(features(x)))

        return DenseTrunk()
    block = net.layer4[0]
    (block.conv2 if hasattr(block, "conv3") else block.conv1).stride = (1, 1)
    block.downsample[0].stride = (1, 1)
    net.avgpool = pool
    net.fc = torch.nn.Identity()
    return net


def peak_memory_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    # Writing 5 to clear_refs resets the process's peak resident size (Linux only).
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_memory_mib(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB GPU"
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return f"{int(line.split()[1]) / 1024:.0f} MiB RSS"
    except OSError:
        pass
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB RSS (process)"


def best_time(run: Callable[[], np.ndarray], repeats: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_model(args.model, num_classes=751, backbone=args.backbone, weights="none").eval()
    size = parse_image_size(args.image_size or ("384x192" if args.model == "pcb" else "256x128"))
    flip = not args.no_flip
    images = make_images(args.num_images, (128, 64))
    transform = build_transforms(size, train=False)

    extractor = FeatureExtractor(
        model, size, batch_size=args.batch_size, device=device, flip=flip, precision=args.precision
    )

    baseline_net = torchvision_trunk(args.model, model.backbone_name, model.num_parts)
    baseline_net.load_state_dict(model.backbone.state_dict(), strict=False)
    baseline_net = baseline_net.to(device).eval()
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if args.precision == "bf16"
        else contextlib.nullcontext()
    )

    def baseline_forward(batch: torch.Tensor) -> torch.Tensor:
        if flip:
            batch = torch.cat([batch, batch.flip(3)])
        with autocast:
            out = baseline_net(batch).float()
        out = out.reshape(out.shape[0], model.part_dim, -1).transpose(1, 2)
        if flip:
            out = out[: len(out) // 2] + out[len(out) // 2 :]
        return normalize_parts(out)

    def baseline() -> np.ndarray:
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), args.batch_size):
                batch = torch.stack(
                    [transform(im) for im in images[start : start + args.batch_size]]
                )
                chunks.append(baseline_forward(batch.to(device)).cpu().numpy())
        return np.concatenate(chunks)

    pretransformed = [
        torch.stack([transform(im) for im in images[s : s + args.batch_size]]).to(device)
        for s in range(0, len(images), args.batch_size)
    ]

    def network_only() -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([baseline_forward(b).cpu().numpy() for b in pretransformed])

    def ours() -> np.ndarray:
        return extractor(images)

    # Same answer first, so the timings compare the same computation.
    agreement = float(np.min(np.sum(ours() * baseline(), axis=1)))
    results = {}
    for name, run in (("baseline", baseline), ("ours", ours), ("network only", network_only)):
        peak_memory_reset()
        seconds = best_time(run, args.repeats, device)
        results[name] = (len(images) / seconds, peak_memory_mib(device))

    print(
        f"extract {args.model}/{model.backbone_name} {size[0]}x{size[1]} {args.precision} "
        f"flip={flip} device={device} batch={args.batch_size} images={len(images)} "
        f"threads={torch.get_num_threads()} (min cosine ours vs baseline {agreement:.5f})"
    )
    for name, (rate, memory) in results.items():
        print(f"  {name:<13} {rate:9.1f} img/s   peak {memory}")
    ratio = results["ours"][0] / results["baseline"][0]
    print(f"  ratio ours/baseline {ratio:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
