"""TrainConfig: every option of a run, declared once with its type, range, choices and help.

The TOML baseline files, the command-line options of `kit train`, `search` and `compare`
(``config_options``), and the checks on both come from these fields. No torch here: building
the command line stays fast.
"""
from __future__ import annotations

import functools
import math
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import tomli_w

from kit.errors import KitError
from kit.files import regular_file
from kit.train.precision import PRECISIONS, resolve_precision
from kit.train.thresholds import THRESHOLD_GRIDS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

LOSSES = ("bce", "asl", "focal")
MIN_MIXUP = 0.01    # below about 0.003 torch's Beta(a, a) draws weights near 0.5, not near 0 or 1
MIN_SHORT_SIDE = 32     # a Lite backbone's last stage sees the image at 1/32 of its size
OPTIMIZERS = ("adam", "adamw", "sgd")
KIT_BASELINES = Path(__file__).resolve().parents[2] / "baselines"
JOINABLE_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
VIEWS = ("full", "top", "middle", "bottom", "flip", "flip-top", "flip-middle",
         "flip-bottom")
SEARCHABLE = ("lr", "dropout", "weight_decay", "head_hidden", "batch_size",
              "tuned_stages", "backbone_lr", "mixup", "label_smoothing")   # kit search --space
DEFAULT_SEARCH_SPACE = ("lr", "dropout")      # the report's search
RESUMABLE_CHANGES = ("epochs", "patience", "workers", "tune_thresholds",
                     "micro_weight", "threshold_grid")                 # safe on resume
THRESHOLD_GRID_NAMES = tuple(THRESHOLD_GRIDS)


