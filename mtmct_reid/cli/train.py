"""``mtmct-reid train``: train a re-id model with Lightning, validate it with st-ReID retrieval.

The configuration has four parts, as a Lightning CLI config does: ``model`` (the
:class:`~mtmct_reid.training.ReIDLightningModule` options), ``data`` (the
:class:`~mtmct_reid.data.datamodule.ReIDDataModule` options), ``trainer`` (``lightning.Trainer``
options) and top-level keys (``seed_everything``, ``ckpt_path``, ``save_distribution``, ``test``).
Values come from the defaults, then each ``--config`` YAML in order, then the flags. A resumed run
starts from the configuration saved with the checkpoint it resumes.

Output: ``<root>/lightning_logs/version_N/`` with ``checkpoints/`` (``last.ckpt`` and the best by
``val/mAP``), ``hparams.yaml``, ``config.yaml``, TensorBoard events, ``transit_time.npz`` (the
transit-time model of the training split) and, after the test, ``test_results.json`` / ``.md`` and
``features.npz``.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import logging
import re
import warnings
from pathlib import Path
from typing import Any

from mtmct_reid.cli import add_layout_arguments
from mtmct_reid.errors import ReIDError

log = logging.getLogger(__name__)

SECTIONS = ("model", "data", "trainer")
TOP_LEVEL_DEFAULTS: dict[str, Any] = {
    "seed_everything": 0,
    "ckpt_path": None,
    "save_distribution": None,
    "test": True,
}
#: Trainer options of the default configuration (any other ``lightning.Trainer`` option may be set).
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 60,
    "accelerator": "auto",
    "devices": "auto",
    "strategy": "auto",
    "precision": "32-true",
    "default_root_dir": ".",
    "limit_train_batches": None,
    "limit_val_batches": None,
    "limit_test_batches": None,
    "check_val_every_n_epoch": 1,
    "log_every_n_steps": 1,
    "accumulate_grad_batches": 1,
    "gradient_clip_val": None,
    "sync_batchnorm": False,
    "deterministic": None,
    "benchmark": None,
    "enable_progress_bar": True,
}
#: Trainer options the command sets itself.
_TRAINER_RESERVED = ("logger", "callbacks", "plugins", "enable_checkpointing", "barebones")
#: Module/datamodule arguments the command fills in (not configurable).
_MODEL_RESERVED = ("self", "num_classes", "image_size", "load_weights")
_DATA_RESERVED = ("self", "records")
CONFIG_FILE = "config.yaml"

#: argparse destination → (section or None for top level, key).
_FLAG_TARGETS: dict[str, tuple[str | None, str]] = {
    "data_dir": ("data", "data_dir"),
    "layout": ("data", "layout"),
    "pattern": ("data", "pattern"),
    "image_size": ("data", "image_size"),
    "batch_size": ("data", "batch_size"),
    "num_workers": ("data", "num_workers"),
    "sampler": ("data", "sampler"),
    "num_instances": ("data", "num_instances"),
    "strict_images": ("data", "strict_images"),
    "model": ("model", "model"),
    "backbone": ("model", "backbone"),
    "weights": ("model", "weights"),
    "lr": ("model", "lr"),
    "max_epochs": ("trainer", "max_epochs"),
    "devices": ("trainer", "devices"),
    "accelerator": ("trainer", "accelerator"),
    "strategy": ("trainer", "strategy"),
    "precision": ("trainer", "precision"),
    "limit_train_batches": ("trainer", "limit_train_batches"),
    "limit_val_batches": ("trainer", "limit_val_batches"),
    "default_root_dir": ("trainer", "default_root_dir"),
    "seed": (None, "seed_everything"),
    "ckpt_path": (None, "ckpt_path"),
    "save_distribution": (None, "save_distribution"),
    "test": (None, "test"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a re-id model (PCB, ResNet50, DenseNet121) with Lightning",
        description=(
            "Train a re-id model on the train split of a dataset (identity classification), "
            "validating each epoch on query/gallery with mAP/CMC, visually and fused with the "
            "transit-time model of the training split. Writes <root>/lightning_logs/version_N/ "
            "with checkpoints (last.ckpt, best by val/mAP), hparams.yaml, config.yaml, TensorBoard "
            "events, transit_time.npz and, after the test, test_results.json/.md and features.npz. "
            "Options not given as flags go in a --config YAML with sections model, data, trainer "
            "(see --print-config). Resume an interrupted run with --ckpt-path last."
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        metavar="YAML",
        help="configuration file (sections model, data, trainer; repeatable, later ones win; "
        "flags override them)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration and exit"
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default=None, help="dataset root folder (or manifest .csv)")
    add_layout_arguments(data)
    data.add_argument(
        "--image-size", default=None, metavar="HxW", help="network input size, e.g. 384x192"
    )
    data.add_argument("--batch-size", type=int, default=None, help="images per batch and device")
    data.add_argument("--num-workers", type=int, default=None, help="image decoding workers")
    data.add_argument(
        "--sampler", choices=("random", "identity"), default=None, help="batch sampling"
    )
    data.add_argument(
        "--num-instances", type=int, default=None, help="images per identity (identity sampler)"
    )
    data.add_argument(
        "--strict-images",
        action="store_const",
        const=True,
        default=None,
        help="stop at the first unreadable image instead of skipping it",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=None, help="pcb, resnet50, densenet121")
    model.add_argument("--backbone", default=None, help="trunk (default: the model's own)")
    model.add_argument(
        "--weights", default=None, help="imagenet, none, or a state-dict file for the backbone"
    )
    model.add_argument("--lr", type=float, default=None, help="learning rate of the new layers")
    trainer = parser.add_argument_group("trainer")
    trainer.add_argument("--max-epochs", type=int, default=None, help="epochs to train (60)")
    trainer.add_argument("--devices", default=None, help="auto, a count (2) or a list (0,1)")
    trainer.add_argument("--accelerator", default=None, help="auto, cpu, gpu, ...")
    trainer.add_argument("--strategy", default=None, help="auto, ddp, ddp_spawn, ...")
    trainer.add_argument(
        "--precision", default=None, help="32-true, bf16-mixed, 16-mixed, ... (32-true)"
    )
    trainer.add_argument(
        "--limit-train-batches", default=None, help="batches per epoch (int) or a fraction"
    )
    trainer.add_argument(
        "--limit-val-batches", default=None, help="validation batches (int) or a fraction"
    )
    trainer.add_argument(
        "--default-root-dir",
        "--out",
        dest="default_root_dir",
        default=None,
        help="folder holding lightning_logs/ (default: the current folder)",
    )
    trainer.add_argument(
        "--ckpt-path",
        default=None,
        help="resume: 'last' (the newest version's last.ckpt under the root) or a checkpoint path",
    )
    trainer.add_argument("--seed", type=int, default=None, help="global seed (0)")
    parser.add_argument(
        "--save-distribution",
        default=None,
        metavar="PATH",
        help="also write the training split's transit-time model (.npz) here",
    )
    parser.add_argument(
        "--skip-test",
        dest="test",
        action="store_const",
        const=False,
        default=None,
        help="do not run the four-mode test after training",
    )
    parser.set_defaults(func=run_train)


# ----------------------------------------------------------------------------------------------
# Configuration


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _init_defaults(cls: type, reserved: tuple[str, ...]) -> dict[str, Any]:
    return {
        name: _plain(param.default)
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if name not in reserved and param.kind is not inspect.Parameter.VAR_KEYWORD
    }


def default_config() -> dict[str, Any]:
    """The configuration used when neither a file nor a flag sets an option.

    Example:
        >>> default_config()["model"]["model"]  # doctest: +SKIP
        'pcb'
    """
    from mtmct_reid.data.datamodule import ReIDDataModule
    from mtmct_reid.training import ReIDLightningModule

    data = _init_defaults(ReIDDataModule, _DATA_RESERVED)
    data["image_size"] = None  # the model's own (PCB 384x192, global models 256x128)
    return {
        "seed_everything": TOP_LEVEL_DEFAULTS["seed_everything"],
        "model": _init_defaults(ReIDLightningModule, _MODEL_RESERVED),
        "data": data,
        "trainer": dict(TRAINER_DEFAULTS),
        **{k: v for k, v in TOP_LEVEL_DEFAULTS.items() if k != "seed_everything"},
    }


def _trainer_options() -> set[str]:
    import lightning as L

    names = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    return names - set(_TRAINER_RESERVED)


def read_config(path: Path) -> dict[str, Any]:
    """Read a YAML configuration; errors name the file."""
    import yaml

    if not path.is_file():
        raise ReIDError(f"--config {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ReIDError(f"--config {path}: not valid YAML{where} ({problem})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReIDError(f"--config {path}: cannot read ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ReIDError(
            f"--config {path}: expected a mapping with sections {', '.join(SECTIONS)}, "
            f"found {type(data).__name__}"
        )
    return data


def merge_config(base: dict[str, Any], update: dict[str, Any], source: str) -> dict[str, Any]:
    """``base`` with the options of ``update`` applied; unknown sections or options are errors.

    Sections may be written Lightning-CLI style (``model: {init_args: {...}}``).
    """
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if key in SECTIONS:
            if isinstance(value, dict) and "init_args" in value:
                value = value["init_args"] or {}
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ReIDError(f"{source}: section '{key}' must be a mapping of options")
            known = _trainer_options() if key == "trainer" else set(merged[key])
            for option, option_value in value.items():
                if option not in known:
                    raise ReIDError(
                        f"{source}: unknown option '{key}.{option}'; known: "
                        f"{', '.join(sorted(known))}"
                    )
                merged[key][option] = _plain(option_value)
        elif key in merged and key not in SECTIONS:
            merged[key] = _plain(value)
        else:
            raise ReIDError(
                f"{source}: unknown key '{key}'; expected the sections {', '.join(SECTIONS)} or "
                f"{', '.join(k for k in merged if k not in SECTIONS)}"
            )
    return merged


def _number(flag: str, text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ReIDError(f"{flag} '{text}': expected a number of batches or a fraction") from None


def _devices(text: str) -> int | str | list[int]:
    text = text.strip()
    if text == "auto" or text == "-1":
        return text if text == "auto" else -1
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"\d+(\s*,\s*\d+)*\s*,?", text):
        return [int(v) for v in text.split(",") if v.strip()]
    raise ReIDError(f"--devices '{text}': expected auto, a count (2) or a list of ids (0,1)")


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The options the flags set, in configuration form."""
    from mtmct_reid.data.image_size import parse_image_size

    update: dict[str, Any] = {}
    for dest, (section, key) in _FLAG_TARGETS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if dest == "image_size":
            value = list(parse_image_size(value))
        elif dest == "devices":
            value = _devices(value)
        elif dest in ("limit_train_batches", "limit_val_batches"):
            value = _number(f"--{dest.replace('_', '-')}", value)
        if section is None:
            update[key] = value
        else:
            update.setdefault(section, {})[key] = value
    return update


