"""ONNX export of the test-time model, with its preprocessing in the file and a parity check.

The exported graph is the whole st-ReID test feature, not just the network: it takes RGB images scaled
to [0, 1] (``float32 [N, 3, H, W]``, any N), subtracts the ImageNet mean and divides by the standard
deviation itself, runs the image and its horizontal mirror, sums their part features, L2-normalises
each part and scales it by 1/√P. Its output ``features`` ``[N, P·Dp]`` is what
:class:`~mtmct_reid.features.FeatureExtractor` returns for the same images. Because normalisation is
inside the graph, a caller only resizes and divides by 255; the file's metadata (``metadata_props``)
says so (``mtmct_reid.normalization = in-model``), so it is never applied twice.

Metadata keys (all strings, prefix ``mtmct_reid.``): ``format`` (this layout's version), ``model``,
``backbone``, ``image_size`` (``HxW``), ``channel_order`` (``RGB``), ``layout`` (``NCHW``),
``input_range`` (``[0, 1]``), ``resize`` (``bicubic``), ``mean``, ``std`` (comma separated),
``normalization``, ``flip``, ``num_parts``, ``part_dim``, ``feature_dim``, ``input``, ``output``.

``onnx`` and ``onnxruntime`` come with the optional extra ``export``; they are imported inside the
functions that need them.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode, v2

from mtmct_reid._io import atomic_path
from mtmct_reid._runtime import usable_cores
from mtmct_reid.data.image_size import as_image_size, parse_image_size
from mtmct_reid.data.images import IMAGENET_MEAN, IMAGENET_STD
from mtmct_reid.errors import ReIDError, first_line
from mtmct_reid.features import feature_metadata, reid_features

log = logging.getLogger(__name__)

#: Prefix of every metadata key this project writes into an ONNX file.
PREFIX = "mtmct_reid."
#: Version of the metadata layout; a file with another version is refused.
FORMAT = "1"
INPUT_NAME = "images"
OUTPUT_NAME = "features"
OPSET = 17
#: Largest allowed difference between ONNX Runtime and PyTorch features (fp32).
PARITY_TOLERANCE = 1e-4
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_EXTRA = "pip install 'mtmct-reid[export]'"


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or a :class:`ReIDError` naming the extra that installs them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ReIDError(f"ONNX export needs {exc.name or 'onnx'}: {_EXTRA}") from None
    return onnx, onnxruntime


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a :class:`ReIDError` naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise ReIDError(f"running an ONNX model needs onnxruntime: {_EXTRA}") from None
    return onnxruntime


def rgb_unit_transform(image_size: tuple[int, int]) -> v2.Compose:
    """What an exported model expects of a picture: resized (bicubic) to ``image_size``, RGB, scaled
    to [0, 1], not normalised (the model does that).

    Example:
        >>> rgb_unit_transform((64, 32))(Image.new("RGB", (20, 50), (255, 0, 0)))[:, 0, 0].tolist()
        [1.0, 0.0, 0.0]
    """
    height, width = as_image_size(image_size)
    return v2.Compose(
        [
            v2.Resize((height, width), interpolation=InterpolationMode.BICUBIC),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


class _StaticAdaptiveAvgPool(nn.Module):
    """``AdaptiveAvgPool2d`` for one known input size, written as slices and means.

    The TorchScript ONNX exporter only exports adaptive pooling whose output size divides the input
    size; PCB's 6 stripes over a 4-row map (64×32 inputs) do not. The bins are PyTorch's own
    (start ⌊i·H/P⌋, end ⌈(i+1)·H/P⌉), so the result equals the module it replaces.
    """

    def __init__(self, output_size: tuple[int, int], input_size: tuple[int, int]) -> None:
        super().__init__()
        (rows, cols), (height, width) = output_size, input_size
        self.output_size = (rows, cols)
        self.bins = [
            (
                (i * height) // rows,
                -(-((i + 1) * height) // rows),
                (j * width) // cols,
                -(-((j + 1) * width) // cols),
            )
            for i in range(rows)
            for j in range(cols)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cells = [x[:, :, a:b, c:d].mean(dim=(2, 3)) for a, b, c, d in self.bins]
        return torch.stack(cells, dim=2).reshape(x.shape[0], x.shape[1], *self.output_size)


class TestTimeModel(nn.Module):
    """The st-ReID test feature as one module: RGB in [0, 1] → normalised features [N, P·Dp].

    Args:
        model: a :class:`~mtmct_reid.models.ReIDModel` (copied; the original is not changed).
        image_size: ``(height, width)`` of the inputs; fixes the adaptive pooling bins.
        flip: add the mirror's part features (the st-ReID test feature).

    Example:
        >>> from mtmct_reid.models import build_model
        >>> net = build_model("pcb", num_classes=3, backbone="resnet18", weights="none").eval()
        >>> TestTimeModel(net, (64, 32))(torch.rand(2, 3, 64, 32)).shape
        torch.Size([2, 3072])
    """

    __test__ = False  # not a pytest class, despite its name

    def __init__(self, model: nn.Module, image_size: tuple[int, int], flip: bool = True) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).float().eval()
        self.flip = bool(flip)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self._make_pooling_static(as_image_size(image_size))

    def _make_pooling_static(self, image_size: tuple[int, int]) -> None:
        sizes: dict[str, tuple[int, int]] = {}
        pools = {
            name: module
            for name, module in self.model.named_modules()
            if isinstance(module, nn.AdaptiveAvgPool2d)
        }

        def recorder(name: str) -> Any:
            def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
                sizes.setdefault(name, tuple(inputs[0].shape[-2:]))

            return record

        hooks = [module.register_forward_hook(recorder(name)) for name, module in pools.items()]
        try:
            with torch.inference_mode():
                self.model.extract(torch.zeros(1, 3, *image_size))
        finally:
            for hook in hooks:
                hook.remove()
        for name, module in pools.items():
            if name not in sizes:
                continue
            out = module.output_size
            out = (out, out) if isinstance(out, int) else tuple(out)
            in_size = sizes[name]
            out = tuple(in_size[k] if out[k] is None else int(out[k]) for k in range(2))
            parent_name, _, child = name.rpartition(".")
            parent = self.model.get_submodule(parent_name) if parent_name else self.model
            setattr(parent, child, _StaticAdaptiveAvgPool(out, in_size))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return reid_features(self.model.extract, (images - self.mean) / self.std, flip=self.flip)


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and how well ONNX Runtime agreed with PyTorch.

    Attributes:
        path: the ONNX file.
        metadata: the ``mtmct_reid.*`` metadata written into it (without the prefix).
        checked_images: images the parity check ran on (0 when it did not run).
        max_abs_diff: largest absolute difference between ONNX Runtime and PyTorch features.
    """

    path: Path
    metadata: Mapping[str, str]
    checked_images: int
    max_abs_diff: float | None


