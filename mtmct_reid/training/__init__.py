"""Training on Lightning: the re-id ``LightningModule`` (:mod:`mtmct_reid.training.module`)."""

from mtmct_reid.retrieval.transit import TRANSIT_FILE
from mtmct_reid.training.module import (
    TEST_FEATURES,
    TEST_JSON,
    TEST_MARKDOWN,
    ReIDLightningModule,
    fit_transit_model,
    format_markdown,
    gather_rows,
    lr_factor,
    part_loss,
)

__all__ = [
    "TEST_FEATURES",
    "TEST_JSON",
    "TEST_MARKDOWN",
    "TRANSIT_FILE",
    "ReIDLightningModule",
    "fit_transit_model",
    "format_markdown",
    "gather_rows",
    "lr_factor",
    "part_loss",
]
