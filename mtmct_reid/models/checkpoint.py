"""Rebuild a trained model from a Lightning checkpoint without Lightning and without pickle.

The training module stores the model as ``self.model`` and its options with ``save_hyperparameters()``,
so a checkpoint holds ``state_dict`` (keys ``model.backbone...``, ``model.head...``) and
``hyper_parameters`` (``model``, ``backbone``, ``num_classes``, ``image_size``, ``last_stride``,
``num_parts``, ``dropout``, optionally ``bottleneck_dim``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mtmct_reid._io import require_file
from mtmct_reid.errors import ReIDError, torch_load_failure
from mtmct_reid.models.registry import ReIDModel, build_model
from mtmct_reid.validation import positive_int

log = logging.getLogger(__name__)

_PREFIX = "model."
_REQUIRED = ("model", "num_classes")
#: Largest image side a checkpoint may declare (larger is a corrupt value, not a model).
MAX_IMAGE_SIDE = 8192


def read_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load`` of a checkpoint on the CPU with ``weights_only=True`` (never pickle).

    Raises:
        ReIDError: the file is missing or is not readable without pickle, naming it.

    Example:
        >>> checkpoint = read_checkpoint("last.ckpt")  # doctest: +SKIP
        >>> checkpoint["epoch"]                        # doctest: +SKIP
        59
    """
    path = Path(path)
    # Memory-mapped, reading the hyper-parameters (resume, search, extract) does not read every
    # weight and optimiser buffer of the file; files of torch's old non-zip format cannot be mapped.
    require_file(path, "", "checkpoint")
    errors = []
    for mmap in (True, False):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as exc:  # torch.load raises many types for a non-checkpoint
            errors.append(exc)
    raise ReIDError(f"{path}: {torch_load_failure(errors, 'checkpoint')}") from None


def checkpoint_hparams(path: str | os.PathLike) -> dict[str, Any]:
    """The module and datamodule hyper-parameters stored in a training checkpoint (no pickle).

    Returns:
        ``{"model": {...}, "data": {...}, "epoch": int, "global_step": int}``.

    Example:
        >>> checkpoint_hparams("lightning_logs/version_0/checkpoints/last.ckpt")["model"]["model"]  # doctest: +SKIP
        'pcb'
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or "hyper_parameters" not in checkpoint:
        raise ReIDError(f"{path}: not a training checkpoint written by 'mtmct-reid train'")
    return {
        "model": dict(checkpoint.get("hyper_parameters") or {}),
        "data": dict(checkpoint.get("datamodule_hyper_parameters") or {}),
        "epoch": int(checkpoint.get("epoch", 0)),
        "global_step": int(checkpoint.get("global_step", 0)),
    }


def load_model_from_checkpoint(path: str | os.PathLike) -> tuple[ReIDModel, dict[str, Any]]:
    """Load a trained :class:`ReIDModel` from a Lightning checkpoint, on the CPU, in eval mode.

    Args:
        path: a ``.ckpt`` written by the training module (``mtmct-reid train``).

    Returns:
        The model with its trained weights, and the checkpoint's hyper-parameters as a plain dict
        (``image_size`` as an ``(H, W)`` tuple when present).

    Example:
        >>> model, hparams = load_model_from_checkpoint("runs/pcb/last.ckpt")  # doctest: +SKIP
        >>> hparams["image_size"], model.feature_dim                           # doctest: +SKIP
        ((384, 192), 12288)
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise ReIDError(
            f"{path}: not a training checkpoint (expected a dict with 'state_dict' and "
            "'hyper_parameters', as 'mtmct-reid train' writes)"
        )
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, Mapping):
        raise ReIDError(f"{path}: checkpoint has no 'hyper_parameters' to rebuild the model from")
    hparams = dict(hparams)
    for key in _REQUIRED:
        if key not in hparams:
            raise ReIDError(f"{path}: hyper_parameters lack '{key}' (needed to rebuild the model)")
    options = {
        key: hparams[key]
        for key in ("backbone", "last_stride", "dropout", "num_parts", "bottleneck_dim")
        if hparams.get(key) is not None
    }
    try:
        model = build_model(
            str(hparams["model"]), hparams["num_classes"], weights="none", **options
        )
    except ReIDError as exc:
        raise ReIDError(f"{path}: {exc}") from None
    if "image_size" in hparams:
        hparams["image_size"] = _image_size(path, hparams["image_size"])

    state = {
        key[len(_PREFIX) :]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(_PREFIX)
    }
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ReIDError(
                f"{path}: state_dict entry 'model.{key}' is a {type(value).__name__}, expected a tensor"
            )
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    description = f"{hparams['model']} with backbone {model.backbone_name}"
    if missing:
        raise ReIDError(
            f"{path}: {len(missing)} weight(s) of a {description} missing from the checkpoint, "
            f"first 'model.{missing[0]}'; was it written for another model?"
        )
    if unexpected:
        raise ReIDError(
            f"{path}: {len(unexpected)} weight(s) in the checkpoint do not belong to a {description}, "
            f"first 'model.{unexpected[0]}'; was it written for another model?"
        )
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise ReIDError(
                f"{path}: 'model.{key}' has shape {tuple(state[key].shape)}, a {description} "
                f"expects {tuple(ref.shape)}"
            )
    model.load_state_dict(state, strict=True)
    model.eval()
    log.debug("loaded %s (%d classes) from %s", description, model.config["num_classes"], path)
    return model, hparams


def checkpoint_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """The ``(height, width)`` a checkpoint was trained at, without building its model.

    Example:
        >>> checkpoint_image_size("last.ckpt")  # doctest: +SKIP
        (384, 192)
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, Mapping) else None
    if not isinstance(hparams, Mapping) or "image_size" not in hparams:
        raise ReIDError(f"{path}: checkpoint does not record its image size")
    return _image_size(path, hparams["image_size"])


def _image_size(path: Path, value: Any) -> tuple[int, int]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ReIDError(
            f"{path}: hyper_parameters 'image_size' is {value!r}, expected [height, width]"
        )
    height, width = (
        positive_int(f"{path}: hyper_parameters 'image_size' {side}", v, maximum=MAX_IMAGE_SIDE)
        for side, v in zip(("height", "width"), value, strict=True)
    )
    return height, width