def onnx_metadata(model: nn.Module, image_size: tuple[int, int], flip: bool) -> dict[str, str]:
    """The metadata an exported file carries (keys without the ``mtmct_reid.`` prefix).

    Example:
        >>> from mtmct_reid.models import build_model
        >>> net = build_model("resnet50", num_classes=3, backbone="resnet18", weights="none")
        >>> meta = onnx_metadata(net, (64, 32), True)
        >>> meta["image_size"], meta["feature_dim"], meta["normalization"]
        ('64x32', '512', 'in-model')
    """
    base = feature_metadata(model, image_size, flip)
    num_parts = int(base["num_parts"])
    feature_dim = int(getattr(model, "feature_dim", 0))
    return {
        "format": FORMAT,
        "model": str(base["model"]),
        "backbone": str(base["backbone"]),
        "image_size": str(base["image_size"]),
        "channel_order": "RGB",
        "layout": "NCHW",
        "input_range": "[0, 1]",
        "resize": "bicubic",
        "mean": ",".join(f"{v:g}" for v in IMAGENET_MEAN),
        "std": ",".join(f"{v:g}" for v in IMAGENET_STD),
        "normalization": "in-model",
        "flip": "true" if flip else "false",
        "num_parts": str(num_parts),
        "part_dim": str(feature_dim // max(num_parts, 1)),
        "feature_dim": str(feature_dim),
        "input": f"{INPUT_NAME}: float32 [N, 3, H, W], RGB scaled to [0, 1], not normalised",
        "output": (
            f"{OUTPUT_NAME}: float32 [N, num_parts*part_dim], parts concatenated, each part "
            "L2-normalised and scaled by 1/sqrt(num_parts) (unit norm; dot product = cosine)"
        ),
    }


def export_onnx(
    model: nn.Module,
    out: str | os.PathLike,
    image_size: tuple[int, int] | str,
    *,
    flip: bool = True,
    check_images: Sequence[str | os.PathLike | Image.Image] | None = None,
    tolerance: float = PARITY_TOLERANCE,
    extra_metadata: Mapping[str, str] | None = None,
    opset: int = OPSET,
) -> ExportReport:
    """Export the test-time model to ONNX with dynamic batch and check it against PyTorch.

    The file is written only if the check passes (a temporary file is renamed into place).

    Args:
        model: a :class:`~mtmct_reid.models.ReIDModel`.
        out: the ``.onnx`` file to write.
        image_size: ``(height, width)`` or ``"HxW"`` of the inputs.
        flip: include the mirror's features (the st-ReID test feature).
        check_images: pictures (paths or PIL images) the parity check runs PyTorch and ONNX Runtime
            on; None or empty skips the check.
        tolerance: largest allowed absolute difference of any feature value.
        extra_metadata: more ``mtmct_reid.*`` entries (e.g. the checkpoint's name).
        opset: ONNX opset.

    Raises:
        ReIDError: the extra is missing, the export fails, or the features differ by more than
            ``tolerance``.

    Example:
        >>> report = export_onnx(model, "model.onnx", (384, 192), check_images=["a.jpg"])  # doctest: +SKIP
        >>> report.max_abs_diff < 1e-4                                                    # doctest: +SKIP
        True
    """
    onnx, _ = require_onnx()
    size = as_image_size(image_size)
    out = Path(out)
    if out.is_dir():
        raise ReIDError(f"--out {out}: is a folder, expected the path of a .onnx file")
    wrapper = TestTimeModel(model, size, flip=flip).eval()
    meta = onnx_metadata(model, size, flip)
    meta.update({str(k): str(v) for k, v in (extra_metadata or {}).items()})
    dummy = torch.rand(2, 3, *size)
    with atomic_path(out, suffix=".onnx") as tmp:
        try:
            with warnings.catch_warnings():
                # Shapes other than the batch are fixed by design; the tracer says so at length.
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapper,
                    (dummy,),
                    str(tmp),
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                    opset_version=opset,
                    do_constant_folding=True,
                )
        except Exception as exc:  # the exporter raises many types for an unsupported operator
            raise ReIDError(f"ONNX export of {meta['model']} failed ({first_line(exc)})") from None
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = PREFIX + key, value
        onnx.save(proto, str(tmp))
        checked, diff = 0, None
        if check_images:
            diff = parity(model, tmp, size, check_images, flip=flip)
            checked = len(check_images)
            if not diff <= tolerance:
                raise ReIDError(
                    f"ONNX Runtime and PyTorch features differ by {diff:.3g} on {checked} image(s), "
                    f"more than {tolerance:g}; {out} not written"
                )
            log.info("parity on %d image(s): max |onnx - torch| = %.3g", checked, diff)
    return ExportReport(path=out, metadata=meta, checked_images=checked, max_abs_diff=diff)


