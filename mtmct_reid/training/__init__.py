"""Training on Lightning: the re-id ``LightningModule`` (:mod:`mtmct_reid.training.module`), the
pieces it calls (:mod:`mtmct_reid.training.functional`), its option groups and command line."""

from mtmct_reid.retrieval.transit import TRANSIT_FILE
from mtmct_reid.training.functional import (
    fit_transit_model,
    format_markdown,
    gather_rows,
    lr_factor,
    part_loss,
)
from mtmct_reid.training.module import (
    TEST_FEATURES,
    TEST_JSON,
    TEST_MARKDOWN,
    ReIDLightningModule,
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
