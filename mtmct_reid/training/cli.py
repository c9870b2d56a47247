"""``mtmct-reid train`` on Lightning's ``LightningCLI``: fit, then test the best checkpoint.

The configuration is Lightning's: ``seed_everything``, ``trainer`` (any ``lightning.Trainer``
option), ``model`` (``class_path`` / ``init_args`` of a
:class:`~mtmct_reid.training.module.ReIDLightningModule`), ``data`` (the
:class:`~mtmct_reid.data.datamodule.ReIDDataModule` options), plus ``ckpt_path``,
``save_distribution`` and ``test``. The data decides the number of classes and the input size
(``link_arguments``). The short flags of earlier versions (``--data-dir``, ``--max-epochs``, ...) are
aliases of these keys (:data:`ALIASES`). A resumed run starts from the configuration saved with the
checkpoint it resumes.

:func:`build_trainer` is the one trainer policy (logger, checkpoints, progress bar) of ``train`` and
of the demo.
"""

from __future__ import annotations

import ast
import logging
import re
import signal
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lightning.fabric.utilities.seed import max_seed_value, min_seed_value
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from mtmct_reid._runtime import usable_cores
from mtmct_reid.data.datamodule import ReIDDataModule
from mtmct_reid.errors import ReIDError
from mtmct_reid.models.checkpoint import checkpoint_hparams
from mtmct_reid.training.module import ReIDLightningModule

log = logging.getLogger(__name__)

MODULE_CLASS = f"{ReIDLightningModule.__module__}.{ReIDLightningModule.__name__}"
CONFIG_FILE = "config.yaml"
#: Short flags of the ``train`` command → the configuration keys they set (``None``: a switch).
ALIASES: dict[str, tuple[str, str | None]] = {
    "--data-dir": ("--data.data_dir", None),
    "--layout": ("--data.layout", None),
    "--pattern": ("--data.pattern", None),
    "--image-size": ("--data.image_size", None),
    "--batch-size": ("--data.batch_size", None),
    "--num-workers": ("--data.num_workers", None),
    "--sampler": ("--data.sampler", None),
    "--num-instances": ("--data.num_instances", None),
    "--strict-images": ("--data.strict_images", "true"),
    "--model": ("--model.model", None),
    "--backbone": ("--model.backbone", None),
    "--weights": ("--model.weights", None),
    "--lr": ("--model.optimisation.lr", None),
    "--max-epochs": ("--trainer.max_epochs", None),
    "--devices": ("--trainer.devices", None),
    "--accelerator": ("--trainer.accelerator", None),
    "--strategy": ("--trainer.strategy", None),
    "--precision": ("--trainer.precision", None),
    "--limit-train-batches": ("--trainer.limit_train_batches", None),
    "--limit-val-batches": ("--trainer.limit_val_batches", None),
    "--default-root-dir": ("--trainer.default_root_dir", None),
    "--out": ("--trainer.default_root_dir", None),
    "--seed": ("--seed_everything", None),
    "--ckpt-path": ("--ckpt_path", None),
    "--save-distribution": ("--save_distribution", None),
    "--skip-test": ("--test", "false"),
}
PRINT_FLAGS = ("--print_config", "--print-config")
#: ``--precision`` as ``extract`` spells it → Lightning's name.
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def translate_aliases(argv: list[str]) -> tuple[list[str], bool]:
    """Lightning-style arguments for ``argv`` (short flags replaced), and whether to print the
    configuration instead of training.

    ``--model pcb`` (a registry name) aliases ``--model.model``; ``--model x.yaml`` or a class path
    stays Lightning's. ``--device cpu|cuda|cuda:N|auto`` (the spelling of the other verbs) sets the
    accelerator and the devices.

    Example:
        >>> translate_aliases(["--data-dir", "Market", "--skip-test", "--print-config"])
        (['--data.data_dir', 'Market', '--test', 'false'], True)
        >>> translate_aliases(["--device=cpu", "--model", "pcb"])[0]
        ['--trainer.accelerator', 'cpu', '--trainer.devices', '1', '--model.model', 'pcb']
    """
    out, show, items = [], False, list(argv)
    while items:
        item = items.pop(0)
        flag, sep, value = item.partition("=")
        takes_value = flag == "--device" or (flag in ALIASES and ALIASES[flag][1] is None)
        if takes_value and not sep and items:
            value, sep = items.pop(0), "="
        if flag in PRINT_FLAGS:
            show = True
        elif flag == "--device" and sep:
            out += _device_options(value)
        elif flag == "--model" and sep and _is_class_or_file(value):
            out += ["--model", value]
        elif flag in ALIASES and sep or flag in ALIASES and ALIASES[flag][1] is not None:
            key, switch = ALIASES[flag]
            out += [key, switch or value]
        else:
            out.append(item)
    return out, show