def parity(
    model: nn.Module,
    onnx_path: str | os.PathLike,
    image_size: tuple[int, int],
    images: Sequence[str | os.PathLike | Image.Image],
    *,
    flip: bool = True,
) -> float:
    """Largest absolute difference between the features PyTorch (:class:`FeatureExtractor` on the
    model) and ONNX Runtime (:class:`FeatureExtractor` on the file) give for the same pictures.

    Example:
        >>> parity(model, "model.onnx", (384, 192), ["a.jpg", "b.jpg"])  # doctest: +SKIP
        3.7e-08
    """
    from mtmct_reid.features import FeatureExtractor

    torch_feats = FeatureExtractor(
        model, image_size, device="cpu", flip=flip, channels_last=False, batch_size=8
    )(images)
    onnx_feats = FeatureExtractor.from_onnx(onnx_path, batch_size=8)(images)
    if torch_feats.shape != onnx_feats.shape:
        raise ReIDError(
            f"{onnx_path}: ONNX features have shape {onnx_feats.shape}, PyTorch's {torch_feats.shape}"
        )
    return float(np.max(np.abs(torch_feats - onnx_feats))) if len(torch_feats) else 0.0


def list_images(paths: Sequence[str | os.PathLike], limit: int = 16) -> list[Path]:
    """Image files named by ``paths`` (files, or folders searched recursively), sorted, at most
    ``limit`` of them.

    Example:
        >>> list_images(["Market-1501/query"], limit=4)  # doctest: +SKIP
        [PosixPath('Market-1501/query/0001_c1s1_001051_00.jpg'), ...]
    """
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith(".")
            )
        elif path.is_file():
            found.append(path)
        else:
            raise ReIDError(f"--check-images {path}: no such file or folder")
    if not found:
        raise ReIDError(f"--check-images {', '.join(map(str, paths))}: no image files found")
    return found[:limit]