def find_last_checkpoint(root: str | Path) -> Path:
    """``<root>/lightning_logs/version_N/checkpoints/last.ckpt`` of the highest N that has one.

    Example:
        >>> find_last_checkpoint(".")  # doctest: +SKIP
        PosixPath('lightning_logs/version_3/checkpoints/last.ckpt')
    """
    logs = Path(root) / "lightning_logs"
    found = []
    for path in logs.glob("version_*/checkpoints/last.ckpt"):
        match = re.fullmatch(r"version_(\d+)", path.parent.parent.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        raise ReIDError(
            f"--ckpt-path last: nothing to resume, no {logs}/version_*/checkpoints/last.ckpt; "
            "train without --ckpt-path first (or give --default-root-dir of the earlier run)"
        )
    return max(found)[1]


def _version_of(checkpoint: Path) -> tuple[Path, int] | None:
    """``(root, N)`` when the checkpoint lies in ``<root>/lightning_logs/version_N/checkpoints/``."""
    parts = checkpoint.resolve().parts
    if len(parts) >= 5 and parts[-2] == "checkpoints" and parts[-4] == "lightning_logs":
        match = re.fullmatch(r"version_(\d+)", parts[-3])
        if match:
            return Path(*parts[:-4]), int(match.group(1))
    return None


def _saved_config(checkpoint: Path) -> dict[str, Any]:
    """The configuration a checkpoint was trained with: its run's config.yaml, else its hparams."""
    from mtmct_reid.models.checkpoint import checkpoint_hparams

    stored = checkpoint_hparams(checkpoint)
    saved = checkpoint.resolve().parent.parent / CONFIG_FILE
    if saved.is_file():
        config = read_config(saved)
    else:
        config = {"model": stored["model"], "data": stored["data"]}
    model = {k: v for k, v in (config.get("model") or {}).items() if k not in _MODEL_RESERVED}
    data = {k: v for k, v in (config.get("data") or {}).items() if k not in _DATA_RESERVED}
    image_size = stored["model"].get("image_size")
    if image_size is not None:
        data.setdefault("image_size", list(image_size))
    config = {**config, "model": model, "data": data}
    # The run being resumed is named by the checkpoint, not by its saved config.
    config.pop("ckpt_path", None)
    return config


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults, then the saved configuration of a resumed run, then ``--config`` files, then flags."""
    flags = flag_overrides(args)
    files = [(read_config(path), f"--config {path}") for path in args.config]

    def layered(base: dict[str, Any]) -> dict[str, Any]:
        config = base
        for data, source in files:
            config = merge_config(config, data, source)
        return merge_config(config, flags, "flags")

    config = layered(default_config())
    ckpt_path = config.get("ckpt_path")
    if ckpt_path is None:
        return _finish_config(config)
    root = config["trainer"].get("default_root_dir") or "."
    checkpoint = find_last_checkpoint(root) if ckpt_path == "last" else Path(ckpt_path)
    if not checkpoint.is_file():
        raise ReIDError(f"--ckpt-path {ckpt_path}: checkpoint not found")
    base = merge_config(default_config(), _saved_config(checkpoint), f"{checkpoint} (saved config)")
    config = layered(base)
    config["ckpt_path"] = str(checkpoint)
    return _finish_config(config)


def _finish_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill what depends on other options: the model's input size, an absolute data folder."""
    if config["data"].get("image_size") is None:
        from mtmct_reid.models import default_image_size

        config["data"]["image_size"] = list(default_image_size(str(config["model"]["model"])))
    # The saved config.yaml must still find the data when a resume starts from another folder.
    data_dir = config["data"].get("data_dir")
    if data_dir is not None:
        config["data"]["data_dir"] = str(Path(data_dir).expanduser().resolve())
    return config


def _dump(config: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)


# ----------------------------------------------------------------------------------------------
# The command


def _one_line(exc: BaseException) -> str:
    """The message of an error re-raised from a DataLoader worker (which carries the worker's
    traceback) reduced to its last line."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    last = lines[-1].strip()
    return re.sub(r"^[\w.]*ReIDError:\s*", "", last)


def _route_lightning_logs() -> None:
    """Send Lightning's log lines through the command's logging set-up, once each.

    ``import lightning`` gives its logger a console handler of its own; under the command's root
    handler every Lightning line would print twice and ignore ``--quiet``.
    """
    root = logging.getLogger()
    if not root.handlers:
        return
    level = max(root.level, logging.INFO)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(level)


def _close_progress_bars(trainer: Any) -> None:
    """End the progress bars' lines, so that an error message gets a line of its own."""
    bars = trainer.progress_bar_callback
    for name in ("train_progress_bar", "val_progress_bar", "test_progress_bar"):
        try:
            getattr(bars, name).close()
        except (AttributeError, TypeError, AssertionError):  # no such bar, or never started
            continue


def _check_names(config: dict[str, Any]) -> None:
    from mtmct_reid.models import available_backbones, available_models

    name = config["model"]["model"]
    if name not in available_models():
        raise ReIDError(f"unknown model '{name}'; known: {', '.join(available_models())}")
    backbone = config["model"].get("backbone")
    if backbone is not None and backbone not in available_backbones():
        raise ReIDError(f"unknown backbone '{backbone}'; known: {', '.join(available_backbones())}")
    if config["data"].get("data_dir") is None:
        raise ReIDError("no dataset: give --data-dir (or data.data_dir in --config)")


def _build(config: dict[str, Any], resuming: bool) -> tuple[Any, Any]:
    from mtmct_reid.data.datamodule import ReIDDataModule
    from mtmct_reid.training import ReIDLightningModule

    datamodule = ReIDDataModule(**config["data"])
    # Reads the records and checks the sampler: data errors surface before the Trainer starts.
    datamodule.setup("fit")
    num_classes = datamodule.num_classes
    if resuming:
        from mtmct_reid.models.checkpoint import checkpoint_hparams

        stored = checkpoint_hparams(config["ckpt_path"])["model"].get("num_classes")
        if stored is not None and int(stored) != num_classes:
            raise ReIDError(
                f"--ckpt-path {config['ckpt_path']}: the checkpoint was trained on {stored} "
                f"identities, the data has {num_classes}; resume on the same dataset"
            )
    module = ReIDLightningModule(
        num_classes=num_classes,
        image_size=datamodule.image_size,
        load_weights=not resuming,
        **config["model"],
    )
    return datamodule, module


def _trainer(config: dict[str, Any]) -> tuple[Any, Any]:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    from mtmct_reid.training.module import SaveConfig

    options = dict(config["trainer"])
    root = Path(options.get("default_root_dir") or ".")
    options["default_root_dir"] = str(root)
    version = None
    if config.get("ckpt_path"):
        located = _version_of(Path(config["ckpt_path"]))
        if located is not None:
            root, version = located
    logger = TensorBoardLogger(
        save_dir=str(root), name="lightning_logs", version=version, default_hp_metric=False
    )
    validates = (
        options.get("limit_val_batches") not in (0, 0.0)
        and options.get("check_val_every_n_epoch") is not None
    )
    if validates:
        checkpoint = ModelCheckpoint(
            monitor="val/mAP",
            mode="max",
            save_top_k=1,
            save_last=True,
            filename="best-epoch{epoch:03d}-mAP{val/mAP:.4f}",
            auto_insert_metric_name=False,
        )
    else:
        checkpoint = ModelCheckpoint(save_top_k=1, save_last=True, filename="epoch{epoch:03d}")
    try:
        callbacks = [checkpoint, SaveConfig(config)]
        if options.get("enable_progress_bar", True):
            # tqdm, not rich: Lightning picks rich's bar whenever rich is installed (trackers needs it).
            callbacks.append(TQDMProgressBar())
        trainer = L.Trainer(logger=logger, callbacks=callbacks, **options)
    except ReIDError:
        raise
    except Exception as exc:  # Lightning's MisconfigurationException, ValueError, TypeError
        raise ReIDError(f"trainer options: {_one_line(exc)}") from None
    return trainer, checkpoint


def run_train(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if args.print_config:
        print(_dump(config), end="")
        return 0
    _check_names(config)

    import lightning as L
    from lightning.pytorch.utilities import rank_zero_only

    from mtmct_reid.retrieval.transit import TRANSIT_FILE, TransitTimeModel

    _route_lightning_logs()

    if config.get("seed_everything") is not None:
        L.seed_everything(int(config["seed_everything"]), workers=True, verbose=False)
    resuming = config.get("ckpt_path") is not None
    datamodule, module = _build(config, resuming)
    if config.get("save_distribution"):
        st_model = TransitTimeModel.from_records(
            datamodule.records,
            source=datamodule.source,
            bin_width=module.hparams.st_bin_width,
            sigma_bins=module.hparams.st_sigma_bins,
            truncate=module.hparams.st_truncate,
        )
        if rank_zero_only.rank == 0:
            st_model.save(config["save_distribution"])
            log.info("transit-time model written to %s", config["save_distribution"])
        module.st_model = st_model
    trainer, checkpoint = _trainer(config)
    try:
        with warnings.catch_warnings():
            if resuming:  # a resumed run writes into its own checkpoint folder on purpose
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* not empty")
            trainer.fit(
                module, datamodule=datamodule, ckpt_path=config.get("ckpt_path"), weights_only=True
            )
        # Read before testing: restoring the best checkpoint restores the callback's state too.
        last_path, best_path = checkpoint.last_model_path, checkpoint.best_model_path
        best_score = checkpoint.best_model_score
        if config.get("test") and not trainer.interrupted:
            best = best_path or None
            trainer.test(module, datamodule=datamodule, ckpt_path=best, weights_only=True)
    except ReIDError as exc:
        _close_progress_bars(trainer)
        raise ReIDError(_one_line(exc)) from None
    if not trainer.is_global_zero:
        return 0
    log_dir = Path(trainer.logger.log_dir)
    print(f"log folder: {log_dir}")
    print(f"last checkpoint: {Path(last_path)}")
    if best_path:
        shown = f" (val/mAP {100 * float(best_score):.2f}%)" if best_score is not None else ""
        print(f"best checkpoint: {Path(best_path)}{shown}")
    if module.st_model is not None:
        print(f"transit-time model: {log_dir / TRANSIT_FILE}")
    if module.test_report is not None:
        print(module.test_report.format_table())
    return 0
