"""Convolutional trunks built from torchvision constructors, with a last-stride option and three ways
to initialise them: ImageNet weights from torchvision's cache, random, or a state-dict file.

A trunk keeps torchvision's own parameter names (``conv1.weight``, ``layer4.0.conv2.weight``,
``features.denseblock4...``) minus the ImageNet classifier, so torchvision checkpoints load into it as they
are and a trunk's state dict loads back into torchvision.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from mtmct_reid.errors import ReIDError, torch_load_failure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone: its torchvision constructor name, family and weights enum name."""

    name: str
    family: str  # "resnet" or "densenet"
    weights_enum: str


#: Every backbone ``build_backbone`` accepts.
BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("resnet18", "resnet", "ResNet18_Weights"),
        BackboneSpec("resnet34", "resnet", "ResNet34_Weights"),
        BackboneSpec("resnet50", "resnet", "ResNet50_Weights"),
        BackboneSpec("resnet101", "resnet", "ResNet101_Weights"),
        BackboneSpec("resnet152", "resnet", "ResNet152_Weights"),
        BackboneSpec("resnext50_32x4d", "resnet", "ResNeXt50_32X4D_Weights"),
        BackboneSpec("resnext101_32x8d", "resnet", "ResNeXt101_32X8D_Weights"),
        BackboneSpec("wide_resnet50_2", "resnet", "Wide_ResNet50_2_Weights"),
        BackboneSpec("densenet121", "densenet", "DenseNet121_Weights"),
        BackboneSpec("densenet169", "densenet", "DenseNet169_Weights"),
        BackboneSpec("densenet201", "densenet", "DenseNet201_Weights"),
    )
}

# Old torchvision DenseNet checkpoints (the ones its URLs still serve) name layers 'norm.1', 'conv.2';
# the modules are now 'norm1', 'conv2'. Same fix as torchvision's own loader.
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
# Prefixes under which a trunk's weights appear in files users are likely to pass: a ReIDModel state
# dict ("backbone."), a Lightning checkpoint's state dict ("model.backbone."), DataParallel ("module.").
_KNOWN_PREFIXES = ("model.backbone.", "module.backbone.", "backbone.", "module.", "model.")


def available_backbones() -> list[str]:
    """Names accepted by ``build_backbone`` (and ``build_model(backbone=...)``).

    Example:
        >>> "resnet50" in available_backbones()
        True
    """
    return sorted(BACKBONES)


class Backbone(nn.Module):
    """A torchvision trunk without its ImageNet pooling and classifier: image → feature map.

    Attributes:
        name: the backbone name (``resnet50``, ``densenet121``, ...).
        out_channels: channels of the output feature map (2048 for resnet50, 1024 for densenet121).
        output_stride: input size / feature-map size (16 with last stride 1, else 32).
    """

    def __init__(self, name: str, trunk: nn.Module, out_channels: int, output_stride: int) -> None:
        super().__init__()
        self.name = name
        self.out_channels = out_channels
        self.output_stride = output_stride
        self.family = BACKBONES[name].family
        if self.family == "resnet":
            for child in (
                "conv1",
                "bn1",
                "relu",
                "maxpool",
                "layer1",
                "layer2",
                "layer3",
                "layer4",
            ):
                setattr(self, child, getattr(trunk, child))
        else:
            self.features = trunk.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.family == "resnet":
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))
        # torchvision's DenseNet applies this ReLU in forward(), not inside ``features``.
        return F.relu(self.features(x), inplace=True)


def build_backbone(name: str, weights: str = "imagenet", last_stride: int = 1) -> Backbone:
    """Build a trunk from its torchvision constructor.

    Args:
        name: one of :func:`available_backbones`.
        weights: ``"imagenet"`` (torchvision's default ImageNet weights, from the torch hub cache,
            downloaded if missing), ``"none"`` (random initialisation) or the path of a state-dict file
            holding the trunk's weights (torchvision naming, optionally under a ``backbone.`` or
            ``model.backbone.`` prefix, as in a ReIDModel state dict or a Lightning checkpoint).
        last_stride: 1 keeps the last stage at the previous stage's resolution (feature map of
            input/16, as PCB and st-ReID use); 2 is torchvision's original (input/32).

    Example:
        >>> trunk = build_backbone("resnet18", weights="none")
        >>> trunk(torch.zeros(1, 3, 128, 64)).shape
        torch.Size([1, 512, 8, 4])
    """
    if name not in BACKBONES:
        raise ReIDError(f"unknown backbone '{name}'; known: {', '.join(available_backbones())}")
    if last_stride not in (1, 2):
        raise ReIDError(f"last_stride must be 1 or 2, got {last_stride}")
    spec = BACKBONES[name]
    constructor: Callable[..., nn.Module] = getattr(torchvision.models, name)
    trunk = constructor(weights=None)
    choice = str(weights)
    if choice.lower() == "imagenet":
        _load_imagenet(trunk, spec)
    elif choice.lower() != "none":
        _load_trunk_file(trunk, spec, Path(choice))
    if spec.family == "resnet":
        out_channels = trunk.fc.in_features
        if last_stride == 1:
            block = trunk.layer4[0]
            # BasicBlock strides in conv1, Bottleneck in conv2 (torchvision's ResNet v1.5).
            stride_conv = block.conv2 if hasattr(block, "conv3") else block.conv1
            stride_conv.stride = (1, 1)
            block.downsample[0].stride = (1, 1)
    else:
        out_channels = trunk.classifier.in_features
        if last_stride == 1:
            trunk.features.transition3.pool = nn.Identity()
    return Backbone(name, trunk, out_channels, output_stride=16 if last_stride == 1 else 32)


