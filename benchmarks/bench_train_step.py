"""Training-step cost: our LightningModule's ``training_step`` against a bare torchvision step, same run.

Ours: :class:`mtmct_reid.training.ReIDLightningModule` (``pcb`` or ``resnet50``, random weights,
751 classes) driven by a bare loop — ``training_step`` (channels-last layout, forward, summed part
cross-entropies), ``zero_grad``, ``backward``, and the SGD step of the module's own two-group
optimiser. Baseline: what one writes by hand — the torchvision ResNet50 constructor with the same last
stride (1), global pooling, one linear classifier, ``F.cross_entropy``, plain SGD. Each combination of
model, input size and memory layout runs in a fresh process, so the peak resident memory
(``ru_maxrss``) printed is that step's own; on CUDA the peak allocated memory is printed too.

Run (from the repository root):
    .venv/bin/python -m benchmarks.bench_train_step                                  # all 8 combinations
    .venv/bin/python -m benchmarks.bench_train_step --models resnet50 --sizes 128x64 --steps 2
    .venv/bin/python -m benchmarks.bench_train_step --device cuda --precision bf16 --steps 20

Prints seconds per step for each side, the ratio ours / baseline (1.0 = same cost; PCB's six heads and
stripes cost a little more than one classifier) and the peak memory of both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

NUM_CLASSES = 751


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,pcb", help="comma-separated: resnet50, pcb")
    parser.add_argument("--sizes", default="128x64,256x128", help="comma-separated HxW")
    parser.add_argument("--layouts", default="channels_last,contiguous", help="memory layouts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="32", choices=("32", "bf16"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--worker", nargs=4, metavar=("SIDE", "MODEL", "SIZE", "LAYOUT"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def _baseline(last_stride: int = 1) -> torch.nn.Module:
    model = torchvision.models.resnet50(weights=None)
    if last_stride == 1:
        model.layer4[0].conv2.stride = (1, 1)
        model.layer4[0].downsample[0].stride = (1, 1)
    model.fc = torch.nn.Linear(model.fc.in_features, NUM_CLASSES)
    return model


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_worker(args: argparse.Namespace) -> dict[str, float]:
    """Time one side of one combination in this process; returns the figures as a dict."""
    from mtmct_reid.data.image_size import parse_image_size
    from mtmct_reid.training import ReIDLightningModule

    side, model_name, size_text, layout = args.worker
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = parse_image_size(size_text)
    channels_last = layout == "channels_last"
    torch.manual_seed(0)
    images = torch.randn(args.batch_size, 3, *size, device=device)
    labels = torch.randint(0, NUM_CLASSES, (args.batch_size,), device=device)
    rows = torch.arange(args.batch_size, device=device)

    if side == "ours":
        module = ReIDLightningModule(
            model_name,
            num_classes=NUM_CLASSES,
            image_size=size,
            weights="none",
            channels_last=channels_last,
        ).to(device)
        module.train()
        optimizer = module.configure_optimizers()["optimizer"]

        def loss_of_step(index: int) -> torch.Tensor:
            return module.training_step((images, labels, rows), index)

    else:
        network = _baseline().to(device)
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
        network.train()
        optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9, nesterov=True)

        def loss_of_step(index: int) -> torch.Tensor:
            batch = (
                images.contiguous(memory_format=torch.channels_last) if channels_last else images
            )
            return F.cross_entropy(network(batch), labels)

    def step(index: int) -> None:
        with _autocast(device, args.precision):
            loss = loss_of_step(index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for index in range(args.warmup):
        step(index)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for index in range(args.steps):
        tic = time.perf_counter()
        step(index)
        times.append(time.perf_counter() - tic)
    times.sort()
    return {
        "seconds_per_step": times[len(times) // 2],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0,
    }


def _measure(args: argparse.Namespace, side: str, model: str, size: str, layout: str) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_train_step",
        "--worker",
        side,
        model,
        size,
        layout,
    ]
    command += ["--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    command += [
        "--warmup",
        str(args.warmup),
        "--device",
        args.device,
        "--precision",
        args.precision,
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{side} {model} {size} {layout} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    print(
        f"training step, batch {args.batch_size}, {args.device}, precision {args.precision}, "
        f"median of {args.steps} steps after {args.warmup} warm-up, threads "
        f"{args.threads or torch.get_num_threads()}"
    )
    header = (
        f"{'model':<9} {'size':<8} {'layout':<14} {'ours s/step':>11} {'base s/step':>11} "
        f"{'ratio':>6} {'ours MB':>8} {'base MB':>8}"
    )
    print(header)
    for model in args.models.split(","):
        for size in args.sizes.split(","):
            for layout in args.layouts.split(","):
                ours = _measure(args, "ours", model, size, layout)
                base = _measure(args, "baseline", model, size, layout)
                memory = "cuda_peak_mb" if args.device.startswith("cuda") else "peak_rss_mb"
                print(
                    f"{model:<9} {size:<8} {layout:<14} {ours['seconds_per_step']:>11.3f} "
                    f"{base['seconds_per_step']:>11.3f} "
                    f"{ours['seconds_per_step'] / base['seconds_per_step']:>6.2f} "
                    f"{ours[memory]:>8.0f} {base[memory]:>8.0f}",
                    flush=True,
                )
    print("baseline: torchvision resnet50 (last stride 1) + linear classifier + cross-entropy, SGD")
    return 0


if __name__ == "__main__":
    sys.exit(main())
