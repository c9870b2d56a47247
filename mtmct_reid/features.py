"""Test features from a trained model: batched, flip-averaged, part-normalised embeddings.

The st-ReID test feature of an image is the sum of the part features of the image and of its horizontal
mirror; each part is then L2-normalised and scaled by 1/√P, so the concatenation has unit norm and the dot
product of two features is their cosine similarity, the visual score st-ReID ranks by.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mtmct_reid.data.image_size import as_image_size
from mtmct_reid.data.images import ImageDataset, ImageSource, build_transforms
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSet, FeatureSide

log = logging.getLogger(__name__)

PRECISIONS = ("32", "bf16")
ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)
_EPS = 1e-12


def normalize_parts(feats: ArrayOrTensor) -> ArrayOrTensor:
    """L2-normalise each part, scale it by 1/√P and concatenate: [N, P, Dp] → [N, P·Dp].

    Works on numpy arrays and torch tensors alike (the result has the input's type). A vector of
    non-zero parts comes out with unit norm, and the dot product of two outputs is the mean of their
    per-part cosine similarities.

    Args:
        feats: raw part features [N, P, Dp] (e.g. ``ReIDModel.extract`` output).

    Example:
        >>> out = normalize_parts(np.ones((2, 6, 4), dtype=np.float32))
        >>> out.shape, round(float(np.linalg.norm(out[0])), 6)
        ((2, 24), 1.0)
    """
    if feats.ndim != 3:
        raise ReIDError(f"part features have shape {tuple(feats.shape)}, expected [N, P, Dp]")
    num_parts = feats.shape[1]
    scale = 1.0 / math.sqrt(num_parts)
    if isinstance(feats, torch.Tensor):
        norms = torch.linalg.vector_norm(feats, dim=2, keepdim=True).clamp_min(_EPS)
        return (feats * (scale / norms)).flatten(1)
    norms = np.maximum(np.linalg.norm(feats, axis=2, keepdims=True), _EPS)
    return (feats * (scale / norms)).reshape(feats.shape[0], -1).astype(feats.dtype, copy=False)


def check_loader_options(batch_size: int, num_workers: int) -> None:
    """Refuse a batch size below 1 or a negative number of loader workers, naming the option.

    Example:
        >>> check_loader_options(0, 2)
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: batch_size must be positive, got 0
    """
    if batch_size < 1:
        raise ReIDError(f"batch_size must be positive, got {batch_size}")
    if num_workers < 0:
        raise ReIDError(f"num_workers must be >= 0, got {num_workers}")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is checked to exist.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    text = str(device)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(text)
    except (RuntimeError, ValueError):
        raise ReIDError(f"device '{text}': expected auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ReIDError(f"device '{text}': CUDA is not available here; use --device cpu or auto")
    if resolved.type not in ("cpu", "cuda"):
        raise ReIDError(f"device '{text}': expected auto, cpu, cuda or cuda:N")
    return resolved


def reid_features(
    extract: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, *, flip: bool = True
) -> torch.Tensor:
    """The st-ReID test feature of a batch: part features [B, P, Dp] of each image (plus those of its
    horizontal mirror), each part L2-normalised and scaled by 1/√P, as float32 [B, P·Dp].

    Args:
        extract: the model's part-feature function (``ReIDModel.extract``).
        images: a transformed batch [B, 3, H, W].
        flip: add the mirror's part features.

    Example:
        >>> feats = reid_features(model.extract, batch)  # doctest: +SKIP
    """
    if not flip:
        return normalize_parts(extract(images).float())
    # shape[0], not len(): an ONNX trace keeps the batch size symbolic only this way.
    n = images.shape[0]
    parts = extract(torch.cat([images, images.flip(3)])).float()
    return normalize_parts(parts[:n] + parts[n:])


def feature_metadata(
    model: torch.nn.Module, image_size: Sequence[int], flip: bool
) -> dict[str, Any]:
    """The metadata a features file carries: model, backbone, ``"HxW"`` input, parts, flip."""
    return {
        "model": getattr(model, "model_name", type(model).__name__),
        "backbone": getattr(model, "backbone_name", ""),
        "image_size": f"{image_size[0]}x{image_size[1]}",
        "num_parts": int(getattr(model, "num_parts", 1)),
        "flip": bool(flip),
    }


class FeatureExtractor:
    """Turn images into normalised test features with a re-id model.

    Each image and its horizontal mirror go through ``model.extract`` in one batch; their part
    features are summed, each part L2-normalised and scaled by 1/√P (:func:`normalize_parts`).

    Args:
        model: a :class:`~mtmct_reid.models.ReIDModel` (anything with ``extract(x) -> [B, P, Dp]``).
            It is moved to ``device``; it runs in eval mode and its train/eval mode is restored after.
        image_size: ``(height, width)`` or ``"HxW"`` the images are resized to.
        batch_size: images per forward pass (the flipped copies double it).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        flip: add the features of the horizontal mirror (the st-ReID test feature).
        channels_last: run convolutions in NHWC layout (faster on recent CPUs and GPUs).
        precision: ``"32"`` or ``"bf16"`` (bfloat16 autocast; features are still returned as float32).
        num_workers: DataLoader worker processes decoding images.

    :meth:`from_onnx` makes an extractor that runs an exported model with ONNX Runtime instead (no
    PyTorch model needed); it gives the same features within 1e-4.

    Example:
        >>> extractor = FeatureExtractor(model, (384, 192), device="auto")  # doctest: +SKIP
        >>> feats = extractor(["a.jpg", "b.jpg"])                           # doctest: +SKIP
        >>> feats.shape, float(feats[0] @ feats[1])                         # doctest: +SKIP
        ((2, 12288), 0.83)
    """

    onnx: Any = None  # the ONNX Runtime model of an extractor made by from_onnx

    def __init__(
        self,
        model: torch.nn.Module,
        image_size: tuple[int, int] | str,
        *,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        flip: bool = True,
        channels_last: bool = True,
        precision: str = "32",
        num_workers: int = 0,
    ) -> None:
        if not callable(getattr(model, "extract", None)):
            raise TypeError(f"model {type(model).__name__} has no extract(x) method")
        if str(precision) not in PRECISIONS:
            raise ReIDError(f"precision '{precision}': expected one of {', '.join(PRECISIONS)}")
        check_loader_options(batch_size, num_workers)
        self.image_size = as_image_size(image_size)
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.batch_size = int(batch_size)
        self.flip = flip
        self.precision = str(precision)
        self.num_workers = int(num_workers)
        self.transform = build_transforms(self.image_size, train=False)

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike,
        *,
        batch_size: int = 64,
        num_workers: int = 0,
        threads: int | None = None,
        image_size: tuple[int, int] | str | None = None,
    ) -> FeatureExtractor:
        """An extractor running a model exported by ``mtmct-reid export`` with ONNX Runtime (CPU).

        The input size and preprocessing come from the file's metadata; the flip, the part
        normalisation and the ImageNet normalisation are inside the exported graph.

        Args:
            path: the ``.onnx`` file.
            batch_size: images per ONNX Runtime call.
            num_workers: DataLoader worker processes decoding images.
            threads: ONNX Runtime intra-op threads (None: every usable core).
            image_size: refuse a file exported for another size.

        Example:
            >>> extractor = FeatureExtractor.from_onnx("model.onnx")  # doctest: +SKIP
            >>> extractor(["a.jpg", "b.jpg"]).shape                   # doctest: +SKIP
            (2, 12288)
        """
        from mtmct_reid.export import OnnxReIDModel

        check_loader_options(batch_size, num_workers)
        onnx = OnnxReIDModel(path, threads=threads, image_size=image_size)
        self = cls.__new__(cls)
        self.onnx = onnx
        self.model = None
        self.image_size = onnx.image_size
        self.device = torch.device("cpu")
        self.channels_last = False
        self.batch_size = int(batch_size)
        self.flip = onnx.metadata.get("flip") == "true"
        self.precision = "32"
        self.num_workers = int(num_workers)
        self.transform = onnx.transform()
        return self

    @property
    def feature_dim(self) -> int:
        """Length of one output feature (``num_parts · part_dim`` for a ReIDModel)."""
        if self.onnx is not None:
            return int(self.onnx.feature_dim)
        dim = getattr(self.model, "feature_dim", None)
        if dim is None:
            probe = torch.zeros(1, 3, *self.image_size, device=self.device)
            with torch.inference_mode():
                dim = int(self.model.extract(probe).shape[1:].numel())
        return int(dim)

    def __call__(self, images: Sequence[ImageSource], *, progress: bool = False) -> np.ndarray:
        """Features [N, D] float32 of image paths or PIL images, in input order."""
        return self._run(ImageDataset(list(images), self.transform), progress, "features")

    def extract_records(self, records: Records, progress: bool = True) -> np.ndarray:
        """Features [N, D] float32 of every row of ``records``, in row order."""
        return self._run(ImageDataset(records, self.transform), progress, "extract")

    def metadata(self) -> dict[str, Any]:
        """What a features file records of how its features were made."""
        if self.onnx is not None:
            meta = self.onnx.metadata
            return {
                "model": meta.get("model", ""),
                "backbone": meta.get("backbone", ""),
                "image_size": meta["image_size"],
                "num_parts": int(meta.get("num_parts", 1)),
                "flip": self.flip,
                "precision": self.precision,
                "engine": "onnxruntime",
                "onnx": str(self.onnx.path),
            }
        return {
            **feature_metadata(self.model, self.image_size, self.flip),
            "precision": self.precision,
        }

    def embed_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised features [B, D] (float32, on the device) of an already transformed batch."""
        if self.onnx is not None:
            return torch.from_numpy(self.onnx(batch.numpy()))
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            return reid_features(self.model.extract, batch, flip=self.flip)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _run(self, dataset: ImageDataset, progress: bool, desc: str) -> np.ndarray:
        n = len(dataset)
        if n == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        loader = DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        out: np.ndarray | None = None
        model = self.model if self.model is not None else torch.nn.Module()
        was_training = model.training
        model.eval()
        start = time.perf_counter()
        done = 0
        try:
            with tqdm(total=n, unit="img", desc=desc, disable=not progress, leave=False) as bar:
                for images, _labels, rows in loader:
                    _check_rows(dataset, rows, done)
                    feats = self.embed_batch(images).cpu().numpy()
                    if out is None:
                        out = np.empty((n, feats.shape[1]), dtype=np.float32)
                    out[done : done + len(feats)] = feats
                    done += len(feats)
                    bar.update(len(feats))
        finally:
            model.train(was_training)
        elapsed = time.perf_counter() - start
        log.info("extracted %d features in %.1fs (%.1f img/s)", n, elapsed, n / max(elapsed, 1e-9))
        return out


def _check_rows(dataset: ImageDataset, rows: torch.Tensor, start: int) -> None:
    # The dataset stands in the next readable image for an unreadable one; extraction needs every row.
    expected = np.arange(start, start + len(rows))
    got = rows.numpy()
    if not np.array_equal(got, expected):
        first_bad = int(expected[~np.isin(expected, got)][0])
        dataset.load(first_bad)  # raises with PIL's reason, naming the file
        raise ReIDError(
            f"{dataset.sources[first_bad]}: cannot read image; fix or remove it and extract again"
        )


def extract_featureset(
    model: torch.nn.Module | FeatureExtractor,
    records: Records,
    image_size: tuple[int, int] | str | None,
    *,
    progress: bool = True,
    metadata: Mapping[str, Any] | None = None,
    **extractor_options: Any,
) -> FeatureSet:
    """Features of the query and gallery splits of ``records``, with their ids, cameras and times.

    Args:
        model: a :class:`~mtmct_reid.models.ReIDModel`, or a ready :class:`FeatureExtractor`
            (e.g. :meth:`FeatureExtractor.from_onnx`; ``image_size`` is then ignored).
        records: records holding ``query`` and ``gallery`` rows (``train`` rows are ignored).
        image_size: ``(height, width)`` or ``"HxW"``.
        progress: show a progress bar.
        metadata: extra 0-d entries for the features file (e.g. the checkpoint path).
        **extractor_options: passed to :class:`FeatureExtractor` (batch_size, device, flip,
            channels_last, precision, num_workers).

    Example:
        >>> fs = extract_featureset(model, read_dataset("Market-1501"), (384, 192))  # doctest: +SKIP
        >>> fs.save("features.npz")                                                   # doctest: +SKIP
    """
    query, gallery = records.split("query"), records.split("gallery")
    for name, side in (("query", query), ("gallery", gallery)):
        if len(side) == 0:
            raise ReIDError(
                f"the dataset has no {name} images; extraction needs query and gallery splits"
            )
    if isinstance(model, FeatureExtractor):
        if extractor_options:
            raise TypeError("extractor options go to the FeatureExtractor, not extract_featureset")
        extractor = model
    else:
        extractor = FeatureExtractor(model, image_size, **extractor_options)
    # One pass over both splits: one progress bar, and batches never straddle a half-empty tail.
    feats = extractor.extract_records(Records.concat([query, gallery]), progress=progress)
    meta = {**extractor.metadata(), **(metadata or {})}
    return split_featureset(feats, query, gallery, meta)


def split_featureset(
    features: np.ndarray, query: Records, gallery: Records, metadata: Mapping[str, Any]
) -> FeatureSet:
    """A :class:`FeatureSet` from the features of ``query`` rows followed by ``gallery`` rows.

    Example:
        >>> fs = split_featureset(feats, records.split("query"), records.split("gallery"), {})  # doctest: +SKIP
    """
    if len(features) != len(query) + len(gallery):
        raise ReIDError(
            f"{len(features)} features for {len(query)} query + {len(gallery)} gallery images"
        )
    sides = [
        FeatureSide(
            features=part,
            pids=side.pids,
            cams=side.cams,
            times=side.times,
            paths=side.paths,
        )
        for part, side in ((features[: len(query)], query), (features[len(query) :], gallery))
    ]
    return FeatureSet(query=sides[0], gallery=sides[1], metadata=dict(metadata))
