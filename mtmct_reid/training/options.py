"""The module's option groups: optimisation, transit-time fitting and re-ranking (the fusion group is
:class:`~mtmct_reid.retrieval.fusion.FusionParams`). Frozen dataclasses, so that Lightning's CLI
reads them from ``--config`` / ``--model.init_args.optimisation.lr``, checked and normalised on
construction (YAML's ``"5e-4"`` becomes 0.0005)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from mtmct_reid.errors import ReIDError
from mtmct_reid.validation import as_bool, as_float, positive_int

SCHEDULES = ("step", "warmup_step")


def check(condition: bool, message: str) -> None:
    """Raise :class:`ReIDError` with ``message`` unless ``condition``."""
    if not condition:
        raise ReIDError(message)


@dataclass(frozen=True)
class Optimisation:
    """SGD with two parameter groups and a per-epoch learning-rate schedule.

    Args:
        lr: learning rate of the new layers.
        backbone_lr_mult: the backbone's learning rate relative to ``lr``.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        nesterov: Nesterov momentum.
        label_smoothing: label smoothing of the cross-entropies.
        schedule: ``step`` (× ``gamma`` every ``step_size`` epochs) or ``warmup_step`` (the same
            after a linear warm-up from ``warmup_factor`` over ``warmup_epochs``).
        step_size: epochs between learning-rate drops.
        gamma: learning-rate drop factor.
        warmup_epochs: warm-up length of ``warmup_step``.
        warmup_factor: starting factor of the warm-up.

    Example:
        >>> Optimisation(lr=0.01).backbone_lr_mult
        0.1
    """

    lr: float = 0.1
    backbone_lr_mult: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    label_smoothing: float = 0.0
    schedule: str = "step"
    step_size: int = 40
    gamma: float = 0.1
    warmup_epochs: int = 5
    warmup_factor: float = 0.1

    def __post_init__(self) -> None:
        _normalise(
            self,
            lr=lambda v: as_float("lr", v, 0, low_open=True),
            backbone_lr_mult=lambda v: as_float("backbone_lr_mult", v, 0),
            momentum=lambda v: as_float("momentum", v, 0),
            weight_decay=lambda v: as_float("weight_decay", v, 0),
            nesterov=lambda v: as_bool("nesterov", v),
            label_smoothing=lambda v: as_float("label_smoothing", v, 0, 1, high_open=True),
            step_size=lambda v: positive_int("step_size", v),
            gamma=lambda v: as_float("gamma", v, 0, 1, low_open=True),
            warmup_epochs=lambda v: positive_int("warmup_epochs", v),
            warmup_factor=lambda v: as_float("warmup_factor", v, 0, 1, low_open=True),
        )
        check(not (self.nesterov and self.momentum == 0), "nesterov needs momentum > 0")
        check(
            self.schedule in SCHEDULES,
            f"schedule '{self.schedule}': expected one of {', '.join(SCHEDULES)}",
        )


@dataclass(frozen=True)
class TransitFit:
    """How the transit-time model of the training split is fitted.

    Args:
        bin_width: histogram bin width (frames).
        sigma_bins: smoothing σ in bins.
        truncate: smoothing cut-off in σ.

    Example:
        >>> TransitFit(bin_width=50.0).sigma_bins
        50.0
    """

    bin_width: float = 100.0
    sigma_bins: float = 50.0
    truncate: float = 3.0

    def __post_init__(self) -> None:
        for name in ("bin_width", "sigma_bins", "truncate"):
            value = as_float(f"transit {name}", getattr(self, name), 0, low_open=True)
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class ReRanking:
    """k-reciprocal re-ranking at test time.

    Args:
        at_test: add the re-ranked modes to the test (``visual+rerank``, ``visual+st+rerank``).
        k1: size of the k-reciprocal neighbourhoods.
        k2: size of the query expansion.
        lambda_value: weight of the original distance against the Jaccard distance.

    Example:
        >>> ReRanking(k1=10).k2
        6
    """

    at_test: bool = True
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3

    def __post_init__(self) -> None:
        _normalise(
            self,
            at_test=lambda v: as_bool("rerank at_test", v),
            k1=lambda v: positive_int("rerank k1", v),
            k2=lambda v: positive_int("rerank k2", v),
            lambda_value=lambda v: as_float("rerank lambda_value", v, 0, 1),
        )


def _normalise(group: Any, **checks: Callable[[Any], Any]) -> None:
    """Check each field of a frozen group and store it as its plain type (``"5e-4"`` → 0.0005)."""
    for name, check in checks.items():
        object.__setattr__(group, name, check(getattr(group, name)))


def as_group(kind: type, value: Any) -> Any:
    """A parameter group given as its dataclass, or as the mapping a checkpoint stores."""
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        known = {f.name for f in fields(kind)}
        unknown = sorted(set(value) - known)
        check(not unknown, f"{kind.__name__}: unknown option(s) {', '.join(map(str, unknown))}")
        return kind(**value)
    raise ReIDError(f"expected a {kind.__name__} or a mapping of its options, got {value!r}")


#: The groups' defaults (frozen, so one instance serves every module).
DEFAULT_OPTIMISATION = Optimisation()
DEFAULT_TRANSIT = TransitFit()
DEFAULT_RERANK = ReRanking()
