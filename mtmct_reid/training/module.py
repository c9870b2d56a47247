"""Training on Lightning: the re-id ``LightningModule`` with st-ReID validation and test.

- Loss: the sum over parts of the cross-entropy of each part's classifier (PCB: 6 stripes).
- Optimiser: SGD (Nesterov momentum) with two parameter groups, the pretrained backbone at
  ``lr · backbone_lr_mult`` and the new layers at ``lr``; the schedule steps per epoch.
- Validation: flip-summed, part-normalised features of the query and gallery images, gathered from
  every rank (rows put back in order, DDP padding dropped), ranked visually and fused with the
  transit-time model fitted on the training split only: ``val/mAP``, ``val/R1``, ``val/R5`` and
  ``val_st/...``.
- Test: the four st-ReID modes (visual, +st, +rerank, +st+rerank) written as ``test_results.json`` /
  ``test_results.md`` beside the checkpoints, with the features as ``features.npz``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from mtmct_reid._io import write_json, write_text
from mtmct_reid.data.image_size import as_image_size
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.features import feature_metadata, reid_features
from mtmct_reid.featureset import FeatureSet, FeatureSide
from mtmct_reid.models import build_model
from mtmct_reid.retrieval.fusion import DEFAULT_FUSION, FusionParams
from mtmct_reid.retrieval.metrics import PROTOCOLS
from mtmct_reid.retrieval.transit import TRANSIT_FILE, TransitTimeModel
from mtmct_reid.training.functional import (
    fit_transit_model,
    format_markdown,
    gather_rows,
    lr_factor,
    part_loss,
)
from mtmct_reid.training.options import (
    DEFAULT_OPTIMISATION,
    DEFAULT_RERANK,
    DEFAULT_TRANSIT,
    Optimisation,
    ReRanking,
    TransitFit,
    as_group,
    check,
)
from mtmct_reid.validation import as_bool

log = logging.getLogger(__name__)

#: Files written beside the checkpoints (in the logger's version folder).
TEST_JSON = "test_results.json"
TEST_MARKDOWN = "test_results.md"
TEST_FEATURES = "features.npz"


# ----------------------------------------------------------------------------------------------
# The LightningModule


class ReIDLightningModule(L.LightningModule):
    """A re-id model trained with identity classification and validated with st-ReID retrieval.

    Args:
        model: registry name (``pcb``, ``resnet50``, ``densenet121``; see
            :func:`~mtmct_reid.models.available_models`).
        backbone: trunk name, or None for the model's default.
        num_classes: number of training identities (``ReIDDataModule.num_classes``).
        image_size: ``[height, width]`` the network is trained at (recorded for extraction).
        weights: backbone initialisation: ``imagenet``, ``none`` or a state-dict path.
        last_stride: stride of the last backbone stage (1 as in PCB).
        num_parts: PCB stripes (global models have one part whatever it says).
        dropout: dropout of the head.
        bottleneck_dim: head bottleneck width (None: the model's default).
        channels_last: run the network in NHWC layout (faster convolutions on CPUs and GPUs).
        flip_test: add the mirrored image's features at validation/test (the st-ReID feature).
        protocol: ``standard`` or ``streid`` ranking metrics.
        optimisation: optimiser and learning-rate schedule (:class:`Optimisation`).
        fusion: the logistic smoothing of visual and transit-time scores
            (:class:`~mtmct_reid.retrieval.fusion.FusionParams`).
        transit: fitting of the transit-time model (:class:`TransitFit`).
        rerank: re-ranking at test (:class:`ReRanking`).
        load_weights: False builds the backbone without loading ``weights`` (when the state comes
            from a checkpoint anyway); not a hyper-parameter.

    The groups may also be given as mappings of their fields (as a checkpoint stores them).

    Example:
        >>> dm = ReIDDataModule("Market-1501", image_size=(384, 192))      # doctest: +SKIP
        >>> module = ReIDLightningModule("pcb", num_classes=dm.num_classes,  # doctest: +SKIP
        ...                              image_size=dm.image_size, optimisation=Optimisation(lr=0.01))
        >>> L.Trainer(max_epochs=60).fit(module, datamodule=dm)              # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = "pcb",
        backbone: str | None = None,
        num_classes: int | None = None,
        image_size: Sequence[int] = (256, 128),
        weights: str = "imagenet",
        last_stride: int = 1,
        num_parts: int = 6,
        dropout: float = 0.5,
        bottleneck_dim: int | None = None,
        channels_last: bool = True,
        flip_test: bool = True,
        protocol: str = "standard",
        optimisation: Optimisation = DEFAULT_OPTIMISATION,
        fusion: FusionParams = DEFAULT_FUSION,
        transit: TransitFit = DEFAULT_TRANSIT,
        rerank: ReRanking = DEFAULT_RERANK,
        load_weights: bool = True,
    ) -> None:
        super().__init__()
        check(
            num_classes is not None,
            "num_classes is required: the number of training identities (ReIDDataModule.num_classes)",
        )
        height, width = as_image_size(image_size)
        channels_last = as_bool("channels_last", channels_last)
        flip_test = as_bool("flip_test", flip_test)
        check(
            protocol in PROTOCOLS, f"protocol '{protocol}': expected one of {', '.join(PROTOCOLS)}"
        )
        self.optimisation = as_group(Optimisation, optimisation)
        self.fusion = as_group(FusionParams, fusion)
        self.transit = as_group(TransitFit, transit)
        self.rerank = as_group(ReRanking, rerank)
        self.model = build_model(
            model,
            num_classes,
            backbone=backbone,
            weights=weights if load_weights else "none",
            last_stride=last_stride,
            dropout=dropout,
            num_parts=num_parts,
            bottleneck_dim=bottleneck_dim,
        )
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # save_hyperparameters() records these local names as they are when it is called: plain
        # values only (checkpoints are read with weights_only=True), with what the registry
        # resolved (the trunk, the parts, the bottleneck) so that the checkpoint names what was
        # trained and rebuilds it without this class.
        backbone = self.model.backbone_name
        num_classes = int(self.model.config["num_classes"])
        image_size = [height, width]
        weights = str(weights)
        num_parts = int(self.model.num_parts)
        bottleneck_dim = self.model.config.get("bottleneck_dim", bottleneck_dim)
        optimisation, fusion = asdict(self.optimisation), asdict(self.fusion)
        transit, rerank = asdict(self.transit), asdict(self.rerank)
        self.save_hyperparameters(ignore=["load_weights"])
        #: Transit-time model of the training split (fitted in :meth:`setup`), or None.
        self.st_model: TransitTimeModel | None = None
        #: The :class:`EvaluationReport` of the last test run.
        self.test_report: Any = None
        self._eval_rows: list[torch.Tensor] = []
        self._eval_features: list[torch.Tensor] = []

    # ------------------------------------------------------------------------------------------
    # Set-up

    def setup(self, stage: str) -> None:
        """Fit the transit-time model on the datamodule's training split (every rank, milliseconds)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        records = getattr(datamodule, "records", None) if datamodule is not None else None
        if self.st_model is None and records is not None:
            self.st_model = fit_transit_model(
                records,
                bin_width=self.transit.bin_width,
                sigma_bins=self.transit.sigma_bins,
                truncate=self.transit.truncate,
                source=getattr(datamodule, "source", "dataset"),
            )

    def on_train_start(self) -> None:
        # trainer.log_dir broadcasts from rank 0: every rank must ask.
        log_dir = self._log_dir()
        if self.st_model is None or not self.trainer.is_global_zero:
            return
        path = log_dir / TRANSIT_FILE
        self.st_model.save(path)
        log.info("transit-time model of the training split: %s", path)
        if self.trainer.global_step == 0:
            self._log_transit_figure()

    def _log_transit_figure(self) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        if not isinstance(self.logger, TensorBoardLogger):
            return
        from mtmct_reid.report.plots import figure_to_image_array, plot_transit_grid

        image = figure_to_image_array(plot_transit_grid(self.st_model))
        self.logger.experiment.add_image("transit_time/grid", image, 0, dataformats="HWC")

    def _log_dir(self) -> Path:
        log_dir = self.trainer.log_dir
        return Path(log_dir if log_dir is not None else self.trainer.default_root_dir)

    # ------------------------------------------------------------------------------------------
    # Training

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Logits per part (see :meth:`ReIDModel.forward`)."""
        return self.model(self._layout(images))

    def _layout(self, images: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels, _rows = batch
        logits = self(images)
        loss = part_loss(logits, labels, self.optimisation.label_smoothing)
        if self._trainer is None:  # a bare loop (benchmarks) has nowhere to log to
            return loss
        with torch.no_grad():
            # As in the PCB code: the class with the largest summed part probability.
            probabilities = torch.stack([F.softmax(part.float(), dim=1) for part in logits]).sum(0)
            accuracy = (probabilities.argmax(1) == labels).float().mean()
        size = int(labels.numel())
        self.log(
            "train/loss",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=True,
        )
        self.log(
            "train/acc",
            accuracy,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=True,
        )
        groups = self.trainer.optimizers[0].param_groups
        self.log("train/lr", groups[1]["lr"], on_step=True, on_epoch=False, batch_size=size)
        self.log(
            "train/lr_backbone", groups[0]["lr"], on_step=True, on_epoch=False, batch_size=size
        )
        return loss

    def on_train_epoch_end(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        bad = getattr(datamodule, "unreadable_images", None)
        if bad:
            log.warning(
                "%d unreadable training image(s) skipped so far (first: %s); use strict images "
                "to stop on them",
                len(bad),
                bad[0],
            )

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.optimisation
        groups = [
            {
                "params": self.model.backbone_parameters(),
                "lr": hp.lr * hp.backbone_lr_mult,
                "name": "backbone",
            },
            {"params": self.model.head_parameters(), "lr": hp.lr, "name": "head"},
        ]
        optimizer = torch.optim.SGD(
            groups,
            lr=hp.lr,
            momentum=hp.momentum,
            weight_decay=hp.weight_decay,
            nesterov=hp.nesterov,
        )
        if hp.schedule == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, hp.step_size, hp.gamma)
        else:
            options = {
                "schedule": hp.schedule,
                "step_size": hp.step_size,
                "gamma": hp.gamma,
                "warmup_epochs": hp.warmup_epochs,
                "warmup_factor": hp.warmup_factor,
            }

            # A function (not a callable object): the scheduler's state then stores no lambda, and
            # a resumed run rebuilds it from the hyper-parameters.
            def factor(epoch: int) -> float:
                return lr_factor(epoch, **options)

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1},
        }

    # ------------------------------------------------------------------------------------------
    # Validation and test

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Test features [B, P·Dp] of a batch: part features of the image and of its mirror summed,
        each part L2-normalised and scaled by 1/√P (:func:`~mtmct_reid.features.normalize_parts`)."""
        return reid_features(self.model.extract, self._layout(images), flip=self.hparams.flip_test)

    def _collect(self, batch: Sequence[torch.Tensor]) -> None:
        images, _pids, rows = batch
        self._eval_features.append(self.embed(images).cpu())
        self._eval_rows.append(rows.cpu())

    def on_validation_epoch_start(self) -> None:
        self._eval_rows, self._eval_features = [], []

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        self._collect(batch)

    def on_test_epoch_start(self) -> None:
        self._eval_rows, self._eval_features = [], []

    def test_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        self._collect(batch)

    def _gathered(self) -> tuple[np.ndarray, np.ndarray]:
        if self._eval_rows:
            rows, features = torch.cat(self._eval_rows), torch.cat(self._eval_features)
        else:
            rows = torch.zeros(0, dtype=torch.int64)
            features = torch.zeros(0, self.model.feature_dim)
        self._eval_rows, self._eval_features = [], []
        return gather_rows(
            rows, features, self.all_gather, self.trainer.world_size, device=self.device
        )

    def _featureset(self, rows: np.ndarray, features: np.ndarray) -> FeatureSet | None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if not hasattr(datamodule, "val_records") or not hasattr(datamodule, "num_query"):
            raise ReIDError(
                "validation and test need a ReIDDataModule (query + gallery records with cameras "
                "and times); pass datamodule= to the Trainer"
            )
        records: Records = datamodule.val_records
        is_query = rows < datamodule.num_query
        sides = []
        for mask in (is_query, ~is_query):
            part = records.subset(rows[mask])
            sides.append(FeatureSide(features[mask], part.pids, part.cams, part.times, part.paths))
        if not len(sides[0]) or not len(sides[1]):
            log.warning(
                "evaluation saw %d query and %d gallery images; it needs both (is "
                "limit_val_batches/limit_test_batches too small?)",
                len(sides[0]),
                len(sides[1]),
            )
            return None
        metadata = feature_metadata(self.model, self.hparams.image_size, self.hparams.flip_test)
        return FeatureSet(query=sides[0], gallery=sides[1], metadata=metadata)

    def _evaluate(self, features: FeatureSet, *, rerank: bool, stage: str) -> Any:
        from mtmct_reid.retrieval.evaluate import evaluate_featureset
        from mtmct_reid.retrieval.metrics import valid_query_mask

        query, gallery = features.query, features.gallery
        if not valid_query_mask(query.pids, query.cams, gallery.pids, gallery.cams).any():
            log.warning(
                "%s: none of the %d queries evaluated has a match from another camera in the %d "
                "gallery images seen; metrics are 0",
                stage,
                len(query),
                len(gallery),
            )
            return None
        st_model = self.st_model if query.has_times and gallery.has_times else None
        return evaluate_featureset(
            features,
            st_model=st_model,
            rerank=rerank,
            protocol=self.hparams.protocol,
            fusion=self.fusion,
            k1=self.rerank.k1,
            k2=self.rerank.k2,
            lambda_value=self.rerank.lambda_value,
            progress=False,
            source=stage,
        )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return  # a couple of batches: no meaningful ranking (every rank skips the gather)
        rows, features = self._gathered()
        featureset = self._featureset(rows, features)
        report = (
            None
            if featureset is None
            else self._evaluate(featureset, rerank=False, stage="validation")
        )
        # Every rank holds the same gathered features and computes the same figures; val/mAP is
        # always logged so that checkpointing on it never finds it missing.
        figures = {"val/mAP": 0.0, "val/R1": 0.0, "val/R5": 0.0, "val/R10": 0.0}
        if report is not None:
            for mode, prefix in (("visual", "val"), ("visual+st", "val_st")):
                result = report.modes.get(mode)
                if result is not None:
                    figures.update(
                        {
                            f"{prefix}/mAP": result.mAP,
                            f"{prefix}/R1": result.R1,
                            f"{prefix}/R5": result.R5,
                            f"{prefix}/R10": result.R10,
                        }
                    )
        self.log_dict({k: float(v) for k, v in figures.items()}, prog_bar=False, sync_dist=True)
        shown = {
            k: figures[k] for k in ("val/mAP", "val/R1", "val_st/mAP", "val_st/R1") if k in figures
        }
        if self.trainer.is_global_zero:
            log.info(
                "epoch %d validation: %s",
                self.current_epoch,
                ", ".join(f"{k} {100 * v:.2f}%" for k, v in shown.items()),
            )

    def on_test_epoch_end(self) -> None:
        rows, features = self._gathered()
        log_dir = self._log_dir()
        featureset = self._featureset(rows, features)
        if featureset is None:
            raise ReIDError("test: the test images did not cover both query and gallery")
        report = self._evaluate(featureset, rerank=self.rerank.at_test, stage="test")
        if report is None:
            raise ReIDError("test: no query has a match from another camera in the gallery")
        self.test_report = report
        figures = {}
        for mode, result in report.modes.items():
            for key, value in result.as_dict().items():
                if key != "queries":
                    figures[f"test/{mode}/{key}"] = float(value)
        self.log_dict(figures, sync_dist=True)
        if self.trainer.is_global_zero:
            write_json(log_dir / TEST_JSON, report.as_json())
            write_text(log_dir / TEST_MARKDOWN, format_markdown(report))
            featureset.save(log_dir / TEST_FEATURES)
            log.info("test results: %s, %s", log_dir / TEST_JSON, log_dir / TEST_FEATURES)