def _device_options(device: str) -> list[str]:
    """``--device`` of the other verbs as Lightning's accelerator and devices."""
    kind, _, index = device.partition(":")
    if kind == "auto" and not index:
        return ["--trainer.accelerator", "auto", "--trainer.devices", "auto"]
    if kind == "cpu" and not index:
        return ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
    if kind == "cuda" and (not index or index.isdigit()):
        from mtmct_reid.features import resolve_device

        resolve_device(device)  # refuses CUDA where there is none, as the other verbs do
        return ["--trainer.accelerator", "gpu", "--trainer.devices", f"[{index or 0}]"]
    raise ReIDError(f"--device '{device}': expected auto, cpu, cuda or cuda:N")


def _is_class_or_file(value: str) -> bool:
    return "." in value or "/" in value


def check_config_files(args: list[str]) -> None:
    """Refuse a ``--config`` file that is missing or is not YAML, naming it and the line."""
    for flag, value in zip(args, args[1:], strict=False):
        if flag != "--config" or not value.endswith((".yaml", ".yml", ".json")):
            continue
        path = Path(value)
        if not path.is_file():
            raise ReIDError(f"--config {path}: file not found")
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ReIDError(f"--config {path}: not valid YAML{at} ({problem})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ReIDError(f"--config {path}: cannot read ({exc})") from None


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
            "train without --ckpt-path first (or give --out of the earlier run)"
        )
    return max(found)[1]


def _run_of(checkpoint: Path) -> tuple[Path, int] | None:
    """``(root, N)`` when the checkpoint lies in ``<root>/lightning_logs/version_N/checkpoints/``."""
    parts = checkpoint.resolve().parts
    if len(parts) >= 5 and parts[-2] == "checkpoints" and parts[-4] == "lightning_logs":
        match = re.fullmatch(r"version_(\d+)", parts[-3])
        if match:
            return Path(*parts[:-4]), int(match.group(1))
    return None


def saved_config(checkpoint: Path) -> str:
    """The configuration (YAML text) a checkpoint was trained with: its run's ``config.yaml``, or
    for a checkpoint moved away from its run, its hyper-parameters."""
    stored = checkpoint_hparams(checkpoint)
    saved = checkpoint.resolve().parent.parent / CONFIG_FILE
    if saved.is_file():
        config = yaml.safe_load(saved.read_text()) or {}
    else:
        init = {k: v for k, v in stored["model"].items() if k not in ("num_classes", "image_size")}
        data = {k: v for k, v in stored["data"].items() if k != "image_size"}
        data["image_size"] = stored["model"].get("image_size") or stored["data"].get("image_size")
        config = {"model": {"class_path": MODULE_CLASS, "init_args": init}, "data": data}
    config.pop("ckpt_path", None)  # the run being resumed is named by the checkpoint
    return yaml.safe_dump(config, sort_keys=False)


def check_seed(seed: bool | int) -> None:
    """Refuse a ``seed_everything`` that NumPy cannot take (it accepts 0 to 2**32 - 1).

    Example:
        >>> check_seed(-1)
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: seed_everything: expected true, false or an integer from 0 to 4294967295, got -1
    """
    if isinstance(seed, bool):
        return
    if not min_seed_value <= int(seed) <= max_seed_value:
        raise ReIDError(
            f"seed_everything: expected true, false or an integer from {min_seed_value} to "
            f"{max_seed_value}, got {seed}"
        )


