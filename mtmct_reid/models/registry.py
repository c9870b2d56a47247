"""One registry of re-id models: ``build_model(name, num_classes, **options)``.

A model is a backbone (feature map) plus a head (logits per part for training, part features for test).
New architectures register a builder with :func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mtmct_reid.errors import ReIDError
from mtmct_reid.models.backbones import Backbone, available_backbones, build_backbone
from mtmct_reid.models.heads import GlobalHead, PCBHead
from mtmct_reid.validation import as_float, as_int, positive_int

#: Largest classifier a model is built with: more identities than any re-id dataset has, and a
#: bound that keeps a corrupt value (a checkpoint's ``num_classes: 10**13``) from allocating.
MAX_CLASSES = 1_000_000
#: Largest number of PCB stripes (the feature map of a 384-pixel-high image is 24 rows).
MAX_PARTS = 64
#: Largest embedding bottleneck.
MAX_BOTTLENECK = 65_536

ModelBuilder = Callable[..., "ReIDModel"]

#: Model name → builder. Builders take the keyword options of :func:`build_model`.
MODELS: dict[str, ModelBuilder] = {}


class ReIDModel(nn.Module):
    """A backbone and a re-id head.

    ``forward`` gives the training logits, one tensor per part; ``extract`` gives the raw test features
    per part (PCB: the stripe features before the bottleneck; global: the pooled backbone feature).

    Attributes:
        model_name: registry name (``pcb``, ``resnet50``, ``densenet121``).
        backbone_name: the trunk's name (``resnet50``, ...).
        num_parts: number of parts P (6 for PCB, 1 for global heads).
        part_dim: feature size Dp of one part.
        feature_dim: P·Dp, the length of the concatenated test feature.
        config: the options that rebuild this model with :func:`build_model` (weights aside).

    Example:
        >>> model = build_model("pcb", num_classes=10, backbone="resnet18", weights="none")
        >>> x = torch.zeros(2, 3, 128, 64)
        >>> len(model(x)), model.extract(x).shape, model.feature_dim
        (6, torch.Size([2, 6, 512]), 3072)
    """

    def __init__(self, model_name: str, backbone: Backbone, head: nn.Module, config: dict) -> None:
        super().__init__()
        self.model_name = model_name
        self.backbone_name = backbone.name
        self.backbone = backbone
        self.head = head
        self.num_parts = int(head.num_parts)
        self.part_dim = int(backbone.out_channels)
        self.feature_dim = self.num_parts * self.part_dim
        self.config = dict(config)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits per part, each [B, num_classes]; a list of length ``num_parts``."""
        return self.head(self.backbone(x))

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) test features, [B, num_parts, part_dim]."""
        return self.head.features(self.backbone(x))

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters of the (pretrained) trunk, trained at the lower learning rate."""
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the new layers (bottlenecks, classifiers), trained at the higher rate."""
        return list(self.head.parameters())


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator adding a model builder to :data:`MODELS` under ``name``.

    The builder receives ``num_classes`` and the keyword options of :func:`build_model` (with
    ``backbone`` and ``bottleneck_dim`` still possibly None) and returns a :class:`ReIDModel`.

    Example:
        >>> @register_model("tiny_global")
        ... def _tiny(num_classes, *, backbone=None, weights="imagenet", last_stride=1,
        ...           dropout=0.5, num_parts=6, bottleneck_dim=None):
        ...     trunk = build_backbone(backbone or "resnet18", weights, last_stride)
        ...     head = GlobalHead(trunk.out_channels, num_classes, bottleneck_dim or 64, dropout)
        ...     return ReIDModel("tiny_global", trunk, head, {"model": "tiny_global"})
        >>> "tiny_global" in available_models()
        True
        >>> _ = MODELS.pop("tiny_global")  # the example leaves the registry as it was
    """

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in MODELS:
            raise ValueError(f"model '{name}' is already registered")
        MODELS[name] = builder
        return builder

    return decorate


#: Input size (height, width) each model is trained at in the st-ReID and PCB papers.
DEFAULT_IMAGE_SIZES: dict[str, tuple[int, int]] = {"pcb": (384, 192)}
#: Input size of the global models (and of models registered without one).
GLOBAL_IMAGE_SIZE = (256, 128)


