"""The training module's pieces usable on their own: the part loss, the learning-rate schedule,
the transit-time fit of the training split, gathering features across ranks, the results file.

None of them needs a :class:`~mtmct_reid.training.module.ReIDLightningModule`; it calls them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.transit import TransitTimeModel

log = logging.getLogger(__name__)

#: Rows exchanged at once when gathering features across ranks (bounds the device memory it takes).
_GATHER_CHUNK_ROWS = 4096


def part_loss(
    logits: Sequence[torch.Tensor], labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Sum over parts of the cross-entropy of each part's logits (the PCB loss).

    Args:
        logits: one [B, K] tensor per part.
        labels: [B] class indices.
        label_smoothing: label smoothing of each cross-entropy (0 = none).

    Example:
        >>> logits = [torch.zeros(2, 4), torch.zeros(2, 4)]
        >>> round(float(part_loss(logits, torch.tensor([0, 3]))), 4)  # 2 · ln 4
        2.7726
    """
    return torch.stack(
        [F.cross_entropy(part, labels, label_smoothing=label_smoothing) for part in logits]
    ).sum()


def lr_factor(
    epoch: int,
    *,
    schedule: str = "step",
    step_size: int = 40,
    gamma: float = 0.1,
    warmup_epochs: int = 5,
    warmup_factor: float = 0.1,
) -> float:
    """Multiplier of the base learning rates in ``epoch`` (0-based).

    ``step``: ``gamma ** (epoch // step_size)``. ``warmup_step``: the same, times a linear ramp from
    ``warmup_factor`` at epoch 0 to 1 at ``warmup_epochs``.

    Example:
        >>> [lr_factor(e, step_size=2) for e in range(5)]
        [1.0, 1.0, 0.1, 0.1, 0.010000000000000002]
        >>> lr_factor(1, schedule="warmup_step", warmup_epochs=2, warmup_factor=0.5)
        0.75
    """
    factor = gamma ** (epoch // step_size)
    if schedule == "warmup_step" and epoch < warmup_epochs:
        factor *= warmup_factor + (1.0 - warmup_factor) * epoch / warmup_epochs
    return factor


def fit_transit_model(
    records: Records,
    *,
    bin_width: float = 100.0,
    sigma_bins: float = 50.0,
    truncate: float = 3.0,
    source: str = "dataset",
) -> TransitTimeModel | None:
    """The transit-time model of the training split, or None when the data cannot give one.

    None (with a log line saying why) when the training images have no times, come from fewer than
    two cameras, or no training identity appears in two cameras; training then validates visually.

    Args:
        records: the whole dataset (the model knows all its cameras; only ``train`` labels are used).
        bin_width: frames per bin.
        sigma_bins: smoothing σ in bins.
        truncate: smoothing cut-off in σ.
        source: name of the data in log messages.

    Example:
        >>> records = Records.from_columns(["a.jpg", "b.jpg", "c.jpg", "d.jpg"], [1, 1, 2, 2],
        ...                                [1, 2, 1, 2], [0.0, 250.0, 10.0, 60.0], ["train"] * 4)
        >>> fit_transit_model(records).num_observed_pairs  # camera 2 after camera 1
        1
        >>> fit_transit_model(records.split("query")) is None  # no training images: no model
        True
    """
    train = records.split("train")
    if len(train) == 0 or not train.has_times:
        log.info("%s: training images have no times; validating without the transit model", source)
        return None
    if np.unique(train.cams).size < 2:
        log.info("%s: training images come from one camera; no transit model", source)
        return None
    try:
        return TransitTimeModel.from_records(
            records, source=source, bin_width=bin_width, sigma_bins=sigma_bins, truncate=truncate
        )
    except ReIDError as exc:
        log.warning("no transit-time model: %s", exc)
        return None


def gather_rows(
    rows: torch.Tensor,
    features: torch.Tensor,
    all_gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    world_size: int = 1,
    *,
    device: torch.device | str = "cpu",
    chunk_rows: int = _GATHER_CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """Collect the features every rank extracted, one per dataset row, in row order.

    Ranks may hold different numbers of rows (they are padded for the exchange) and the same row
    more than once (a ``DistributedSampler`` repeats rows to even the shards out; an unreadable image
    is replaced by another row): each row is kept once.

    Args:
        rows: [n] int64 dataset row of each local feature.
        features: [n, D] local features.
        all_gather: gathers a tensor of the same shape from every rank into [world_size, ...]
            (``LightningModule.all_gather``); unused when ``world_size`` is 1.
        world_size: number of ranks.
        device: device of the exchanged tensors (CUDA for NCCL).
        chunk_rows: rows exchanged at once.

    Returns:
        ``(rows, features)``: the distinct rows found on any rank, sorted (int64 [M]), and their
        features (float32 [M, D]).

    Example:
        >>> rows, feats = gather_rows(torch.tensor([2, 0, 2]), torch.eye(3))
        >>> rows.tolist(), feats[:, :2].tolist()
        ([0, 2], [[0.0, 1.0], [1.0, 0.0]])
    """
    rows = rows.detach().reshape(-1).to("cpu", torch.int64)
    features = features.detach().to("cpu", torch.float32)
    if world_size > 1:
        if all_gather is None:
            raise ValueError("gather_rows needs all_gather when world_size > 1")
        dim = features.shape[1]
        count = torch.tensor([rows.numel()], dtype=torch.int64, device=device)
        longest = int(all_gather(count).reshape(-1).max())
        gathered_rows, gathered_features = [], []
        for start in range(0, longest, chunk_rows):
            stop = min(start + chunk_rows, longest)
            local_rows = torch.full((stop - start,), -1, dtype=torch.int64)
            local_features = torch.zeros((stop - start, dim), dtype=torch.float32)
            have = max(0, min(stop, rows.numel()) - start)
            local_rows[:have] = rows[start : start + have]
            local_features[:have] = features[start : start + have]
            gathered_rows.append(all_gather(local_rows.to(device)).reshape(-1).cpu())
            gathered_features.append(all_gather(local_features.to(device)).reshape(-1, dim).cpu())
        if gathered_rows:
            rows, features = torch.cat(gathered_rows), torch.cat(gathered_features)
        else:
            rows, features = rows[:0], features[:0]
        real = rows >= 0
        rows, features = rows[real], features[real]
    unique_rows, first = np.unique(rows.numpy(), return_index=True)
    return unique_rows.astype(np.int64), features.numpy()[first].astype(np.float32, copy=False)


def format_markdown(report: Any) -> str:
    """An :class:`~mtmct_reid.retrieval.evaluate.EvaluationReport` as ``test_results.md``: the
    results table (percent) and the protocol.

    Example:
        >>> from mtmct_reid.retrieval.evaluate import EvaluationReport
        >>> from mtmct_reid.retrieval.metrics import evaluate_scores
        >>> ranked = evaluate_scores(np.eye(2), [1, 2], [1, 1], [1, 2], [2, 2])
        >>> print(format_markdown(EvaluationReport("standard", {"visual": ranked})))
        | mode | mAP | R1 | R5 | R10 | mINP | queries |
        |---|---:|---:|---:|---:|---:|---:|
        | visual | 100.00 | 100.00 | 100.00 | 100.00 | 100.00 | 2 |
        <BLANKLINE>
        Protocol: standard; figures in %.
        <BLANKLINE>
    """
    table = report.format_table("markdown")
    return f"{table.rstrip()}\n\nProtocol: {report.protocol}; figures in %.\n"