def check_devices(accelerator: Any, devices: Any) -> Any:
    """``devices`` as Lightning takes it, refused when this machine does not have that many.

    CPU processes are limited to the usable cores; GPUs to the visible ones.

    Example:
        >>> check_devices("cpu", "1")
        1
    """
    text = str(devices).strip()
    listed = isinstance(devices, list | tuple) or text.startswith("[")
    text = text.strip("[]")
    if text in ("auto", "-1"):
        return text if text == "auto" else -1
    if re.fullmatch(r"\d+", text) and not listed:
        wanted, value = int(text), int(text)
    elif re.fullmatch(r"\d+(\s*,\s*\d+)*\s*,?", text):
        value = [int(v) for v in text.split(",") if v.strip()]
        wanted = max(value) + 1
    else:
        raise ReIDError(f"--devices '{devices}': expected auto, a count (2) or a list of ids (0,1)")
    if wanted < 1:
        raise ReIDError(f"--devices '{devices}': expected at least one device")
    kind = str(accelerator)
    if kind not in ("cpu", "gpu", "cuda", "auto"):
        return value  # Lightning checks the devices of other accelerators itself
    import torch

    gpus = torch.cuda.device_count() if kind != "cpu" else 0
    if kind in ("gpu", "cuda") or gpus:
        have, what = gpus, "visible GPUs"
    else:
        have, what = usable_cores(), "usable CPU cores"
    if wanted > have:
        raise ReIDError(f"--devices {devices}: this machine has {have} {what}")
    return value


