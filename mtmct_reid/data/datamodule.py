"""The Lightning ``DataModule``: train split with class labels, query + gallery for validation and test.

Training sees only the ``train`` split's labelled identities (pid > 0), remapped to class indices
0..K-1. Validation and test read the query images followed by the gallery images in one dataset (the
order the evaluation expects), without augmentation; each item carries its row, so features extracted on
several ranks can be put back in order and padded duplicates dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from mtmct_reid._runtime import usable_cores
from mtmct_reid.data.image_size import as_image_size
from mtmct_reid.data.images import (
    IdentitySampler,
    ImageDataset,
    build_transforms,
)
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.validation import as_bool, as_float, as_int

log = logging.getLogger(__name__)

SAMPLERS = ("random", "identity")


def default_num_workers() -> int:
    """Image-decoding workers by default: one fewer than the usable cores (the main process
    trains meanwhile), at most 8.

    Example:
        >>> default_num_workers() >= 0
        True
    """
    return max(0, min(8, usable_cores() - 1))


class IdentityBatchSampler(DistributedSampler):
    """Identity-balanced sampling (:class:`~mtmct_reid.data.images.IdentitySampler`) for one rank.

    Each rank draws its own identity-balanced batches (its seed depends on the rank and the epoch)
    and an epoch gives every rank the same number of whole batches, its share of what a single
    process would draw. It is a ``DistributedSampler`` so that Lightning leaves it alone under DDP
    instead of wrapping it (a wrapper would shard the index stream and break the batches apart).

    Args:
        pids: class label (or identity) of each training row.
        batch_size: images per batch (a multiple of ``num_instances``).
        num_instances: images per identity in a batch.
        num_replicas: number of ranks.
        rank: this rank.
        seed: base seed; the order of epoch ``e`` on rank ``r`` depends on ``(seed, r, e)`` only, so a
            resumed run draws the batches it would have drawn.

    Example:
        >>> sampler = IdentityBatchSampler(np.repeat(np.arange(8), 4), 8, 4, num_replicas=1, rank=0)
        >>> len(sampler)
        32
    """

    def __init__(
        self,
        pids: Sequence[int] | np.ndarray,
        batch_size: int,
        num_instances: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
    ) -> None:
        self.pids = np.asarray(pids, dtype=np.int64)
        # Validates batch size / instances / number of identities with a user-facing message.
        probe = IdentitySampler(self.pids, batch_size, num_instances, seed=seed)
        super().__init__(
            range(len(self.pids)), num_replicas=num_replicas, rank=rank, shuffle=False, seed=seed
        )
        self.batch_size = int(batch_size)
        self.num_instances = int(num_instances)
        batches = len(probe) // self.batch_size // self.num_replicas
        if batches < 1:
            raise ReIDError(
                f"identity sampling gives {len(probe) // self.batch_size} batch(es) of "
                f"{batch_size} per epoch, fewer than one per rank ({num_replicas} ranks); "
                "lower the batch size or num_instances"
            )
        self.num_samples = batches * self.batch_size
        self.total_size = self.num_samples * self.num_replicas

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        # A distinct, reproducible stream per (rank, epoch): the sampler's own epoch counter would
        # restart at 0 after a resume.
        seed = int(np.random.SeedSequence([self.seed, self.rank, self.epoch]).generate_state(1)[0])
        inner = IdentitySampler(self.pids, self.batch_size, self.num_instances, seed=seed)
        for count, index in enumerate(inner):
            if count >= self.num_samples:
                return
            yield index


class ReIDDataModule(L.LightningDataModule):
    """Training, validation and test data of a re-id dataset.

    Args:
        data_dir: dataset folder (or manifest file) read with
            :func:`~mtmct_reid.data.readers.read_dataset`; or None with ``records``.
        records: already read records (not stored in the hyper-parameters).
        layout: dataset layout for ``data_dir`` (None: detected).
        pattern: file-name regex for the ``regex`` layout.
        image_size: ``(height, width)`` or ``"HxW"`` the network sees.
        batch_size: training images per batch (per device).
        test_batch_size: images per validation/test batch (default: ``batch_size``).
        num_workers: image-decoding worker processes (default: the usable cores - 1, at most 8).
        sampler: ``"random"`` (shuffled images) or ``"identity"`` (batches of
            ``batch_size / num_instances`` identities with ``num_instances`` images each).
        num_instances: images per identity in a batch with the identity sampler.
        random_erasing: probability of random erasing in training.
        pad: padding before the random crop in training.
        flip: random horizontal flip in training.
        strict_images: stop at the first unreadable image (naming it) instead of skipping it.
        seed: seed of the identity sampler.

    The records are read on first use (``num_classes`` works before the Trainer calls
    :meth:`setup`) and exposed as :attr:`records`, :attr:`train_records`, :attr:`train_labels`,
    :attr:`class_pids`, :attr:`val_records`, :attr:`num_query` and :attr:`num_classes`.

    Example:
        >>> dm = ReIDDataModule("Market-1501", image_size="256x128", batch_size=32)  # doctest: +SKIP
        >>> dm.num_classes                                                            # doctest: +SKIP
        751
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        records: Records | None = None,
        *,
        layout: str | None = None,
        pattern: str | None = None,
        image_size: Sequence[int] | str = (256, 128),
        batch_size: int = 32,
        test_batch_size: int | None = None,
        num_workers: int | None = None,
        sampler: str = "random",
        num_instances: int = 4,
        random_erasing: float = 0.5,
        pad: int = 10,
        flip: bool = True,
        strict_images: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if (data_dir is None) == (records is None):
            raise ReIDError(
                "give the data as exactly one of data_dir (a dataset folder) or records"
            )
        height, width = as_image_size(image_size)
        if sampler not in SAMPLERS:
            raise ReIDError(f"sampler '{sampler}': expected one of {', '.join(SAMPLERS)}")
        batch_size = as_int("batch_size", batch_size, minimum=1, whole_floats=True)
        if test_batch_size is not None:
            test_batch_size = as_int(
                "test_batch_size", test_batch_size, minimum=1, whole_floats=True
            )
        num_workers = default_num_workers() if num_workers is None else num_workers
        # Each worker is a process holding a copy of the dataset: bounded.
        num_workers = as_int("num_workers", num_workers, minimum=0, maximum=64, whole_floats=True)
        num_instances = as_int("num_instances", num_instances, minimum=1, whole_floats=True)
        random_erasing = as_float("random_erasing", random_erasing)
        if not 0.0 <= random_erasing <= 1.0:
            raise ReIDError(f"random_erasing must be a probability in [0, 1], got {random_erasing}")
        pad = as_int("pad", pad, minimum=0, whole_floats=True)
        flip, strict_images = as_bool("flip", flip), as_bool("strict_images", strict_images)
        seed = as_int("seed", seed, minimum=0, whole_floats=True)
        # Plain types only: the hyper-parameters go into checkpoints read with weights_only=True
        # and into hparams.yaml.
        self.save_hyperparameters(
            {
                "data_dir": None if data_dir is None else str(data_dir),
                "layout": layout,
                "pattern": pattern,
                "image_size": [height, width],
                "batch_size": batch_size,
                "test_batch_size": test_batch_size,
                "num_workers": num_workers,
                "sampler": sampler,
                "num_instances": num_instances,
                "random_erasing": float(random_erasing),
                "pad": pad,
                "flip": bool(flip),
                "strict_images": bool(strict_images),
                "seed": int(seed),
            }
        )
        self.image_size = (height, width)
        self._given_records = records
        self._loaded = False
        self._train_dataset: ImageDataset | None = None

    # ------------------------------------------------------------------------------------------
    # Records

    @property
    def source(self) -> str:
        """How the data is named in messages (its folder, or ``records``)."""
        return self.hparams.data_dir or "records"

    def _load(self) -> None:
        if self._loaded:
            return
        if self._given_records is not None:
            records = self._given_records
        else:
            from mtmct_reid.data.readers import read_dataset

            records = read_dataset(
                Path(self.hparams.data_dir),
                layout=self.hparams.layout,
                pattern=self.hparams.pattern,
            )
        train = records.split("train")
        labelled = train.subset(train.pids > 0)
        if len(labelled) == 0:
            raise ReIDError(
                f"{self.source}: the train split has no labelled images (pid > 0; it has "
                f"{len(train)} images in all); training needs identities to learn"
            )
        if len(labelled) < self.hparams.batch_size:
            raise ReIDError(
                f"{self.source}: the train split has {len(labelled)} labelled images, fewer than "
                f"one batch of {self.hparams.batch_size}; lower the batch size"
            )
        query, gallery = records.split("query"), records.split("gallery")
        for name, part in (("query", query), ("gallery", gallery)):
            if len(part) == 0:
                raise ReIDError(
                    f"{self.source}: the {name} split is empty; validation and test need query "
                    "and gallery images"
                )
        class_pids, labels = np.unique(labelled.pids, return_inverse=True)
        self._records = records
        self._train_records = labelled
        self._train_labels = labels.astype(np.int64)
        self._class_pids = class_pids
        self._val_records = Records.concat([query, gallery])
        self._num_query = len(query)
        self._loaded = True
        dropped = len(train) - len(labelled)
        log.info(
            "training on %d images of %d identities%s; validating on %d queries, %d gallery images",
            len(labelled),
            len(class_pids),
            f" ({dropped} unlabelled train images dropped)" if dropped else "",
            len(query),
            len(gallery),
        )

    @property
    def records(self) -> Records:
        """Every row of the dataset (read on first use)."""
        self._load()
        return self._records

    @property
    def train_records(self) -> Records:
        """The labelled (pid > 0) rows of the train split."""
        self._load()
        return self._train_records

    @property
    def train_labels(self) -> np.ndarray:
        """Class index 0..K-1 of each row of :attr:`train_records`."""
        self._load()
        return self._train_labels

    @property
    def class_pids(self) -> np.ndarray:
        """The person id of each class index."""
        self._load()
        return self._class_pids

    @property
    def val_records(self) -> Records:
        """Query rows followed by gallery rows (the validation and test images)."""
        self._load()
        return self._val_records

    @property
    def num_query(self) -> int:
        """Number of query rows at the head of :attr:`val_records`."""
        self._load()
        return self._num_query

    @property
    def num_classes(self) -> int:
        """Number of training identities K (the size of the classifiers)."""
        return int(len(self.class_pids))

    def setup(self, stage: str | None = None) -> None:
        """Read the records (once) and check that the chosen sampler can fill its batches."""
        self._load()
        if stage in (None, "fit") and self.hparams.sampler == "identity":
            IdentitySampler(self.train_labels, self.hparams.batch_size, self.hparams.num_instances)

    # ------------------------------------------------------------------------------------------
    # Loaders

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def train_dataset(self) -> ImageDataset:
        """The augmented training images with their class labels (built once)."""
        if self._train_dataset is None:
            transform = build_transforms(
                self.image_size,
                train=True,
                random_erasing=self.hparams.random_erasing,
                pad=self.hparams.pad,
                flip=self.hparams.flip,
            )
            self._train_dataset = ImageDataset(
                self.train_records,
                transform,
                labels=self.train_labels,
                strict=self.hparams.strict_images,
            )
        return self._train_dataset

    def eval_dataset(self) -> ImageDataset:
        """Query then gallery images, test transform; labels are the person ids."""
        return ImageDataset(
            self.val_records,
            build_transforms(self.image_size, train=False),
            strict=self.hparams.strict_images,
        )

    def _loader_options(self) -> dict[str, Any]:
        workers = self.hparams.num_workers
        return {
            "num_workers": workers,
            "persistent_workers": workers > 0,
            "pin_memory": torch.cuda.is_available(),
        }

    def train_dataloader(self) -> DataLoader:
        dataset = self.train_dataset()
        if self.hparams.sampler == "identity":
            world_size, rank = self._rank()
            sampler = IdentityBatchSampler(
                self.train_labels,
                self.hparams.batch_size,
                self.hparams.num_instances,
                num_replicas=world_size,
                rank=rank,
                seed=self.hparams.seed,
            )
            return DataLoader(
                dataset,
                batch_size=self.hparams.batch_size,
                sampler=sampler,
                drop_last=True,
                **self._loader_options(),
            )
        # drop_last: a last batch of one image would break BatchNorm in the heads.
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            drop_last=True,
            **self._loader_options(),
        )

    def _eval_loader(self) -> DataLoader:
        return DataLoader(
            self.eval_dataset(),
            batch_size=self.hparams.test_batch_size or self.hparams.batch_size,
            shuffle=False,
            **self._loader_options(),
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader()

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader()

    @property
    def unreadable_images(self) -> list[str]:
        """Training images found unreadable so far in this process (worker processes keep theirs)."""
        return [] if self._train_dataset is None else list(self._train_dataset.bad_paths)
