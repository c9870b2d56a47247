"""Images for the network: a torch ``Dataset`` over records, the train/test transforms and an
identity-balanced sampler. (``HxW`` sizes are parsed by :mod:`mtmct_reid.data.image_size`, which does
not import torch.)

The train and test pipelines are built separately on purpose: one shared list of transforms is how a
pipeline loses the horizontal flip in training or applies random erasing at test time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import InterpolationMode, v2

from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError, first_line

log = logging.getLogger(__name__)

#: ImageNet channel statistics, which the pretrained backbones expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageSource = str | os.PathLike | Image.Image

# PIL signals an unreadable file with any of these (truncated JPEG, not an image, too large, missing).
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def build_transforms(
    image_size: tuple[int, int],
    train: bool,
    *,
    random_erasing: float = 0.5,
    pad: int = 10,
    flip: bool = True,
) -> v2.Compose:
    """The training or test pipeline: PIL image → normalised float tensor [3, H, W].

    Args:
        image_size: ``(height, width)`` the network sees.
        train: True for the augmented training pipeline (resize, random horizontal flip, pad and
            random crop, normalise, random erasing); False for the deterministic test pipeline
            (resize and normalise only).
        random_erasing: probability of random erasing (training only; 0 disables it).
        pad: zero padding before the random crop back to ``image_size`` (training only; 0 disables).
        flip: random horizontal flip with probability 0.5 (training only).

    Example:
        >>> tf = build_transforms((256, 128), train=False)
        >>> tf(Image.new("RGB", (64, 128))).shape
        torch.Size([3, 256, 128])
    """
    height, width = int(image_size[0]), int(image_size[1])
    if height < 1 or width < 1:
        raise ReIDError(f"image_size must be positive (height, width), got {tuple(image_size)}")
    if not 0.0 <= random_erasing <= 1.0:
        raise ReIDError(f"random_erasing must be a probability in [0, 1], got {random_erasing}")
    if pad < 0:
        raise ReIDError(f"pad must be >= 0, got {pad}")
    steps: list[Any] = [v2.Resize((height, width), interpolation=InterpolationMode.BICUBIC)]
    if train:
        if flip:
            steps.append(v2.RandomHorizontalFlip(p=0.5))
        if pad > 0:
            steps += [v2.Pad(pad), v2.RandomCrop((height, width))]
    steps += [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]
    if train and random_erasing > 0:
        steps.append(v2.RandomErasing(p=random_erasing, value=0))
    return v2.Compose(steps)


class ImageDataset(Dataset):
    """Images of a set of records (or a plain list of paths / PIL images) as network inputs.

    Items are ``(image_tensor, label, index)``. ``index`` is the row in ``records`` the image comes
    from: when an image cannot be read and ``strict`` is False, the item of the next readable row is
    returned in its place (image, label and index together, so labels stay right and training goes
    on), and a caller that needs every row, such as feature extraction, sees the substitution from the
    index.

    Args:
        records: a :class:`Records` or a sequence of image paths / PIL images.
        transform: applied to each RGB PIL image (see :func:`build_transforms`).
        labels: one integer label per row (e.g. training class indices); defaults to the records'
            person ids (0 for a plain list).
        strict: raise :class:`ReIDError` naming the file on the first unreadable image instead of
            substituting it.

    Attributes:
        bad_paths: files found unreadable so far in this process (DataLoader workers keep their own).

    Example:
        >>> ds = ImageDataset([Image.new("RGB", (32, 64))], build_transforms((64, 32), train=False))
        >>> image, label, index = ds[0]
        >>> tuple(image.shape), label, index
        ((3, 64, 32), 0, 0)
    """

    def __init__(
        self,
        records: Records | Sequence[ImageSource],
        transform: Callable[[Image.Image], torch.Tensor],
        labels: Sequence[int] | np.ndarray | None = None,
        strict: bool = False,
    ) -> None:
        if isinstance(records, Records):
            self.sources: Sequence[ImageSource] = records.paths
            default_labels = records.pids
        else:
            self.sources = list(records)
            default_labels = np.zeros(len(self.sources), dtype=np.int64)
        self.labels = np.asarray(default_labels if labels is None else labels, dtype=np.int64)
        if self.labels.shape != (len(self.sources),):
            raise ReIDError(
                f"labels has shape {self.labels.shape}, expected one label per image ({len(self.sources)})"
            )
        self.transform = transform
        self.strict = strict
        self.bad_paths: list[str] = []
        self._bad_rows: set[int] = set()

    def __len__(self) -> int:
        return len(self.sources)

    def load(self, index: int) -> Image.Image:
        """The RGB image of row ``index``; unreadable files raise :class:`ReIDError` naming them."""
        source = self.sources[index]
        if isinstance(source, Image.Image):
            return source.convert("RGB")
        try:
            with Image.open(source) as image:
                return image.convert("RGB")
        except _IMAGE_ERRORS as exc:
            raise ReIDError(f"{source}: cannot read image ({first_line(exc)})") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        n = len(self.sources)
        for attempt in range(n):
            row = (int(index) + attempt) % n
            if row in self._bad_rows:
                continue
            try:
                image = self.load(row)
            except ReIDError:
                if self.strict:
                    raise
                self._bad_rows.add(row)
                self.bad_paths.append(str(self.sources[row]))
                log.warning(
                    "skipping unreadable image %s (%d unreadable so far)",
                    self.sources[row],
                    len(self.bad_paths),
                )
                continue
            return self.transform(image), int(self.labels[row]), row
        raise ReIDError(f"none of the {n} images could be read (first: {self.sources[0]})")


class IdentitySampler(Sampler[int]):
    """Identity-balanced sampling: each batch holds ``batch_size / num_instances`` identities with
    ``num_instances`` images each (identities with fewer images are sampled with replacement).

    Every yielded run of ``batch_size`` consecutive indices is one such batch, so use it with
    ``DataLoader(batch_size=batch_size, sampler=sampler)``. ``len()`` is the number of indices an
    epoch can give at most (all groups of ``num_instances`` used); an epoch stops early when fewer
    than ``batch_size / num_instances`` identities have groups left, as in torchreid.

    Args:
        pids: identity of each row (any integers).
        batch_size: images per batch; a multiple of ``num_instances``.
        num_instances: images per identity in a batch.
        seed: seed of the shuffling; each new iteration (epoch) draws a different order.

    Example:
        >>> sampler = IdentitySampler(np.repeat(np.arange(8), 4), batch_size=8, num_instances=4)
        >>> batch = list(sampler)[:8]
        >>> len(set(np.repeat(np.arange(8), 4)[batch]))
        2
    """

    def __init__(
        self,
        pids: Sequence[int] | np.ndarray,
        batch_size: int,
        num_instances: int,
        seed: int | None = None,
    ) -> None:
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ReIDError(
                f"batch_size ({batch_size}) must be a positive multiple of num_instances "
                f"({num_instances})"
            )
        self.pids = np.asarray(pids, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.num_instances = int(num_instances)
        self.ids_per_batch = self.batch_size // self.num_instances
        ids, inverse = np.unique(self.pids, return_inverse=True)
        if len(ids) < self.ids_per_batch:
            raise ReIDError(
                f"identity sampling needs at least {self.ids_per_batch} identities "
                f"(batch_size {batch_size} / num_instances {num_instances}), the data has {len(ids)}"
            )
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))[:-1]
        self.rows_by_id = np.split(order, bounds)
        groups = sum(
            max(len(rows), self.num_instances) // self.num_instances for rows in self.rows_by_id
        )
        self._length = (groups // self.ids_per_batch) * self.batch_size
        self._seed = seed
        self._epoch = 0

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[int]:
        seed = None if self._seed is None else self._seed + self._epoch
        self._epoch += 1
        rng = np.random.default_rng(seed)
        # Each identity's rows shuffled and cut into groups of num_instances.
        groups: list[list[np.ndarray]] = []
        for rows in self.rows_by_id:
            if len(rows) < self.num_instances:
                rows = rng.choice(rows, size=self.num_instances, replace=True)
            else:
                rows = rng.permutation(rows)
            count = len(rows) // self.num_instances
            groups.append(list(rows[: count * self.num_instances].reshape(count, -1)))
        available = [i for i, g in enumerate(groups) if g]
        emitted = 0
        while len(available) >= self.ids_per_batch and emitted < self._length:
            chosen = rng.choice(len(available), size=self.ids_per_batch, replace=False)
            for slot in chosen:
                yield from (int(r) for r in groups[available[slot]].pop())
            emitted += self.batch_size
            available = [i for i in available if groups[i]]