def default_image_size(name: str) -> tuple[int, int]:
    """The input size a model is trained at by default: 384×192 for PCB, 256×128 otherwise.

    Example:
        >>> default_image_size("pcb"), default_image_size("resnet50")
        ((384, 192), (256, 128))
    """
    return DEFAULT_IMAGE_SIZES.get(name, GLOBAL_IMAGE_SIZE)


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`.

    Example:
        >>> available_models()[:3]
        ['densenet121', 'pcb', 'resnet50']
    """
    return sorted(MODELS)


def build_model(
    name: str,
    num_classes: int,
    *,
    backbone: str | None = None,
    weights: str = "imagenet",
    last_stride: int = 1,
    dropout: float = 0.5,
    num_parts: int = 6,
    bottleneck_dim: int | None = None,
) -> ReIDModel:
    """Build a registered re-id model.

    Args:
        name: ``pcb``, ``resnet50``, ``densenet121`` or any name added with :func:`register_model`.
        num_classes: number of training identities (size of each classifier).
        backbone: trunk name (see :func:`available_backbones`); None takes the model's default
            (resnet50 for ``pcb`` and ``resnet50``, densenet121 for ``densenet121``).
        weights: ``"imagenet"``, ``"none"`` or the path of a state-dict file with the trunk's weights.
            The head is always freshly initialised.
        last_stride: 1 (default) keeps the last stage at input/16 resolution; 2 is torchvision's.
        dropout: dropout probability of the head (0.5).
        num_parts: number of PCB stripes (6); global models always have one part.
        bottleneck_dim: bottleneck width; None gives 256 for PCB stripes and 512 for global heads.

    Example:
        >>> model = build_model("resnet50", num_classes=751, weights="none")
        >>> model.num_parts, model.feature_dim
        (1, 2048)
    """
    if name not in MODELS:
        raise ReIDError(f"unknown model '{name}'; known: {', '.join(available_models())}")
    if backbone is not None and backbone not in available_backbones():
        raise ReIDError(f"unknown backbone '{backbone}'; known: {', '.join(available_backbones())}")
    # Bounded so that a bad value (a checkpoint's num_classes of 10**13) is a message, not an
    # attempt to allocate a classifier of that size.
    num_classes = positive_int("num_classes", num_classes, maximum=MAX_CLASSES)
    num_parts = positive_int("num_parts", num_parts, maximum=MAX_PARTS)
    last_stride = as_int("last_stride", last_stride, minimum=1, maximum=2)
    if bottleneck_dim is not None:
        bottleneck_dim = positive_int("bottleneck_dim", bottleneck_dim, maximum=MAX_BOTTLENECK)
    dropout = as_float("dropout", dropout, minimum=0.0, maximum=1.0, high_open=True)
    return MODELS[name](
        num_classes,
        backbone=backbone,
        weights=weights,
        last_stride=last_stride,
        dropout=dropout,
        num_parts=num_parts,
        bottleneck_dim=bottleneck_dim,
    )


def _config(name: str, num_classes: int, **options: Any) -> dict:
    return {"model": name, "num_classes": num_classes, **options}


@register_model("pcb")
def _build_pcb(
    num_classes: int,
    *,
    backbone: str | None,
    weights: str,
    last_stride: int,
    dropout: float,
    num_parts: int,
    bottleneck_dim: int | None,
) -> ReIDModel:
    trunk = build_backbone(backbone or "resnet50", weights, last_stride)
    bottleneck_dim = bottleneck_dim or 256
    head = PCBHead(trunk.out_channels, num_classes, num_parts, bottleneck_dim, dropout)
    config = _config(
        "pcb",
        num_classes,
        backbone=trunk.name,
        last_stride=last_stride,
        dropout=dropout,
        num_parts=num_parts,
        bottleneck_dim=bottleneck_dim,
    )
    return ReIDModel("pcb", trunk, head, config)


def _build_global(
    name: str,
    default_backbone: str,
    num_classes: int,
    backbone: str | None,
    weights: str,
    last_stride: int,
    dropout: float,
    bottleneck_dim: int | None,
) -> ReIDModel:
    trunk = build_backbone(backbone or default_backbone, weights, last_stride)
    bottleneck_dim = bottleneck_dim or 512
    head = GlobalHead(trunk.out_channels, num_classes, bottleneck_dim, dropout)
    config = _config(
        name,
        num_classes,
        backbone=trunk.name,
        last_stride=last_stride,
        dropout=dropout,
        num_parts=1,
        bottleneck_dim=bottleneck_dim,
    )
    return ReIDModel(name, trunk, head, config)


@register_model("resnet50")
def _build_resnet50(num_classes: int, *, num_parts: int, **options: Any) -> ReIDModel:
    # A global model has one part whatever num_parts says: the option only shapes PCB.
    return _build_global("resnet50", "resnet50", num_classes, **options)


@register_model("densenet121")
def _build_densenet121(num_classes: int, *, num_parts: int, **options: Any) -> ReIDModel:
    return _build_global("densenet121", "densenet121", num_classes, **options)