def build_trainer(
    root: str | Path,
    *,
    version: int | None = None,
    validates: bool = True,
    progress: bool = True,
    callbacks: list[Callback] | None = None,
    **options: Any,
) -> tuple[Trainer, ModelCheckpoint]:
    """The Trainer of ``train`` and of the demo: TensorBoard under ``root/lightning_logs`` (made
    absolute), one ``last.ckpt`` and the best checkpoint by ``val/mAP``, tqdm progress bars.

    Resumed runs overwrite ``last.ckpt`` and the best checkpoint instead of adding ``-v1`` copies,
    so ``--ckpt-path last`` always finds the newest state.

    Args:
        root: folder holding ``lightning_logs/``.
        version: the ``version_N`` to write into (a resumed run's), or None for a new one.
        validates: whether validation runs (then the best checkpoint is chosen by ``val/mAP``).
        progress: show progress bars.
        callbacks: further callbacks.
        options: any other ``lightning.Trainer`` option.

    Returns:
        The trainer and its checkpoint callback.

    Example:
        >>> trainer, checkpoint = build_trainer("runs", max_epochs=2, accelerator="cpu")  # doctest: +SKIP
    """
    # Absolute, so that a resumed run (whose root comes from its checkpoint's absolute path) has
    # the same checkpoint folder as the first: else Lightning drops the best-checkpoint state.
    root = Path(root).expanduser().resolve()
    if validates:
        checkpoint = ModelCheckpoint(
            monitor="val/mAP",
            mode="max",
            save_top_k=1,
            save_last=True,
            filename="best-epoch{epoch:03d}-mAP{val/mAP:.4f}",
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
    else:
        checkpoint = ModelCheckpoint(
            save_top_k=1,
            save_last=True,
            filename="epoch{epoch:03d}",
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
    options.setdefault(
        "logger",
        TensorBoardLogger(
            save_dir=str(root), name="lightning_logs", version=version, default_hp_metric=False
        ),
    )
    # tqdm, not rich: Lightning picks rich's bar whenever rich is installed (trackers needs it).
    extra = [TQDMProgressBar()] if progress else []
    try:
        trainer = Trainer(
            default_root_dir=str(root),
            callbacks=[checkpoint, *extra, *(callbacks or [])],
            enable_progress_bar=progress,
            **options,
        )
    except ReIDError:
        raise
    except Exception as exc:  # Lightning's MisconfigurationException, ValueError, TypeError
        raise ReIDError(f"trainer options: {one_line(exc)}") from None
    return trainer, checkpoint


def one_line(exc: BaseException) -> str:
    """An error's message on one line: the last line of a DataLoader worker's re-raised traceback;
    for jsonargparse's multi-line messages, the option and the reason: what it expects and the
    value given, or of a Union (``ReIDLightningModule | None``, ``int | None``) the error of the
    subtype that is not None.

    Example:
        >>> message = 'Parser key "lr":' + chr(10) + "  Expected a <class 'float'>. Got value: x"
        >>> one_line(ValueError(message))
        "lr: expected float, got 'x'"
    """
    text = str(exc).strip()
    if "Traceback (most recent call last)" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        return re.sub(r"^[\w.]*ReIDError:\s*", "", lines[-1].strip())
    keys = re.findall(r'Parser key "([^"]+)"', text)
    where = ".".join(keys) + ": " if keys else ""
    unknown = re.search(r"Option '([^']+)' is not accepted", text)
    if unknown:
        return f"{where}unknown option '{unknown.group(1)}'"
    group = re.search(r"Group '([^']+)' does not accept option '([^']+)'", text)
    if group:
        return f"{where}unknown option '{group.group(1)}.{group.group(2)}'"
    keys, reason = _reason(text.splitlines())
    where = ".".join(keys) + ": " if keys else ""
    return where + reason.line if reason.line else type(exc).__name__


_UNION = "Does not validate against any of the Union subtypes"
_KEY = re.compile(r'Parser key "([^"]+)":')
_CLASS_PATH = re.compile(r"Problem with given class_path '[^']*':")
_EXPECTED = re.compile(r"Expected an? (.+?)(?::\s.*|\. Got value: (.*))?")


@dataclass
class _Reason:
    """Why jsonargparse refused a value: a type mismatch (``expected``: the kinds or the allowed
    values, ``given``) or another error's own message (``message``)."""

    expected: list[str] | None = None
    given: str | None = None
    message: str = ""

    @property
    def line(self) -> str:
        if self.expected is None:
            return self.message
        kinds = list(dict.fromkeys(self.expected)) or ["a valid value"]
        named = all(re.fullmatch(r"[A-Za-z_]\w*", kind) for kind in kinds)
        wanted = " or ".join(kinds) if named else "one of " + ", ".join(kinds)
        return f"expected {wanted}" + (f", got {self.given!r}" if self.given is not None else "")


def _dedent(lines: list[str]) -> list[str]:
    return textwrap.dedent("\n".join(lines)).splitlines()


def _expected_kinds(kind: str) -> list[str]:
    """``<class 'float'>`` → float; ``typing.Literal['a', 1]`` → its values."""
    named = re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", kind)
    if named:
        return [named.group(1)]
    literal = re.fullmatch(r"(?:typing\.)?Literal\[(.*)\]", kind)
    if literal:
        try:
            values = ast.literal_eval(f"[{literal.group(1)}]")
        except (SyntaxError, ValueError):
            return [literal.group(1)]
        return [str(value) for value in values]
    return [kind]


def _reason(lines: list[str]) -> tuple[list[str], _Reason]:
    """The option keys and the reason of a jsonargparse message, looking through the ``Parser
    key`` and ``class_path`` headers and into a Union's errors."""
    keys: list[str] = []
    lines = _dedent([line for line in lines if line.strip()])
    while lines:
        head = lines[0].strip()
        key = _KEY.fullmatch(head)
        if key is None and not _CLASS_PATH.fullmatch(head):
            break
        keys += [key.group(1)] if key else []
        lines = _dedent(lines[1:])
    if not lines:
        return keys, _Reason(message="")
    # Several alternatives that all failed ("- Expected a path ...", "- Does not validate against
    # any of the Union subtypes" with its own lines): the Union's errors say the most.
    union = next((i for i, line in enumerate(lines) if line.strip() == f"- {_UNION}"), None)
    if union is not None and lines[0].lstrip().startswith("- "):
        lines = [_UNION, *lines[union + 1 :]]
    expected = _EXPECTED.fullmatch(lines[0].strip())
    if expected and len(lines) == 1:
        return keys, _Reason(_expected_kinds(expected.group(1)), expected.group(2))
    if lines[0].strip() != _UNION or not any(line.strip() == "Errors:" for line in lines):
        return keys, _Reason(message=" ".join(line.strip() for line in lines))
    start = next(i for i, line in enumerate(lines) if line.strip() == "Errors:") + 1
    items: list[list[str]] = []
    given = None
    for line in lines[start:]:
        if not line.startswith(" "):  # "Given value type:", "Given value:"
            if line.startswith("Given value:"):
                given = line.partition(":")[2].strip()
            continue
        if line.lstrip().startswith("- ") and (
            not items or line.find("-") <= items[0][0].find("-")
        ):
            items.append([line])
        elif items:
            items[-1].append(line)
    reasons = []
    for item in items:
        first = item[0].replace("- ", "  ", 1)
        inner_keys, reason = _reason([first, *item[1:]])
        reasons.append((inner_keys, reason))
    chosen = [(k, r) for k, r in reasons if r.expected != ["NoneType"]] or reasons
    own = [(k, r) for k, r in chosen if r.expected is None or k]
    if own:  # an error of the subtype itself (a bad value inside it), not a type mismatch
        inner_keys, reason = own[0]
        return keys + inner_keys, reason
    kinds = [kind for _, r in chosen for kind in (r.expected or [])]
    return keys, _Reason(kinds, given)


class _Printed(Exception):
    """The configuration was printed: nothing to train."""


class ReIDCLI(LightningCLI):
    """``LightningCLI`` for re-id training: the data decides the classes and input size, the short
    flags are aliases, errors are one line (:class:`ReIDError`), and a resume reads the run's saved
    configuration.

    Example:
        >>> ReIDCLI(["--data.data_dir", "Market-1501", "--trainer.max_epochs", "60"]).fit_and_test()  # doctest: +SKIP
    """

    def __init__(self, args: list[str]) -> None:
        self.show_config = False
        self.resumed: Path | None = None
        args, self.show_config = translate_aliases(list(args))
        with warnings.catch_warnings():
            # The arguments come from the mtmct-reid command line, not from sys.argv.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            super().__init__(
                ReIDLightningModule,
                ReIDDataModule,
                subclass_mode_model=True,
                save_config_kwargs={"overwrite": True},  # a resumed run rewrites its config
                trainer_defaults={"max_epochs": 60, "log_every_n_steps": 1},
                seed_everything_default=0,
                parser_kwargs={
                    "exit_on_error": False,
                    "prog": "mtmct-reid train",
                    "epilog": "short flags: "
                    + ", ".join(f"{flag} = {key[2:]}" for flag, (key, _) in ALIASES.items())
                    + "; --device cpu|cuda|cuda:N sets trainer.accelerator and trainer.devices",
                },
                run=False,
                auto_configure_optimizers=False,
                load_from_checkpoint_support=False,
                args=args,
            )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The input size defaults to the model's own (PCB 384x192, global models 256x128).
        parser.set_defaults({"model": {"class_path": MODULE_CLASS}, "data.image_size": None})
        parser.link_arguments(
            "data.num_classes", "model.init_args.num_classes", apply_on="instantiate"
        )
        parser.link_arguments(
            "data.image_size", "model.init_args.image_size", apply_on="instantiate"
        )
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="resume: 'last' (the newest version's last.ckpt under the root) or a checkpoint",
        )
        parser.add_argument(
            "--save_distribution",
            type=str | None,
            default=None,
            help="also write the training split's transit-time model (.npz) here",
        )
        parser.add_argument("--test", type=bool, default=True, help="test the best checkpoint")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            config = parser.parse_args(args)
            ckpt_path = config.get("ckpt_path")
            if ckpt_path:
                root = config.trainer.default_root_dir or "."
                found = find_last_checkpoint(root) if ckpt_path == "last" else Path(ckpt_path)
                if not found.is_file():
                    raise ReIDError(f"--ckpt-path {ckpt_path}: checkpoint not found")
                # The saved configuration first; the command's own files and flags over it.
                config = parser.parse_args(["--config", saved_config(found), *args])
                config.ckpt_path = str(found)
                self.resumed = found
        except ReIDError:
            raise
        except Exception as exc:  # jsonargparse's ArgumentError and friends
            raise ReIDError(one_line(exc)) from None
        self.config = config
        self._finish(config)
        if self.show_config:
            print(parser.dump(config), end="")
            raise _Printed

    def _finish(self, config: Any) -> None:
        """What depends on other options: the model's own input size, an absolute data folder,
        device counts the machine has."""
        from mtmct_reid.data.image_size import parse_image_size
        from mtmct_reid.models import default_image_size

        check_seed(config.seed_everything)
        data, init = config.data, config.model.init_args
        if data.image_size is None:
            data.image_size = list(default_image_size(str(init.model)))
        elif isinstance(data.image_size, str):
            data.image_size = list(parse_image_size(data.image_size))
        else:
            data.image_size = [int(v) for v in data.image_size]
        # The saved config.yaml must still find the data when a resume starts from elsewhere.
        if data.data_dir is not None:
            data.data_dir = str(Path(data.data_dir).expanduser().resolve())
        # The short precision spellings of the other verbs.
        precision = str(config.trainer.precision)
        config.trainer.precision = PRECISIONS.get(precision, config.trainer.precision)
        config.trainer.devices = check_devices(config.trainer.accelerator, config.trainer.devices)
        init.load_weights = self.resumed is None  # a resumed run's weights come from its checkpoint

    def instantiate_classes(self) -> None:
        if self.config.data.data_dir is None:
            raise ReIDError("no dataset: give --data-dir (or data.data_dir in --config)")
        try:
            super().instantiate_classes()
        except ReIDError:
            raise
        except Exception as exc:
            raise ReIDError(one_line(exc)) from None
        # Reads the records and checks the sampler: data errors surface before training starts.
        self.datamodule.setup("fit")
        if self.resumed is not None:
            stored = checkpoint_hparams(self.resumed)["model"].get("num_classes")
            if stored is not None and int(stored) != self.datamodule.num_classes:
                raise ReIDError(
                    f"--ckpt-path {self.resumed}: the checkpoint was trained on {stored} "
                    f"identities, the data has {self.datamodule.num_classes}; resume on the same "
                    "dataset"
                )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        options = dict(self.config_init.trainer)
        root = Path(options.pop("default_root_dir") or ".")
        version = None
        if self.resumed is not None and _run_of(self.resumed) is not None:
            root, version = _run_of(self.resumed)
        if options.get("logger") in (None, True):
            options.pop("logger")
        validates = (
            options.get("limit_val_batches") not in (0, 0.0)
            and options.get("check_val_every_n_epoch") is not None
        )
        callbacks = list(options.pop("callbacks", None) or [])
        if self.save_config_callback is not None:
            callbacks.append(
                self.save_config_callback(self.parser, self.config, **self.save_config_kwargs)
            )
        progress = options.pop("enable_progress_bar", None) is not False
        self.trainer, self.checkpoint = build_trainer(
            root,
            version=version,
            validates=validates,
            progress=progress,
            callbacks=callbacks,
            **options,
        )
        return self.trainer

    def fit_and_test(self) -> int:
        """Train (resuming when asked), test the best checkpoint, print where everything is."""
        from mtmct_reid.retrieval.transit import TRANSIT_FILE, TransitTimeModel

        module, datamodule, trainer = self.model, self.datamodule, self.trainer
        config = self.config
        if config.save_distribution:
            st_model = TransitTimeModel.from_records(
                datamodule.records,
                source=datamodule.source,
                bin_width=module.transit.bin_width,
                sigma_bins=module.transit.sigma_bins,
                truncate=module.transit.truncate,
            )
            if trainer.is_global_zero:
                st_model.save(config.save_distribution)
                log.info("transit-time model written to %s", config.save_distribution)
            module.st_model = st_model
        try:
            trainer.fit(
                module, datamodule=datamodule, ckpt_path=config.ckpt_path, weights_only=True
            )
            # Read before testing: restoring the best checkpoint restores the callback's state too.
            last_path, best_path = self.checkpoint.last_model_path, self.checkpoint.best_model_path
            best_score = self.checkpoint.best_model_score
            if config.test and not trainer.interrupted:
                best = best_path or None
                trainer.test(module, datamodule=datamodule, ckpt_path=best, weights_only=True)
        except ReIDError as exc:
            _close_progress_bars(trainer)
            raise ReIDError(one_line(exc)) from None
        except SystemExit:
            # Lightning turns Ctrl-C into exit status 1 with a message of its own; the command
            # reports it as every verb does.
            if trainer.interrupted:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt from None
            raise
        if trainer.interrupted:
            raise KeyboardInterrupt
        if not trainer.is_global_zero:
            return 0
        # The logger's folder, not trainer.log_dir: that one broadcasts, and the other ranks are gone.
        logger = trainer.logger
        log_dir = Path(logger.log_dir if logger is not None else trainer.default_root_dir)
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


def _close_progress_bars(trainer: Trainer) -> None:
    """End the progress bars' lines, so that an error message gets a line of its own."""
    bars = trainer.progress_bar_callback
    for name in ("train_progress_bar", "val_progress_bar", "test_progress_bar"):
        try:
            getattr(bars, name).close()
        except (AttributeError, TypeError, AssertionError):  # no such bar, or never started
            continue


def run(args: list[str]) -> int:
    """``mtmct-reid train ARGS``: parse, then fit and test; 0 after ``--print_config``."""
    check_config_files(args)
    try:
        cli = ReIDCLI(args)
    except _Printed:
        return 0
    return cli.fit_and_test()