def imagenet_cache_path(name: str) -> Path:
    """Where torchvision keeps (and looks for) the ImageNet weights of backbone ``name``.

    Example:
        >>> imagenet_cache_path("resnet50").name
        'resnet50-11ad3fa6.pth'
    """
    if name not in BACKBONES:
        raise ReIDError(f"unknown backbone '{name}'; known: {', '.join(available_backbones())}")
    url = getattr(torchvision.models, BACKBONES[name].weights_enum).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _load_imagenet(trunk: nn.Module, spec: BackboneSpec) -> None:
    url = getattr(torchvision.models, spec.weights_enum).DEFAULT.url
    cache = imagenet_cache_path(spec.name)
    try:
        state = torch.hub.load_state_dict_from_url(
            url, model_dir=str(cache.parent), progress=True, check_hash=True, weights_only=True
        )
    except OSError as exc:  # URLError, connection refused, no space left, permission denied
        reason = getattr(exc, "reason", None) or exc
        raise ReIDError(
            f"ImageNet weights for {spec.name} are not cached and could not be downloaded ({reason}); "
            f"put {url} at {cache}, or pass --weights PATH (a state-dict file) or --weights none"
        ) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ReIDError(
            f"{cache}: cached ImageNet weights for {spec.name} are unreadable "
            f"({torch_load_failure([exc], 'state-dict file')}); delete the file to download it again"
        ) from None
    _load_trunk_state(trunk, spec, state, source=str(cache))


def _load_trunk_file(trunk: nn.Module, spec: BackboneSpec, path: Path) -> None:
    if not path.is_file():
        raise ReIDError(
            f"weights '{path}': expected 'imagenet', 'none' or the path of a state-dict file"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises a zoo of types for a file that is not a checkpoint
        raise ReIDError(f"{path}: {torch_load_failure([exc], 'state-dict file')}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ReIDError(
            f"{path}: expected a state dict (parameter name -> tensor), found {type(state).__name__}"
        )
    _load_trunk_state(trunk, spec, state, source=str(path))


def _load_trunk_state(
    trunk: nn.Module, spec: BackboneSpec, state: Mapping[str, Any], source: str
) -> None:
    expected = {k: v for k, v in trunk.state_dict().items() if not _is_classifier_key(k)}
    state = _strip_prefix(state, set(expected))
    state = {_DENSENET_OLD_KEY.sub(r"\1\2", k): v for k, v in state.items()}
    # Checkpoints older than PyTorch 0.4.1 (torchvision's DenseNet ones) have no BatchNorm counters.
    required = [k for k in expected if not k.endswith("num_batches_tracked")]
    missing = [k for k in required if k not in state]
    if len(missing) == len(required):
        raise ReIDError(
            f"{source}: no parameter of a {spec.name} backbone found (first key in the file: "
            f"'{next(iter(state), '')}'); is it the weights of another backbone?"
        )
    if missing:
        raise ReIDError(
            f"{source}: {len(missing)} parameter(s) of the {spec.name} backbone missing, "
            f"first '{missing[0]}'; is it the weights of another backbone?"
        )
    unexpected = [k for k in state if k not in expected and not _is_classifier_key(k)]
    if unexpected:
        raise ReIDError(
            f"{source}: {len(unexpected)} parameter(s) do not belong to a {spec.name} backbone, "
            f"first '{unexpected[0]}'; is it the weights of another backbone?"
        )
    for key, ref in expected.items():
        if key in state and tuple(state[key].shape) != tuple(ref.shape):
            raise ReIDError(
                f"{source}: '{key}' has shape {tuple(state[key].shape)}, the {spec.name} backbone "
                f"expects {tuple(ref.shape)}"
            )
    # The ImageNet classifier is dropped from the trunk, so it need not match.
    trunk.load_state_dict({k: state[k] for k in expected if k in state}, strict=False)


def _strip_prefix(state: Mapping[str, Any], expected: set[str]) -> dict[str, Any]:
    if any(k in expected for k in state):
        return dict(state)
    for prefix in _KNOWN_PREFIXES:
        stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if any(k in expected for k in stripped):
            return stripped
    return dict(state)


def _is_classifier_key(key: str) -> bool:
    return key.startswith(("fc.", "classifier."))
