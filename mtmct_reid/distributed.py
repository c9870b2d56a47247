"""Feature extraction on several devices or machines, through Lightning's predict loop with DDP.

Each process embeds whole batches (batch ``b`` goes to rank ``b mod world size``, with the batch
boundaries of a one-process run, so every image is computed in the same company as there) with the same
:class:`~mtmct_reid.features.FeatureExtractor` code, writes its rows and features to a shard file in a
folder beside the output, and rank 0 merges the shards back into input order and writes one features
file. The result equals the one-process file bit for bit (on the CPU each process keeps the thread
count of a one-process run for that).

With the ``ddp`` strategy Lightning starts the other local processes by running the same command line
again (``mtmct-reid extract ... --devices N``); on several machines, start the same command on each with
``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK`` set (or under SLURM / torchrun), and give it an output
folder all machines share.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader, Sampler

from mtmct_reid._io import save_npz
from mtmct_reid._runtime import usable_cores
from mtmct_reid.data.image_size import as_image_size
from mtmct_reid.data.images import ImageDataset
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.features import FeatureExtractor, check_loader_options, split_featureset
from mtmct_reid.validation import positive_int

log = logging.getLogger(__name__)

ACCELERATORS = ("auto", "cpu", "gpu")


class RankBatches(Sampler[list[int]]):
    """The batches of a one-process run (``[0, B)``, ``[B, 2B)``, ...) that belong to one rank:
    batch ``b`` goes to rank ``b mod world_size``.

    Example:
        >>> list(RankBatches(7, batch_size=2, rank=1, world_size=2))
        [[2, 3], [6]]
    """

    def __init__(self, length: int, batch_size: int, rank: int, world_size: int) -> None:
        self.length, self.batch_size = int(length), int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)

    def _starts(self) -> range:
        step = self.batch_size * self.world_size
        return range(self.rank * self.batch_size, self.length, step)

    def __iter__(self) -> Iterator[list[int]]:
        for start in self._starts():
            yield list(range(start, min(start + self.batch_size, self.length)))

    def __len__(self) -> int:
        return len(self._starts())


def check_devices(accelerator: str, devices: int, num_nodes: int) -> str:
    """Refuse device counts this machine does not have, before any process starts.

    Returns:
        The accelerator resolved (``"cpu"`` or ``"gpu"``).

    Example:
        >>> check_devices("cpu", 1, 1)
        'cpu'
    """
    if accelerator not in ACCELERATORS:
        raise ReIDError(f"--accelerator {accelerator}: expected one of {', '.join(ACCELERATORS)}")
    devices = positive_int("--devices", devices)
    num_nodes = positive_int("--num-nodes", num_nodes)
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu":
        visible = torch.cuda.device_count()
        if devices > visible:
            raise ReIDError(
                f"--devices {devices}: this machine has {visible} visible GPU(s) "
                f"(CUDA_VISIBLE_DEVICES, --accelerator cpu for CPU processes)"
            )
    elif devices > usable_cores():
        raise ReIDError(
            f"--devices {devices}: this process may use {usable_cores()} CPU core(s); "
            "one CPU process per core at most"
        )
    return accelerator


class ExtractionModule(L.LightningModule):
    """Runs a :class:`FeatureExtractor` on this rank's batches and writes them to a shard file.

    Args:
        model: the re-id model.
        image_size: ``(height, width)``.
        sources: image paths, in output order.
        batch_size: images per batch.
        num_workers: DataLoader workers.
        shard_parent: folder in which rank 0 creates the temporary shard folder.
        extractor_options: passed to :class:`FeatureExtractor`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        image_size: tuple[int, int],
        sources: Sequence[str],
        batch_size: int,
        num_workers: int,
        shard_parent: Path,
        extractor_options: Mapping[str, Any],
    ) -> None:
        super().__init__()
        self.model = model
        self.image_size = image_size
        self.sources = list(sources)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.shard_parent = Path(shard_parent)
        self.extractor_options = dict(extractor_options)
        self.shard_dir: Path | None = None
        self.extractor: FeatureExtractor | None = None
        self._rows: list[np.ndarray] = []
        self._feats: list[np.ndarray] = []

    def setup(self, stage: str) -> None:
        # On this rank's device (cuda:LOCAL_RANK or the CPU), the same code a one-process run uses.
        self.extractor = FeatureExtractor(
            self.model, self.image_size, device=self.device, **self.extractor_options
        )

    def predict_dataloader(self) -> DataLoader:
        assert self.extractor is not None
        dataset = ImageDataset(self.sources, self.extractor.transform)
        batches = RankBatches(
            len(dataset), self.batch_size, self.global_rank, self.trainer.world_size
        )
        return DataLoader(dataset, batch_sampler=batches, num_workers=self.num_workers)

    def on_predict_start(self) -> None:
        name = None
        if self.global_rank == 0:
            name = tempfile.mkdtemp(prefix=".extract-shards-", dir=self.shard_parent)
        self.shard_dir = Path(self.trainer.strategy.broadcast(name, src=0))

    def predict_step(self, batch: Any, batch_idx: int) -> None:
        images, _labels, rows = batch
        assert self.extractor is not None
        self._rows.append(rows.cpu().numpy())
        self._feats.append(self.extractor.embed_batch(images).cpu().numpy())

    def on_predict_epoch_end(self) -> None:
        assert self.shard_dir is not None and self.extractor is not None
        dim = self.extractor.feature_dim
        save_npz(
            self.shard_dir / f"shard-{self.global_rank:05d}.npz",
            rows=np.concatenate(self._rows) if self._rows else np.zeros(0, np.int64),
            features=np.concatenate(self._feats) if self._feats else np.zeros((0, dim), np.float32),
        )
        self.trainer.strategy.barrier("shards written")


