"""Training on Lightning: the DataModule, the LightningModule, feature gathering across ranks, resume
and DDP. Small: 64×32 images, a ResNet18 trunk with random weights, a few batches of 16."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from mtmct_reid.data.datamodule import IdentityBatchSampler, ReIDDataModule
from mtmct_reid.data.readers import read_dataset
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.training import (
    TEST_FEATURES,
    TEST_JSON,
    TRANSIT_FILE,
    ReIDLightningModule,
    gather_rows,
    lr_factor,
    part_loss,
)
from mtmct_reid.training.cli import build_trainer
from mtmct_reid.training.options import Optimisation

SIZE = (64, 32)


def _datamodule(root: Path, **options) -> ReIDDataModule:
    options = {"image_size": SIZE, "batch_size": 16, "num_workers": 0, **options}
    return ReIDDataModule(root, **options)


_OPTIMISATION = {field.name for field in dataclasses.fields(Optimisation)}


def _module(num_classes: int, **options) -> ReIDLightningModule:
    """A small module; optimiser options (``lr=...``) go into its ``Optimisation`` group."""
    optimisation = {k: options.pop(k) for k in list(options) if k in _OPTIMISATION}
    options = {"model": "pcb", "backbone": "resnet18", "weights": "none", **options}
    if optimisation:
        options["optimisation"] = Optimisation(**optimisation)
    return ReIDLightningModule(num_classes=num_classes, image_size=SIZE, **options)


def _trainer(tmp_path: Path, **options) -> L.Trainer:
    options = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": TensorBoardLogger(tmp_path, name="lightning_logs", default_hp_metric=False),
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        **options,
    }
    return L.Trainer(**options)


def _chance_r1(records: Records) -> float:
    """Expected rank-1 accuracy of a random ranking: per valid query, good / candidates."""
    query, gallery = records.split("query"), records.split("gallery")
    rates = []
    for pid, cam in zip(query.pids, query.cams, strict=True):
        junk = ((gallery.pids == pid) & (gallery.cams == cam)) | (gallery.pids == -1)
        good = (gallery.pids == pid) & (gallery.cams != cam)
        if good.any():
            rates.append(good.sum() / (~junk).sum())
    return float(np.mean(rates))


# ----------------------------------------------------------------------------------------------
# DataModule


def test_datamodule_labels_train_ids_and_orders_validation(tiny_network: Path) -> None:
    records = read_dataset(tiny_network)
    train = records.split("train")
    # Unlabelled training rows (junk, distractors) must not become classes.
    pids = records.pids.copy()
    train_rows = np.flatnonzero(records.splits == "train")
    pids[train_rows[:5]] = -1
    pids[train_rows[5:8]] = 0
    edited = dataclasses.replace(records, pids=pids)
    dm = ReIDDataModule(records=edited, image_size="64x32", batch_size=16, num_workers=0)
    labelled = edited.split("train").pids
    labelled = labelled[labelled > 0]
    assert dm.num_classes == np.unique(labelled).size
    assert len(dm.train_records) == len(train) - 8
    assert (dm.train_records.pids > 0).all()
    assert set(dm.train_labels.tolist()) == set(range(dm.num_classes))
    np.testing.assert_array_equal(dm.class_pids[dm.train_labels], dm.train_records.pids)
    # Validation: queries first, then the gallery, nothing from train.
    nq = len(records.split("query"))
    assert dm.num_query == nq
    assert (dm.val_records.splits[:nq] == "query").all()
    assert (dm.val_records.splits[nq:] == "gallery").all()

    dm.setup("fit")
    images, labels, rows = next(iter(dm.train_dataloader()))
    assert images.shape == (16, 3, *SIZE)
    assert labels.max() < dm.num_classes and labels.min() >= 0
    np.testing.assert_array_equal(labels.numpy(), dm.train_labels[rows.numpy()])
    images, pids_out, rows = next(iter(dm.val_dataloader()))
    np.testing.assert_array_equal(rows.numpy(), np.arange(16))
    np.testing.assert_array_equal(pids_out.numpy(), dm.val_records.pids[:16])
    assert dm.hparams.image_size == [64, 32]


def test_datamodule_refuses_empty_splits(tiny_network: Path) -> None:
    records = read_dataset(tiny_network)
    no_query = records.subset(records.splits != "query")
    with pytest.raises(ReIDError, match="query split is empty"):
        _ = ReIDDataModule(records=no_query, num_workers=0).num_classes
    unlabelled = dataclasses.replace(
        records, pids=np.where(records.splits == "train", -1, records.pids)
    )
    with pytest.raises(ReIDError, match="no labelled images"):
        _ = ReIDDataModule(records=unlabelled, num_workers=0).num_classes
    with pytest.raises(ReIDError, match="sampler 'balanced'"):
        ReIDDataModule(records=records, sampler="balanced")
    with pytest.raises(ReIDError, match="exactly one of data_dir"):
        ReIDDataModule()


def test_identity_sampler_too_few_identities(tiny_network: Path) -> None:
    dm = _datamodule(tiny_network, sampler="identity", batch_size=64, num_instances=2)
    with pytest.raises(ReIDError, match="at least 32 identities"):
        dm.setup("fit")


def test_identity_batch_sampler_gives_each_rank_balanced_batches() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(12), rng.integers(2, 9, size=12))
    batch, instances = 8, 2
    streams = []
    for rank in range(2):
        sampler = IdentityBatchSampler(labels, batch, instances, num_replicas=2, rank=rank, seed=3)
        sampler.set_epoch(0)
        indices = np.fromiter(sampler, dtype=np.int64)
        assert len(indices) == len(sampler) and len(sampler) % batch == 0
        for chunk in indices.reshape(-1, batch):
            ids, counts = np.unique(labels[chunk], return_counts=True)
            assert len(ids) == batch // instances and (counts == instances).all()
        again = IdentityBatchSampler(labels, batch, instances, num_replicas=2, rank=rank, seed=3)
        again.set_epoch(0)
        np.testing.assert_array_equal(np.fromiter(again, dtype=np.int64), indices)
        again.set_epoch(1)
        assert not np.array_equal(np.fromiter(again, dtype=np.int64), indices)
        streams.append(indices)
    assert len(streams[0]) == len(streams[1])
    assert not np.array_equal(streams[0], streams[1])
    single = IdentityBatchSampler(labels, batch, instances, num_replicas=1, rank=0, seed=3)
    assert len(single) >= 2 * len(streams[0])


# ----------------------------------------------------------------------------------------------
# Loss, optimiser, schedule, hyper-parameters


def test_part_loss_is_the_sum_of_part_cross_entropies() -> None:
    torch.manual_seed(0)
    logits = [torch.randn(5, 7) for _ in range(3)]
    labels = torch.tensor([0, 6, 3, 3, 1])
    expected = 0.0
    for part in logits:
        log_probs = part - part.exp().sum(1, keepdim=True).log()
        expected += float(-log_probs[torch.arange(5), labels].mean())
    assert float(part_loss(logits, labels)) == pytest.approx(expected, rel=1e-5)
    # Label smoothing ε: (1 − ε)·CE + ε·mean over classes of −log p.
    smoothed = sum(
        float(
            (0.9 * -(p - p.logsumexp(1, keepdim=True))[torch.arange(5), labels]).mean()
            + (0.1 * -(p - p.logsumexp(1, keepdim=True)).mean(1)).mean()
        )
        for p in logits
    )
    assert float(part_loss(logits, labels, 0.1)) == pytest.approx(smoothed, rel=1e-5)


def test_optimiser_groups_and_schedules() -> None:
    module = _module(10, lr=0.2, backbone_lr_mult=0.1, schedule="step", step_size=2, gamma=0.5)
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "epoch"
    backbone, head = optimizer.param_groups
    assert {id(p) for p in backbone["params"]} == {
        id(p) for p in module.model.backbone.parameters()
    }
    assert {id(p) for p in head["params"]} == {id(p) for p in module.model.head.parameters()}
    assert len(backbone["params"]) + len(head["params"]) == len(list(module.parameters()))
    assert backbone["nesterov"] and backbone["momentum"] == 0.9 and backbone["weight_decay"] == 5e-4
    seen = []
    for _ in range(6):
        seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"]))
        optimizer.step()
        scheduler.step()
    expected = [(0.02 * 0.5 ** (e // 2), 0.2 * 0.5 ** (e // 2)) for e in range(6)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)

    warm = _module(
        10,
        lr=0.1,
        schedule="warmup_step",
        step_size=4,
        gamma=0.1,
        warmup_epochs=3,
        warmup_factor=0.1,
    )
    config = warm.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    head_lrs = []
    for _ in range(9):
        head_lrs.append(optimizer.param_groups[1]["lr"])
        optimizer.step()
        scheduler.step()
    ramp = {0: 0.1, 1: 0.1 + 0.9 / 3, 2: 0.1 + 1.8 / 3}
    expected = [0.1 * ramp.get(e, 1.0) * 0.1 ** (e // 4) for e in range(9)]
    np.testing.assert_allclose(head_lrs, expected, rtol=1e-12)
    assert lr_factor(5, schedule="step", step_size=4, gamma=0.1) == pytest.approx(0.1)


def test_hyperparameters_rebuild_the_model(tmp_path: Path) -> None:
    module = _module(7, model="resnet50", dropout=0.3)
    hp = module.hparams
    assert hp.model == "resnet50" and hp.backbone == "resnet18" and hp.num_classes == 7
    assert hp.image_size == [64, 32] and hp.last_stride == 1 and hp.num_parts == 1
    assert hp.dropout == 0.3
    # Options read from YAML may be text ("5e-4" is a string to YAML 1.1).
    from_yaml = _module(7, weight_decay="5e-4", step_size="10", lr=0.05)
    assert from_yaml.optimisation.weight_decay == 5e-4 and from_yaml.optimisation.step_size == 10
    # Stored as plain values: the checkpoint is read without pickle and rebuilds the groups.
    assert from_yaml.hparams.optimisation["weight_decay"] == 5e-4
    assert ReIDLightningModule(**from_yaml.hparams).optimisation == from_yaml.optimisation
    with pytest.raises(ReIDError, match="lr must be a finite number.*got 'fast'"):
        _module(7, lr="fast")
    with pytest.raises(ReIDError, match="nesterov must be true or false"):
        _module(7, nesterov="yes")
    with pytest.raises(ReIDError, match="unknown model 'vgg'.*pcb"):
        _module(7, model="vgg")
    with pytest.raises(ReIDError, match="schedule 'cosine'"):
        _module(7, schedule="cosine")
    with pytest.raises(ReIDError, match="num_classes is required"):
        ReIDLightningModule(model="pcb", backbone="resnet18", weights="none")


# ----------------------------------------------------------------------------------------------
# Gathering features across ranks


def test_gather_rows_single_rank_drops_repeats_and_sorts() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(6, 4)).astype(np.float32)
    rows = torch.tensor([4, 1, 3, 1, 0, 4])
    got_rows, got = gather_rows(rows, torch.from_numpy(features))
    np.testing.assert_array_equal(got_rows, [0, 1, 3, 4])
    np.testing.assert_array_equal(got, features[[4, 1, 2, 0]])


def _gather_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        # A DistributedSampler's shards of 11 rows over 2 ranks: 6 each, row 0 repeated as padding;
        # rank 1 also has an uneven extra block to exercise padding of the exchange.
        num_rows, dim = 11, 5
        table = np.random.default_rng(7).normal(size=(num_rows, dim)).astype(np.float32)
        padded = np.concatenate([np.arange(num_rows), [0]])
        mine = padded[rank::world_size]
        if rank == 1:
            mine = np.concatenate([mine, [3, 5]])

        def all_gather(tensor: torch.Tensor) -> torch.Tensor:
            parts = [torch.empty_like(tensor) for _ in range(world_size)]
            dist.all_gather(parts, tensor.contiguous())
            return torch.stack(parts)

        rows, features = gather_rows(
            torch.from_numpy(mine),
            torch.from_numpy(table[mine]),
            all_gather,
            world_size,
            chunk_rows=4,
        )
        np.save(Path(out_dir) / f"rows{rank}.npy", rows)
        np.save(Path(out_dir) / f"features{rank}.npy", features)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gather_rows_two_gloo_processes_equal_one_process(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    table = np.random.default_rng(7).normal(size=(11, 5)).astype(np.float32)
    for rank in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"rows{rank}.npy"), np.arange(11))
        np.testing.assert_array_equal(np.load(tmp_path / f"features{rank}.npy"), table)


# ----------------------------------------------------------------------------------------------
# Training


class _Recorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.accuracy: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


@pytest.mark.slow
def test_fit_learns_and_validation_matches_a_direct_evaluation(
    tiny_network: Path, tmp_path: Path
) -> None:
    from mtmct_reid.features import extract_featureset
    from mtmct_reid.featureset import FeatureSet
    from mtmct_reid.models import load_model_from_checkpoint
    from mtmct_reid.retrieval.evaluate import evaluate_featureset
    from mtmct_reid.retrieval.transit import TransitTimeModel

    L.seed_everything(0, verbose=False)
    dm = _datamodule(tiny_network, random_erasing=0.0)
    # From random weights, dropout slows the first epochs down too much for a short test.
    module = _module(dm.num_classes, lr=0.01, dropout=0.0)
    recorder = _Recorder()
    checkpoint = ModelCheckpoint(save_last=True)
    trainer = _trainer(
        tmp_path, max_epochs=2, callbacks=[recorder, checkpoint], log_every_n_steps=1
    )
    trainer.fit(module, datamodule=dm)
    log_dir = Path(trainer.log_dir)

    losses = np.array(recorder.losses)
    assert len(losses) == 2 * (len(dm.train_records) // 16)
    assert losses[-5:].mean() < 0.85 * losses[:5].mean()
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    chance = _chance_r1(dm.records)
    assert metrics["val/R1"] > 4 * chance, (metrics, chance)
    assert {"val_st/mAP", "val_st/R1", "val_st/R5", "train/loss_epoch", "train/acc_epoch"} <= set(
        metrics
    )

    # The transit-time model beside the checkpoints is the training split's.
    saved = TransitTimeModel.load(log_dir / TRANSIT_FILE)
    reference = TransitTimeModel.from_records(dm.records)
    np.testing.assert_array_equal(saved.probabilities, reference.probabilities)

    # Validation figures equal an independent extraction (FeatureExtractor) + evaluation.
    model, hparams = load_model_from_checkpoint(checkpoint.last_model_path)
    assert hparams["image_size"] == SIZE
    direct = extract_featureset(model, dm.records, SIZE, progress=False, batch_size=32)
    report = evaluate_featureset(direct, st_model=reference, progress=False)
    assert metrics["val/mAP"] == pytest.approx(report.modes["visual"].mAP, abs=1e-5)
    assert metrics["val_st/mAP"] == pytest.approx(report.modes["visual+st"].mAP, abs=1e-5)

    # Test: four modes to JSON, and the features the evaluation engine reads.
    trainer.test(module, datamodule=dm, verbose=False)
    import json

    results = json.loads((log_dir / TEST_JSON).read_text())
    assert list(results["modes"]) == ["visual", "visual+st", "visual+rerank", "visual+st+rerank"]
    assert results["modes"]["visual"]["mAP"] == pytest.approx(report.modes["visual"].mAP, abs=1e-5)
    written = FeatureSet.load(log_dir / TEST_FEATURES)
    np.testing.assert_allclose(written.query.features, direct.query.features, atol=1e-4)
    np.testing.assert_array_equal(written.gallery.pids, direct.gallery.pids)


class _StateAtStart(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        optimizer = trainer.optimizers[0]
        self.momentum = {
            i: optimizer.state[p]["momentum_buffer"].clone()
            for i, p in enumerate(optimizer.param_groups[1]["params"])
            if "momentum_buffer" in optimizer.state[p]
        }
        self.head_lr = optimizer.param_groups[1]["lr"]
        self.global_step = trainer.global_step
        self.epoch = trainer.current_epoch
        self.best_score = trainer.checkpoint_callback.best_model_score


@pytest.mark.slow
def test_resume_continues_epochs_optimiser_schedule_and_best_checkpoint(
    tiny_network: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dm = _datamodule(tiny_network)
    options = {"lr": 0.01, "schedule": "step", "step_size": 1, "gamma": 0.5}
    quiet = {"accelerator": "cpu", "devices": 1, "progress": False, "limit_train_batches": 3}
    quiet |= {"enable_model_summary": False, "num_sanity_val_steps": 0}
    # train's trainer, with --out relative to the working folder.
    monkeypatch.chdir(tmp_path)
    first, first_checkpoint = build_trainer("runs", max_epochs=1, **quiet)
    first.fit(_module(dm.num_classes, **options), datamodule=dm)
    last = Path(first_checkpoint.last_model_path)
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 3
    first_best = first_checkpoint.best_model_score
    assert first_best is not None

    # A resume names the run by its checkpoint: an absolute root and its version.
    probe = _StateAtStart()
    second, checkpoint = build_trainer(
        tmp_path / "runs", version=0, max_epochs=2, callbacks=[probe], **quiet
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second.fit(
            _module(dm.num_classes, load_weights=False, **options),
            datamodule=dm,
            ckpt_path=last,
            weights_only=True,
        )
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    assert probe.global_step == 3 and probe.epoch == 1
    assert probe.head_lr == pytest.approx(0.01 * 0.5)
    state = saved["optimizer_states"][0]["state"]
    head_ids = saved["optimizer_states"][0]["param_groups"][1]["params"]
    assert probe.momentum, "no momentum buffers restored"
    for position, buffer in probe.momentum.items():
        torch.testing.assert_close(buffer, state[head_ids[position]]["momentum_buffer"])
    assert second.global_step == 6 and second.current_epoch == 2

    # The best checkpoint survives the resume: the callback starts from the first run's best
    # score, keeps the better of the two epochs, and one best file remains (save_top_k=1).
    assert probe.best_score is not None and float(probe.best_score) == float(first_best)
    # (the callback's current_score changes only when an epoch improves on the best)
    second_score = float(second.callback_metrics["val/mAP"])
    assert float(checkpoint.best_model_score) == max(float(first_best), second_score)
    best = sorted(last.parent.glob("best-*.ckpt"))
    assert best == [Path(checkpoint.best_model_path)]
    assert ("epoch000" in best[0].name) == (float(first_best) >= second_score)


def _images(log_dir: Path) -> dict[str, int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    counts: dict[str, int] = {}
    for events in sorted(log_dir.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["images"]:
            counts[tag] = counts.get(tag, 0) + len(accumulator.Images(tag))
    return counts


def _scalars(log_dir: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = []
    for events in sorted(log_dir.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            values += [event.value for event in accumulator.Scalars(tag)]
    return values


@pytest.mark.slow
def test_ddp_two_cpu_processes_validate_like_one(tiny_network: Path, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("mtmct-reid")
    command = [
        str(cli),
        "train",
        "--data-dir",
        str(tiny_network),
        "--model",
        "pcb",
        "--backbone",
        "resnet18",
        "--weights",
        "none",
        "--image-size",
        "64x32",
        "--batch-size",
        "16",
        "--max-epochs",
        "1",
        "--limit-train-batches",
        "2",
        "--num-workers",
        "0",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
        "--skip-test",
        "--out",
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log_dir = tmp_path / "lightning_logs" / "version_0"
    ddp_map = _scalars(log_dir, "val/mAP")
    ddp_st = _scalars(log_dir, "val_st/mAP")
    assert len(ddp_map) == 1 and len(ddp_st) == 1
    last = log_dir / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2  # each rank ran 2 batches: 2 synchronised steps

    # The same weights validated in one process, every image on one rank.
    dm = _datamodule(tiny_network)
    module = ReIDLightningModule.load_from_checkpoint(last, load_weights=False, weights_only=True)
    single = _trainer(tmp_path / "single", logger=False)
    (figures,) = single.validate(module, datamodule=dm, verbose=False)
    assert figures["val/mAP"] == pytest.approx(ddp_map[0], abs=1e-5)
    assert figures["val_st/mAP"] == pytest.approx(ddp_st[0], abs=1e-5)