def option(default, help: str, low=None, high=None, choices=None, flag=None):
    """A field with what its command-line option and its checks need."""
    kind = {"default_factory": lambda: default} if isinstance(default, tuple) else \
        {"default": default}
    return field(**kind, metadata={"help": help, "low": low, "high": high, "choices": choices,
                                   "flag": flag})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; a baseline file sets any subset of it."""
    model: str = option("lenet", "lenet, efficientnet_lite0/1/2 or timm:<name>")
    frozen: bool = option(False, "train a head on cached frozen-backbone embeddings")
    views: tuple = option(("full",), "frozen mode: poster views whose embeddings are joined",
                          choices=VIEWS)
    joined_backbones: tuple = option((), "frozen mode: further Lite backbones whose embeddings "
                                     "are joined to the model's", choices=JOINABLE_BACKBONES)
    separate_heads: bool = option(False, "frozen mode, cross-fitted, with joined_backbones: "
                                         "each backbone gets heads of its own on its features "
                                         "alone (a head per fold and repeat) instead of one on "
                                         "all joined; the run predicts the mean of every head")
    head_backbone: str | None = option(None, "frozen mode: the head reads only this backbone's "
                                             "features of the joined ones (each head of "
                                             "separate_heads has its own)",
                                       choices=JOINABLE_BACKBONES)
    mirror: bool = option(False, "frozen mode: each training step sees a film or its mirror "
                                 "image at random; predictions are the mean of both")
    stage_features: int = option(0, "frozen mode: the mean-pooled outputs of the backbone's "
                                    "last N stages are joined to its features (multi-scale)",
                                 low=0, high=7)
    short_side: int = option(0, "frozen mode: the backbones see each view at N pixels on its "
                                "shorter side with its aspect ratio kept (the full poster "
                                "upright, not squashed square; 0: their own square input size; "
                                "else at least 32)",
                             low=0, high=2048)
    tuned_stages: int = option(0, "frozen mode: the backbone's last N stages train with the "
                                  "head, on cached maps of the stages before them (partial "
                                  "fine-tuning; 0: the head alone)", low=0, high=6)
    backbone_lr: float = option(1e-4, "learning rate of the tuned stages (tuned_stages > 0)",
                                low=1e-12, high=10.0)
    head_hidden: int = option(0, "frozen mode: hidden units (0: logistic head)", low=0,
                              high=65536)
    mixup: float = option(0.0, "frozen mode: mixup: each training batch is mixed with a "
                               "shuffled copy of itself, features and labels alike, by a weight "
                               "drawn from Beta(mixup, mixup) (0: off)", low=0.0, high=10.0)
    label_smoothing: float = option(0.0, "training targets pulled towards 0.5 by this share, "
                                         "y (1 - s) + s / 2 (valid loss, early stopping and "
                                         "thresholds see the true labels; 0: off)", low=0.0,
                                    high=0.5)
    precision: str = option("auto", "bf16 or fp32 autocast of frozen-mode embeddings or of "
                                    "image-model training steps; auto: bf16 on CPUs with native "
                                    "bf16 (AVX512-BF16, AMX), where it is faster, else fp32",
                            choices=PRECISIONS)
    pretrained: str | None = option(None, "local checkpoint for a timm model")
    hub_weights: bool = option(False, "download timm hub weights (fails offline)")
    balance: str = option("none", "none, min-per-genre, class-weight, sampler",
                          flag=("--balance", "--strategy"))
    min_count: int | None = option(None, "min-per-genre: films per genre (M)", low=1)
    target_size: int | None = option(None, "min-per-genre: training films wanted", low=1)
    weight_cap: float = option(50.0, "class-weight: largest pos_weight", low=0.01, high=1e6)
    loss: str = option("bce", "loss", choices=LOSSES)
    optimizer: str = option("adam", "optimiser", choices=OPTIMIZERS)
    lr: float = option(1e-3, "learning rate", low=1e-12, high=10.0)
    weight_decay: float = option(0.0, "weight decay", low=0.0, high=1.0)
    dropout: float = option(0.3, "dropout probability", low=0.0, high=0.95)
    batch_size: int = option(16, "training batch size", low=1, high=65536)
    epochs: int = option(20, "epoch budget", low=1, high=100_000)
    patience: int = option(5, "early stopping patience in epochs", low=1, high=100_000)
    augment: bool = option(False, "albumentations flips, affine and colour jitter")
    tune_thresholds: bool = option(True, "tune per-genre thresholds on valid (or out of fold)")
    micro_weight: float = option(0.0, "threshold tuning maximises macro F1 + this weight x "
                                      "micro F1 of all genres' decisions together (0: each "
                                      "genre its own best F1)", low=0.0, high=100.0)
    threshold_grid: str = option("linear", "thresholds tried: linear (0.05 to 0.95 in steps of "
                                 "0.05) or log (50 log-spaced from 0.001, as fine for rare "
                                 "genres' small probabilities as for common ones)",
                                 choices=THRESHOLD_GRID_NAMES)
    seed: int = option(0, "random seed", low=0, high=2**31 - 1)
    workers: int = option(0, "data loader processes", low=0, high=256)
    folds: int = option(1, "cross-fit: one model per fold of train+valid, thresholds tuned on "
                           "their out-of-fold predictions, their mean predicts (1: off)",
                        low=1, high=100)
    repeats: int = option(1, "cross-fit this many times, repeat r with seed + r (its own folds "
                             "and initial weights); a film's out-of-fold prediction is the mean "
                             "over repeats and all folds x repeats models predict", low=1,
                          high=100)

    def __post_init__(self):
        frozen_only = [name for name in ("joined_backbones", "separate_heads", "head_backbone",
                                         "mirror", "stage_features", "short_side",
                                         "tuned_stages", "mixup")
                       if getattr(self, name)]
        if frozen_only and not self.frozen:
            raise KitError(f"frozen-mode options without frozen = true: {', '.join(frozen_only)}"
                           "; set frozen = true (--frozen) or leave them out")
        if self.separate_heads and (not self.joined_backbones or self.folds < 2):
            raise KitError("separate_heads cross-fits heads of each backbone on its own: set "
                           "joined_backbones and folds to 2 or more, or separate_heads = false")
        if self.separate_heads and self.head_backbone:
            raise KitError("separate_heads gives each head its own backbone; leave out "
                           "head_backbone")
        if self.head_backbone and self.head_backbone not in self.backbones:
            raise KitError(f"head_backbone {self.head_backbone} is neither the model nor one of "
                           "joined_backbones")
        if self.tuned_stages and self.joined_backbones:
            raise KitError("tuned_stages tunes the stages of one backbone; leave out "
                           "joined_backbones or set tuned_stages = 0")
        if self.tuned_stages and self.short_side and \
                len({name in ("full", "flip") for name in self.views}) > 1:
            raise KitError("tuned_stages caches maps of one shape for every view; short_side "
                           "gives the full poster (full, flip) and its square crops different "
                           "shapes; choose views of one kind, or set tuned_stages or "
                           "short_side to 0")
        if self.repeats > 1 and self.folds < 2:
            raise KitError("repeats repeats a cross-fitting: set folds to 2 or more (--folds) "
                           "or repeats to 1")
        if self.tuned_stages and self.stage_features:
            raise KitError("stage_features pools stages that tuned_stages would tune; set one "
                           "of them to 0")
        if 0 < self.short_side < MIN_SHORT_SIDE:
            raise KitError(f"short_side must be 0 (the backbone's own square input) or at least "
                           f"{MIN_SHORT_SIDE}, not {self.short_side}: the backbone's last stage "
                           "sees the image at 1/32 of its size")
        if 0 < self.mixup < MIN_MIXUP:
            raise KitError(f"mixup must be 0 (off) or at least {MIN_MIXUP}, not {self.mixup}: "
                           "below it torch's Beta sampler draws wrong weights (near 0.5 "
                           "instead of near 0 or 1)")
        if self.frozen and self.model not in JOINABLE_BACKBONES and not (
                self.model.startswith("timm:") and self.pretrained):  # random weights: noise
            raise KitError(f"frozen mode embeds the posters with a pretrained backbone and "
                           f"{self.model} has no weights here: use one of "
                           f"{', '.join(JOINABLE_BACKBONES)}, or timm:<name> with pretrained "
                           "(--pretrained PATH, a local checkpoint)")

    @property
    def backbones(self) -> tuple[str, ...]:
        """The model and its joined backbones, each once, in the order their features join."""
        return tuple(dict.fromkeys((self.model, *self.joined_backbones)))

    @property
    def bf16_training(self) -> bool:
        """Image models train under bf16 autocast; frozen heads (precision = embeddings) do not."""
        return resolve_precision(self.precision) == "bf16" and not self.frozen

    def resolved(self) -> "TrainConfig":
        """This configuration with ``auto`` replaced by what this machine uses, so that the
        checkpoint records what was really done."""
        return replace(self, precision=resolve_precision(self.precision))

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        """Read a TOML baseline file (keys are this class's fields, ``description`` aside)."""
        path = regular_file(path, "config file")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise KitError(f"cannot read config file {path}: {error}") from None
        except tomllib.TOMLDecodeError as error:
            raise KitError(f"config file {path} is not valid TOML: {error}") from None
        data.pop("description", None)
        return cls().updated(data, str(path))

    def to_toml(self) -> str:
        """The configuration as a TOML baseline file (unset options left out)."""
        return tomli_w.dumps({k: list(v) if isinstance(v, tuple) else v
                              for k, v in asdict(self).items() if v is not None})

    def updated(self, values: dict, origin: str = "options") -> "TrainConfig":
        """A copy with ``values`` applied; unknown keys, wrong types and values out of range
        are one error naming the setting and where it came from."""
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise KitError(f"unknown settings in {origin}: {', '.join(unknown)}")
        checked = {name: check_value(known[name], value, origin)
                   for name, value in values.items()}
        try:
            return replace(self, **checked)
        except KitError as error:                    # a combination __post_init__ refuses
            raise KitError(f"{error} (in {origin})") from None


@functools.cache
def field_types() -> dict[str, object]:
    """Each TrainConfig field's declared type (once: a cross-fitted run checks thousands of
    values, and resolving the hints took a millisecond each time)."""
    return typing.get_type_hints(TrainConfig)


def base_type(kind) -> type:
    """The type of a field's values (``int`` for ``int | None``)."""
    return next((a for a in typing.get_args(kind) if a is not type(None)), kind)


def check_value(spec, value, origin: str):
    """``value`` for field ``spec``, of the declared type and within its range and choices."""
    name, kind = spec.name, field_types()[spec.name]
    optional = type(None) in typing.get_args(kind)
    base = base_type(kind)
    where = f"{name} in {origin}"
    if value is None:
        if optional:
            return None
        raise KitError(f"{where} cannot be empty")
    if base is bool:
        if not isinstance(value, bool):
            raise KitError(f"{where} must be true or false, not {value!r}")
    elif base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise KitError(f"{where} must be a whole number, not {value!r}")
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise KitError(f"{where} must be a finite number, not {value!r}")
        value = float(value)
    elif base is str:
        if not isinstance(value, str) or not value:
            raise KitError(f"{where} must be a non-empty text, not {value!r}")
    elif base is tuple:
        may_be_empty = spec.default_factory() == ()
        if isinstance(value, str) or not isinstance(value, (list, tuple)) \
                or not (value or may_be_empty) or not all(isinstance(v, str) for v in value):
            raise KitError(f"{where} must be a {'' if may_be_empty else 'non-empty '}list of "
                           f"names, not {value!r}")
        value = tuple(value)
    meta = spec.metadata
    items = value if isinstance(value, tuple) else (value,)
    if meta["choices"] and any(v not in meta["choices"] for v in items):
        raise KitError(f"unknown {name} {value!r} in {origin}; choose one of "
                       f"{', '.join(meta['choices'])}")
    if meta["low"] is not None and value < meta["low"] or \
            meta["high"] is not None and value > meta["high"]:
        raise KitError(f"{where} must be between {meta['low']} and {meta['high']}, "
                       f"not {value!r}")
    return value


def config_file(name: str) -> Path:
    """A configuration file: ``name`` as a path, else a baseline by name (``lenet``) or by its
    path in the kit's folder (``baselines/lenet.toml`` run elsewhere): ``./baselines`` first,
    then the kit's."""
    path = Path(name)
    if path.exists() or path.parent not in (Path("."), Path("baselines")):
        return path                                 # from_file names what is wrong with it
    file_name = f"{path.stem if path.suffix == '.toml' else path.name}.toml"
    for folder in (Path("baselines"), KIT_BASELINES):
        if (folder / file_name).is_file():
            return folder / file_name
    known = ", ".join(sorted(p.stem for p in KIT_BASELINES.glob("*.toml")))
    raise KitError(f"config file {name} does not exist, nor is it a baseline of the kit "
                   f"({known})")