def generated_images(count: int = 8, size: tuple[int, int] = (128, 64)) -> list[Image.Image]:
    """A few smooth colour pictures (deterministic) for a parity check when no images are given.

    Example:
        >>> [im.size for im in generated_images(2)]
        [(64, 128), (64, 128)]
    """
    rng = np.random.default_rng(0)
    height, width = size
    pictures = []
    for _ in range(count):
        coarse = rng.integers(0, 256, (8, 4, 3), dtype=np.uint8)
        pictures.append(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
    return pictures


class OnnxReIDModel:
    """An exported model run by ONNX Runtime: RGB batches in [0, 1] → normalised features.

    The file must carry this project's metadata (see the module docstring); its input size, feature
    size and preprocessing are read from it.

    Args:
        path: an ``.onnx`` file written by :func:`export_onnx` (``mtmct-reid export``).
        threads: intra-op threads of ONNX Runtime (None: every usable core).
        image_size: the input size the caller expects; a file made for another size is refused.

    Example:
        >>> onnx_model = OnnxReIDModel("model.onnx")                   # doctest: +SKIP
        >>> onnx_model(np.zeros((2, 3, 384, 192), np.float32)).shape  # doctest: +SKIP
        (2, 12288)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        threads: int | None = None,
        image_size: tuple[int, int] | str | None = None,
    ) -> None:
        ort = require_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise ReIDError(f"{self.path}: ONNX model not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or usable_cores())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a file that is not a model
            raise ReIDError(
                f"{self.path}: not an ONNX model ONNX Runtime can load ({first_line(exc)})"
            ) from None
        raw = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {k[len(PREFIX) :]: v for k, v in raw.items() if k.startswith(PREFIX)}
        self._check_metadata()
        self.image_size = parse_image_size(
            self.metadata["image_size"], f"{self.path}: metadata image_size"
        )
        if image_size is not None and as_image_size(image_size) != self.image_size:
            want = as_image_size(image_size)
            raise ReIDError(
                f"{self.path}: exported for {self.metadata['image_size']} inputs, "
                f"not {want[0]}x{want[1]}; export it again at that size"
            )
        self.feature_dim = int(self.metadata["feature_dim"])
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != [INPUT_NAME] or list(inputs[0].shape[1:]) != [
            3,
            *self.image_size,
        ]:
            shape = inputs[0].shape if inputs else None
            raise ReIDError(
                f"{self.path}: input is {[i.name for i in inputs]} {shape}, its metadata says "
                f"'{INPUT_NAME}' [N, 3, {self.image_size[0]}, {self.image_size[1]}]"
            )

    def _check_metadata(self) -> None:
        if not self.metadata:
            raise ReIDError(
                f"{self.path}: ONNX model without mtmct_reid metadata (input size, preprocessing); "
                "export it with 'mtmct-reid export'"
            )
        if self.metadata.get("format") != FORMAT:
            raise ReIDError(
                f"{self.path}: mtmct_reid metadata format {self.metadata.get('format')!r}, "
                f"this version reads {FORMAT!r}"
            )
        for key in ("image_size", "feature_dim", "normalization", "channel_order", "input_range"):
            if key not in self.metadata:
                raise ReIDError(f"{self.path}: metadata lacks 'mtmct_reid.{key}'")
        expected = {"normalization": "in-model", "channel_order": "RGB", "input_range": "[0, 1]"}
        for key, value in expected.items():
            if self.metadata[key] != value:
                raise ReIDError(
                    f"{self.path}: metadata '{PREFIX}{key}' is {self.metadata[key]!r}, this reader "
                    f"supports {value!r}"
                )
        try:
            if int(self.metadata["feature_dim"]) < 1:
                raise ValueError
        except ValueError:
            raise ReIDError(
                f"{self.path}: metadata 'mtmct_reid.feature_dim' is "
                f"{self.metadata['feature_dim']!r}, expected a positive integer"
            ) from None

    def transform(self) -> v2.Compose:
        """The preprocessing this file expects (see :func:`rgb_unit_transform`)."""
        return rgb_unit_transform(self.image_size)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Features [N, D] float32 of a batch [N, 3, H, W] of RGB values in [0, 1]."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