def extract_featureset_distributed(
    model: torch.nn.Module,
    records: Records,
    image_size: tuple[int, int] | str,
    out: str | os.PathLike,
    *,
    devices: int = 2,
    num_nodes: int = 1,
    accelerator: str = "auto",
    strategy: str = "ddp",
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
    metadata: Mapping[str, Any] | None = None,
    **extractor_options: Any,
) -> Any:
    """Extract query and gallery features with ``devices × num_nodes`` processes and write one
    features file (in record order) from rank 0.

    Args:
        model: a :class:`~mtmct_reid.models.ReIDModel`.
        records: records with ``query`` and ``gallery`` rows.
        image_size: ``(height, width)`` or ``"HxW"``.
        out: the features file rank 0 writes; shards go to a temporary folder beside it (it must
            be on a filesystem every node sees).
        devices: processes per machine (GPUs, or CPU processes with ``accelerator="cpu"``).
        num_nodes: machines.
        accelerator: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        strategy: Lightning strategy; ``"ddp"`` runs the command line again for each local
            process (scripts, the CLI); ``"ddp_spawn"`` or ``"ddp_notebook"`` from a notebook.
        batch_size: images per batch (each process takes whole batches).
        num_workers: DataLoader workers per process.
        progress: Lightning's progress bar.
        metadata: extra entries for the features file.
        **extractor_options: passed to :class:`FeatureExtractor` (flip, channels_last, precision).

    Returns:
        The :class:`~mtmct_reid.featureset.FeatureSet` on global rank 0, None on the other ranks.

    Example:
        >>> extract_featureset_distributed(model, records, (384, 192), "features.npz",
        ...                                devices=4, accelerator="gpu")  # doctest: +SKIP
    """
    accelerator = check_devices(accelerator, devices, num_nodes)
    check_loader_options(batch_size, num_workers)
    size = as_image_size(image_size)
    out = Path(out)
    query, gallery = records.split("query"), records.split("gallery")
    for name, side in (("query", query), ("gallery", gallery)):
        if len(side) == 0:
            raise ReIDError(
                f"the dataset has no {name} images; extraction needs query and gallery splits"
            )
    rows = Records.concat([query, gallery])
    sources = [str(p) for p in rows.paths]
    out.parent.mkdir(parents=True, exist_ok=True)
    if accelerator == "cpu":
        # Lightning would give each CPU process cores/processes threads; oneDNN's sums depend on
        # the thread count, so keep a one-process run's count and get its features bit for bit.
        os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    module = ExtractionModule(
        model, size, sources, batch_size, num_workers, out.parent, dict(extractor_options)
    )
    world = devices * num_nodes
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy if world > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        # tqdm's bar: Lightning picks rich's whenever rich is installed, and it fails on close
        # after an error.
        callbacks=[TQDMProgressBar()] if progress else [],
        use_distributed_sampler=False,
        inference_mode=True,
    )
    try:
        with warnings.catch_warnings():
            # RankBatches returns every index (tested); predict_step returns None on purpose.
            warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
            warnings.filterwarnings("ignore", message=".*predict returned None.*")
            trainer.predict(module, return_predictions=False)
        if not trainer.is_global_zero:
            return None
        features = _merge_shards(module.shard_dir, len(sources), sources)
    finally:
        if trainer.is_global_zero and module.shard_dir is not None:
            shutil.rmtree(module.shard_dir, ignore_errors=True)
    assert module.extractor is not None
    meta = {**module.extractor.metadata(), "processes": world, **(metadata or {})}
    featureset = split_featureset(features, query, gallery, meta)
    featureset.save(out)
    return featureset


def _merge_shards(shard_dir: Path | None, count: int, sources: Sequence[str]) -> np.ndarray:
    if shard_dir is None:
        raise ReIDError("distributed extraction wrote no shards")
    out: np.ndarray | None = None
    seen = np.zeros(count, dtype=bool)
    for shard in sorted(shard_dir.glob("shard-*.npz")):
        with np.load(shard, allow_pickle=False) as npz:
            rows, feats = npz["rows"], npz["features"]
        if out is None and len(feats):
            out = np.empty((count, feats.shape[1]), dtype=np.float32)
        if len(feats):
            out[rows] = feats
            seen[rows] = True
    if out is None or not seen.all():
        first = int(np.flatnonzero(~seen)[0]) if not seen.all() else 0
        raise ReIDError(f"{sources[first]}: cannot read image; fix or remove it and extract again")
    return out
