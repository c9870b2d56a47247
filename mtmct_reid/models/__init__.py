"""Re-id models: one registry (``build_model``), torchvision backbones, PCB and global heads.

Example:
    >>> from mtmct_reid.models import build_model
    >>> model = build_model("pcb", num_classes=751, weights="none")
    >>> model.num_parts, model.feature_dim
    (6, 12288)
"""

from mtmct_reid.models.backbones import (
    BACKBONES,
    Backbone,
    available_backbones,
    build_backbone,
    imagenet_cache_path,
)
from mtmct_reid.models.checkpoint import load_model_from_checkpoint
from mtmct_reid.models.heads import ClassBlock, GlobalHead, PCBHead
from mtmct_reid.models.registry import (
    MODELS,
    ReIDModel,
    available_models,
    build_model,
    default_image_size,
    register_model,
)

__all__ = [
    "BACKBONES",
    "MODELS",
    "Backbone",
    "ClassBlock",
    "GlobalHead",
    "PCBHead",
    "ReIDModel",
    "available_backbones",
    "available_models",
    "build_backbone",
    "build_model",
    "default_image_size",
    "imagenet_cache_path",
    "load_model_from_checkpoint",
    "register_model",
]
