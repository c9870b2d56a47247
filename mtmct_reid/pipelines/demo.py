"""The demo pipeline: st-ReID end to end on a generated camera network, in minutes on a laptop CPU.

:func:`run_demo` runs the toolkit's stages in order, one function each, and writes a report a person
can read:

1. **network**: a synthetic camera network in the Market-1501 layout (:mod:`mtmct_reid.data.synth`),
   with groups of look-alikes whose walks are far apart in time: appearance alone confuses them,
   timing does not.
2. **training**: a small PCB model (ResNet-18 trunk, random initialisation, 128×64 input) trained with
   the module and the trainer of ``mtmct-reid train`` for a few epochs; TensorBoard logs under
   ``lightning_logs/``.
3. **transit-time model**: the one the training module fitted on the training split's labels only.
4. **features**: query and gallery features of the test identities.
5. **evaluation**: the four st-ReID modes (visual, +ST, +re-rank, +ST+re-rank).
6. **report**: ``report.md`` (table, stage times, pictures, the TensorBoard command), ``report.json``
   (the evaluation's ``modes`` plus ``seconds`` per stage), the fitted transit-time distributions against
   the generated ground truth, and rank lists of a few queries, visual only beside fused.

Example:
    >>> result = run_demo("demo_out", DemoConfig(epochs=2))  # doctest: +SKIP
    >>> result.evaluation.modes["visual+st"].R1              # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtmct_reid._io import write_json, write_text
from mtmct_reid.errors import ReIDError, first_line
from mtmct_reid.report.demo_report import (
    DEMO_FORMAT,
    FEATURES_NAME,
    STAGES,
    TRANSIT_NAME,
    TRANSIT_PLOT_NAME,
    choose_rank_list_queries,
    demo_json_report,
    demo_markdown_report,
    network_summary,
)
from mtmct_reid.validation import as_float, as_int, typed_options

if TYPE_CHECKING:
    from mtmct_reid.data.records import Records
    from mtmct_reid.data.synth import SynthConfig
    from mtmct_reid.featureset import FeatureSet
    from mtmct_reid.retrieval.evaluate import EvaluationReport
    from mtmct_reid.retrieval.transit import TransitTimeModel

log = logging.getLogger(__name__)

#: File that marks a folder as the demo's output (so a later run may write into it again).
MARKER_NAME = ".mtmct-reid-demo"
NETWORK_FOLDER = "network"
LOGS_FOLDER = "lightning_logs"
RANK_LIST_PREFIX = "rank_list"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"
TRACKING_FOLDER = "tracking"


@dataclass(frozen=True)
class DemoConfig:
    """What the demo generates and trains; the defaults take a few minutes on a 2-core CPU.

    Args:
        ids: identities of the synthetic network (half train, half test).
        cameras: cameras of the network (2..9).
        epochs: training epochs.
        seed: seed of the network and of training.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        image_size: (height, width) of the generated images and of the network input.
        model: re-id model name (``pcb``, ``resnet50``, ``densenet121``).
        backbone: trunk of the model (random initialisation: the demo never downloads weights).
        batch_size: training batch size.
        lr: learning rate (the same for trunk and head: nothing is pretrained).
        num_workers: image decoding worker processes.
        rank_list_queries: queries drawn as rank lists.
        rank_list_length: gallery images per rank list.
        synth: extra :class:`~mtmct_reid.data.synth.SynthConfig` fields (e.g.
            ``{"lookalike_fraction": 0.8}``).
        tracking: also track people across a small synthetic video network with the trained model
            and the fitted transit-time model (the ``tracking`` stage).
        video: fields of that video network that differ from
            :meth:`~mtmct_reid.mtmc.synth_video.VideoSynthConfig.small` (e.g. ``{"num_ids": 8}``).
        force: write into an existing non-empty folder that is not a previous demo's output.
        progress: show progress bars.

    Example:
        >>> DemoConfig(ids=60, epochs=2).image_size
        (128, 64)
    """

    ids: int = 200
    cameras: int = 6
    epochs: int = 12
    seed: int = 0
    device: str = "auto"
    image_size: tuple[int, int] = (128, 64)
    model: str = "pcb"
    backbone: str = "resnet18"
    batch_size: int = 32
    lr: float = 0.05
    num_workers: int = 0
    rank_list_queries: int = 4
    rank_list_length: int = 5
    synth: Mapping[str, Any] = field(default_factory=dict)
    tracking: bool = True
    video: Mapping[str, Any] = field(default_factory=dict)
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ReIDError` naming the first option out of range (the one input policy,
        :mod:`mtmct_reid.validation`); numbers are kept as plain ``int``/``float``, so ``"12"``
        read from a config file is 12. Called on construction."""
        for name, low in (
            ("ids", 4),
            ("cameras", 2),
            ("epochs", 1),
            ("batch_size", 2),
            ("rank_list_queries", 0),
            ("rank_list_length", 1),
            ("num_workers", 0),
            ("seed", 0),
        ):
            object.__setattr__(self, name, as_int(f"demo {name}", getattr(self, name), low))
        lr = as_float("demo lr", self.lr, 0, 10, low_open=True, high_open=True)
        object.__setattr__(self, "lr", lr)
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ReIDError(f"demo image_size={self.image_size!r} (expected (height, width) >= 16)")


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` produced.

    Args:
        out_dir: the output folder.
        report_md: the Markdown report.
        report_json: the JSON report.
        evaluation: metrics of the four modes.
        seconds: wall seconds per stage (see :data:`STAGES`) and ``total``.
        checkpoint: the trained model's checkpoint.
        log_dir: the Lightning log folder of this run (TensorBoard).
        pictures: the pictures written.
    """

    out_dir: Path
    report_md: Path
    report_json: Path
    evaluation: EvaluationReport
    seconds: dict[str, float]
    checkpoint: Path
    log_dir: Path
    pictures: list[Path]


def run_demo(out_dir: str | os.PathLike, config: DemoConfig | None = None) -> DemoResult:
    """Run st-ReID end to end on a synthetic network and write the report into ``out_dir``.

    An existing network in ``out_dir/network`` generated with the same settings is reused; the model
    is trained again on every run (a new ``lightning_logs/version_N``).

    Args:
        out_dir: output folder; new, empty, or a previous demo's output (else ``config.force``).
        config: the demo's settings (:class:`DemoConfig`).

    Returns:
        A :class:`DemoResult` with the metrics, stage times and file paths.

    Raises:
        ReIDError: a non-empty folder that is not the demo's (without ``force``), bad settings, or
            any stage's own input errors.

    Example:
        >>> result = run_demo("demo_out")                      # doctest: +SKIP
        >>> print(result.report_md.read_text())                # doctest: +SKIP
    """
    config = config or DemoConfig()
    config.validate()
    check_device(config.device)  # an absent GPU fails before the network is generated
    synth = _synth_config(config)  # bad synth options fail before anything is written
    video = _video_config(config) if config.tracking else None
    out = Path(out_dir)
    _claim_out_dir(out, config.force)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    steps = iter(range(1, len(STAGES) + 1))

    @contextmanager
    def stage(name: str, what: str) -> Iterator[None]:
        log.info("demo [%d/%d] %s: %s", next(steps), len(STAGES), name, what)
        tic = time.perf_counter()
        yield
        seconds[name] = time.perf_counter() - tic
        log.info("demo: %s done in %.1f s", name, seconds[name])

    with stage("network", f"synthetic network of {config.ids} ids, {config.cameras} cameras"):
        network, records, generated = _network(out / NETWORK_FOLDER, synth, config.progress)

    with stage("training", f"{config.model}/{config.backbone}, {config.epochs} epochs"):
        trained = train_demo_model(records, out / LOGS_FOLDER, config)
        checkpoint, log_dir, model = trained.checkpoint, trained.log_dir, trained.model

    with stage("transit-time model", "the training module's, fitted on the train split's labels"):
        st_model = trained.st_model
        st_model.save(out / TRANSIT_NAME)

    with stage("features", "query and gallery features of the test identities"):
        from mtmct_reid.features import extract_featureset

        features = extract_featureset(
            model,
            records,
            config.image_size,
            device=config.device,
            progress=config.progress,
            metadata={"checkpoint": str(checkpoint)},
        )
        features.save(out / FEATURES_NAME)

    with stage("evaluation", "visual, +ST, +re-rank, +ST+re-rank"):
        from mtmct_reid.retrieval.evaluate import evaluate_featureset

        evaluation = evaluate_featureset(
            features, st_model=st_model, rerank=True, progress=config.progress
        )
        log.info("demo results (%%):\n%s", evaluation.format_table())

    tracking: dict[str, Any] | None = None
    if config.tracking:
        with stage("tracking", "small synthetic video network, ByteTrack, cross-camera ids"):
            tracking = _tracking(out / TRACKING_FOLDER, checkpoint, config, video)

    with stage("report", "pictures, report.md and report.json"):
        transit = _transit_picture(st_model, network, out / TRANSIT_PLOT_NAME)
        rank_lists = _rank_list_pictures(features, st_model, out, config)
        pictures = [transit, *rank_lists]
        if tracking is not None:
            pictures += tracking["pictures"]
        summary = network_summary(records, generated)
    # Written once every stage has its time (writing two small text files takes milliseconds).
    seconds["total"] = time.perf_counter() - started
    settings = json.loads(json.dumps(asdict(config), default=str))
    write_json(
        out / REPORT_JSON,
        demo_json_report(
            settings, evaluation, seconds, summary, checkpoint, out, pictures, tracking
        ),
    )
    write_text(
        out / REPORT_MD,
        demo_markdown_report(
            settings, evaluation, seconds, summary, checkpoint, log_dir, out, rank_lists, tracking
        ),
    )
    log.info(
        "demo: wrote %s and %s in %.0f s", out / REPORT_MD, out / REPORT_JSON, seconds["total"]
    )
    return DemoResult(
        out_dir=out,
        report_md=out / REPORT_MD,
        report_json=out / REPORT_JSON,
        evaluation=evaluation,
        seconds=seconds,
        checkpoint=checkpoint,
        log_dir=log_dir,
        pictures=pictures,
    )


# ---------------------------------------------------------------------------------------------
# Output folder and network


def _claim_out_dir(out: Path, force: bool) -> None:
    """Refuse a non-empty folder that is not the demo's own output, then mark it as the demo's."""
    if out.exists() and not out.is_dir():
        raise ReIDError(f"--out {out}: exists and is not a folder")
    marker = out / MARKER_NAME
    if out.is_dir() and any(out.iterdir()) and not marker.is_file() and not force:
        raise ReIDError(
            f"--out {out}: folder exists, is not empty and is not a previous demo's output "
            "(choose another folder, or pass --force to write into it)"
        )
    write_json(marker, {"format": DEMO_FORMAT})


def _synth_config(config: DemoConfig) -> SynthConfig:
    from mtmct_reid.data.synth import SynthConfig

    _check_synth_kinds(SynthConfig, config.synth)
    try:
        synth = SynthConfig(
            **{
                # Each option typed like its default: "abc" for a number is one line, not a
                # TypeError deep inside validation.
                **typed_options(SynthConfig(), config.synth, "demo --synth"),
                "num_ids": config.ids,
                "num_cameras": config.cameras,
                "seed": config.seed,
                "image_size": tuple(config.image_size),
            }
        )
        synth.validate()
    except (TypeError, ValueError) as exc:  # a value of the wrong kind ("abc" for a fraction)
        raise ReIDError(f"demo synth options: {first_line(exc)}") from None
    return synth


def _check_synth_kinds(kind: type, options: Mapping[str, Any]) -> None:
    """Each option of the kind its default has: a number for a number, a list for a pair."""
    defaults = {
        f.name: f.default if f.default is not MISSING else f.default_factory()
        for f in fields(kind)
        if f.default is not MISSING or f.default_factory is not MISSING
    }
    for name, value in options.items():
        default = defaults.get(name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not number:
            raise ReIDError(f"--synth {name}={value!r}: expected a number")
        if isinstance(default, tuple) and not isinstance(value, (tuple, list)):
            example = json.dumps(list(default))
            raise ReIDError(f"--synth {name}={value!r}: expected a list, e.g. {name}={example}")


def _network(root: Path, synth: SynthConfig, progress: bool) -> tuple[Path, Records, bool]:
    """The network at ``root``: reused when generated with the same settings, else generated."""
    from mtmct_reid.data.readers import read_dataset
    from mtmct_reid.data.synth import GROUND_TRUTH_NAME, generate_network, load_ground_truth

    generated = True
    if (root / GROUND_TRUTH_NAME).is_file():
        try:
            previous = load_ground_truth(root).get("config")
        except ReIDError:
            previous = None
        if previous == synth.to_json():
            log.info("demo: reusing the network in %s (same settings)", root)
            generated = False
    if generated:
        summary = generate_network(root, config=synth, overwrite=True, progress=progress or None)
        log.info("demo: %s", summary.describe())
    return root, read_dataset(root, layout="market1501"), generated


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class TrainedModel:
    """What the training stage hands on.

    Args:
        checkpoint: the last checkpoint.
        log_dir: this run's Lightning log folder.
        model: the trained :class:`~mtmct_reid.models.ReIDModel`, in eval mode on the CPU.
        st_model: the transit-time model the training module fitted on the training split.
    """

    checkpoint: Path
    log_dir: Path
    model: Any
    st_model: TransitTimeModel


def check_device(device: str) -> Any:
    """The demo's torch device, refused at once when this machine does not have it.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
    """
    import torch

    from mtmct_reid.features import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ReIDError(
            f"--device {device}: this machine has {torch.cuda.device_count()} visible GPU(s)"
        )
    return resolved


def train_demo_model(records: Records, log_root: Path, config: DemoConfig) -> TrainedModel:
    """Train the demo's model with the module and the trainer of ``mtmct-reid train``.

    The same :class:`~mtmct_reid.training.module.ReIDLightningModule`: cross-entropy summed over the
    parts, SGD with Nesterov momentum, one learning rate for trunk and head (nothing is pretrained)
    divided by 10 for the last quarter of the epochs, channels-last; the same Trainer
    (:func:`~mtmct_reid.training.cli.build_trainer`). Validation runs a few times (visual and
    ST-fused mAP/R1 in TensorBoard), so the curves show both.

    Args:
        records: the network's records (``train`` to learn; ``query``/``gallery`` to validate).
        log_root: folder of the Lightning logs (a new ``version_N`` inside it).
        config: epochs, model, backbone, batch size, learning rate, device, seed.

    Returns:
        The last checkpoint, the log folder, the trained model and the fitted transit-time model.

    Example:
        >>> trained = train_demo_model(records, Path("demo/lightning_logs"), DemoConfig())  # doctest: +SKIP
    """
    import lightning as L

    from mtmct_reid.data.datamodule import ReIDDataModule
    from mtmct_reid.training.cli import build_trainer
    from mtmct_reid.training.module import ReIDLightningModule
    from mtmct_reid.training.options import Optimisation, ReRanking

    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = ReIDDataModule(
        records=records,
        image_size=tuple(config.image_size),
        batch_size=config.batch_size,
        test_batch_size=128,
        num_workers=config.num_workers,
        seed=config.seed,
    )
    if datamodule.num_classes < 2:
        raise ReIDError(
            f"demo: the training split has {datamodule.num_classes} identities; at least 2 are "
            "needed"
        )
    module = ReIDLightningModule(
        model=config.model,
        backbone=config.backbone,
        num_classes=datamodule.num_classes,
        image_size=list(config.image_size),
        weights="none",
        optimisation=Optimisation(
            lr=float(config.lr),
            backbone_lr_mult=1.0,
            step_size=max(1, round(0.75 * config.epochs)),
        ),
        rerank=ReRanking(at_test=False),
    )
    device = check_device(config.device)
    trainer, checkpoints = build_trainer(
        log_root.parent,
        progress=config.progress,
        max_epochs=config.epochs,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
        check_val_every_n_epoch=max(1, config.epochs // 3),
        num_sanity_val_steps=0,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    trainer.fit(module, datamodule=datamodule)
    log_dir = Path(trainer.log_dir)
    checkpoint = Path(checkpoints.last_model_path)
    if not checkpoint.is_file():
        raise ReIDError(f"demo: training wrote no checkpoint in {log_dir}")
    if module.st_model is None:
        raise ReIDError(
            f"demo: the network's training split gave no transit-time model ({log_dir})"
        )
    if datamodule.unreadable_images:
        log.warning(
            "demo: %d unreadable training images were skipped", len(datamodule.unreadable_images)
        )
    return TrainedModel(checkpoint, log_dir, module.model.cpu().eval(), module.st_model)


# ---------------------------------------------------------------------------------------------
# Pictures


def _ground_truth_density(network: Path) -> Callable[[int, int, np.ndarray], np.ndarray | None]:
    """``(later, earlier, dt) -> density`` from the network's ground truth, all pairs computed once."""
    from mtmct_reid.data.synth import load_ground_truth, transit_ground_truth

    data = load_ground_truth(network)
    cache: dict[bytes, dict[tuple[int, int], np.ndarray]] = {}

    def density(later: int, earlier: int, deltas: np.ndarray) -> np.ndarray | None:
        key = np.asarray(deltas, dtype=np.float64).tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = transit_ground_truth(data, deltas)
        return cache[key].get((int(later), int(earlier)))

    return density


def _transit_picture(st_model: TransitTimeModel, network: Path, out: Path) -> Path:
    from mtmct_reid.report.plots import plot_transit_grid

    plot_transit_grid(st_model, ground_truth=_ground_truth_density(network), out=out)
    return out


def _rank_list_pictures(
    features: FeatureSet, st_model: TransitTimeModel, out: Path, config: DemoConfig
) -> list[Path]:
    from mtmct_reid.report.plots import plot_rank_lists, search_result_row
    from mtmct_reid.retrieval.search import search_gallery

    for old in out.glob(f"{RANK_LIST_PREFIX}_*.png"):
        old.unlink()
    if config.rank_list_queries == 0:
        return []
    query = features.query
    labelled = np.flatnonzero(query.pids > 0)
    common = {
        "top_k": config.rank_list_length,
        "query_pids": query.pids[labelled],
    }
    args = (query.features[labelled], query.cams[labelled], query.times[labelled], features.gallery)
    visual = search_gallery(*args, **common)
    fused = search_gallery(*args, st_model=st_model, **common)
    pictures = []
    for number, index in enumerate(
        choose_rank_list_queries(visual, fused, config.rank_list_queries), start=1
    ):
        query_path = query.paths[int(labelled[index])]
        rows = [search_result_row(result, query_path) for result in (visual[index], fused[index])]
        path = out / f"{RANK_LIST_PREFIX}_{number}.png"
        plot_rank_lists(rows, out=path, row_titles=["visual", "visual+st"])
        pictures.append(path)
    return pictures


# ---------------------------------------------------------------------------------------------
# Multi-camera tracking


def _video_config(config: DemoConfig) -> Any:
    """The video network's settings: ``VideoSynthConfig.small()`` with ``config.video`` on top;
    unknown or bad fields fail here, before the demo trains anything."""
    import dataclasses

    from mtmct_reid.mtmc.synth_video import VideoSynthConfig

    known = {f.name for f in dataclasses.fields(VideoSynthConfig)}
    unknown = sorted(set(config.video) - known)
    if unknown:
        raise ReIDError(
            f"demo video option {unknown[0]!r} is not a VideoSynthConfig field "
            f"(expected one of: {', '.join(sorted(known))})"
        )
    video = VideoSynthConfig.small(seed=config.seed, **dict(config.video))
    video.validate()
    return video


def _tracking(folder: Path, checkpoint: Path, config: DemoConfig, video: Any) -> dict[str, Any]:
    """Track people across a small synthetic video network with the demo's model; the transit-time
    model is fitted on that network's labelled training period."""
    from mtmct_reid.mtmc.modes import demo_tracking

    return demo_tracking(
        folder,
        checkpoint,
        seed=config.seed,
        device=config.device,
        progress=config.progress,
        config=video,
    )
