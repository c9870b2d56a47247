"""Tiny re-id models, their checkpoints and a small Market folder for the deploy tests."""

from __future__ import annotations

import torch

from mtmct_reid.models import build_model

SIZE = (64, 32)


def tiny_model(name: str, backbone: str):
    torch.manual_seed(0)
    net = build_model(name, num_classes=5, backbone=backbone, weights="none")
    # Non-trivial BatchNorm statistics: an export that kept train-mode BatchNorm would differ.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def checkpoint_file(path, net, image_size=SIZE):
    hparams = {
        "model": net.model_name,
        "backbone": net.backbone_name,
        "num_classes": net.config["num_classes"],
        "image_size": list(image_size),
        "last_stride": net.config["last_stride"],
        "num_parts": net.num_parts,
        "dropout": net.config["dropout"],
    }
    state = {"model." + k: v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    return path
