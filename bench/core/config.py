"""Typed run configuration: YAML profiles on disk, frozen dataclasses in code.

A profile (``bench/profiles/<name>.yaml``) gives the sections ``data``, ``model``,
``train``, ``eval`` and, optionally, a section per method (``kl_anneal: {warm_up: 2}``),
nested as in experiments and on the command line, whose overrides use dotted keys
(``--set model.hidden_dim=256``, ``--set kl_anneal.warm_up=5``); older profiles that put
the method sections under ``methods:`` read the same. Every key is checked against the dataclass fields, so a
typo is an error naming the key and the file instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from bench.core.errors import BenchError, did_you_mean

PROFILE_DIR = Path(__file__).resolve().parents[1] / "profiles"

# Metadata of a setting added after records were made: it enters the run id only when it is
# not at its default, so those records keep their ids (RunConfig.identity).
IN_ID_WHEN_SET = {"in_id_when_set": True}


@dataclass(frozen=True)
class DataConfig:
    """What text is read and how it is batched (the same for every method)."""

    batch_size: int = 32  # sentences per training batch (He et al. 2019)
    eval_batch_size: int = 64  # sentences per batch for validation and test passes
    max_train_sentences: int | None = None  # keep the first N training sentences (reduced profiles)
    max_eval_sentences: int | None = None  # keep the first N valid/test sentences (reduced profiles)
    max_vocab: int | None = None  # keep the most frequent N training words; rarer ones map to unknown
    max_length: int | None = None  # truncate sentences to N words (end token added after truncation)
    # Built-in synthetic corpus (used when the dataset is "synthetic").
    synthetic_vocab: int = 1000
    synthetic_length: int = 10
    synthetic_train: int = 20000
    synthetic_valid: int = 10000
    synthetic_test: int = 10000
    synthetic_seed: int = 0  # fixed apart from the run seed: every run sees the same corpus

    def __post_init__(self) -> None:
        _positive(self, "batch_size", "eval_batch_size", "synthetic_vocab", "synthetic_length",
                  "synthetic_train", "synthetic_valid", "synthetic_test")
        _positive_or_none(self, "max_train_sentences", "max_eval_sentences", "max_vocab", "max_length")


@dataclass(frozen=True)
class ModelConfig:
    """LSTM VAE of He et al. 2019 / Long et al. 2019 (defaults: the published sizes)."""

    embed_dim: int = 512
    encoder_hidden: int = 1024
    decoder_hidden: int = 1024
    latent_dim: int = 32
    dropout_in: float = 0.5  # on decoder input embeddings
    dropout_out: float = 0.5  # on decoder LSTM outputs
    init_scale: float = 0.01  # parameters ~ U(-s, s)
    embed_init_scale: float = 0.1  # embeddings ~ U(-s, s)
    # "pytorch": the encoder (embedding, LSTM, the layer to (mu, logvar)) keeps PyTorch's default
    # initialisation, as BN-VAE's code does (Zhu et al. 2020); the decoder stays as the reference's.
    encoder_init: typing.Literal["reference", "pytorch"] = field(default="reference", metadata=IN_ID_WHEN_SET)
    # The encoder LSTM's depth and direction. He et al.'s is one layer, left to right; the same
    # lab's CP-VAE (BorealisAI/CP-VAE, models/base_network.py) encodes with 2 bidirectional
    # layers whose two directions are averaged per position (then max-pooled: the pooling method).
    encoder_layers: int = field(default=1, metadata=IN_ID_WHEN_SET)
    encoder_bidirectional: bool = field(default=False, metadata=IN_ID_WHEN_SET)

    def __post_init__(self) -> None:
        _positive(self, "embed_dim", "encoder_hidden", "decoder_hidden", "latent_dim", "encoder_layers")
        for name in ("dropout_in", "dropout_out"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise BenchError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule of the reference implementation (He et al. 2019)."""

    lr: float = 1.0  # plain SGD
    clip_grad_norm: float = 5.0
    max_epochs: int = 100
    decay_start_epoch: int = 15  # decay allowed from this 0-based epoch on (reference: `epoch >= 15`)
    decay_patience: int = 2  # epochs without validation improvement before a decay
    lr_decay: float = 0.5
    max_decays: int = 5  # stop after this many decays
    max_train_minutes: float | None = None  # wall-clock budget; stops after the epoch that exceeds it
    # bfloat16 autocast for the forward and backward passes (GPUs; CPUs with AVX-512 BF16 or
    # AMX); parameters, optimiser and softmax stay float32.
    bf16: bool = field(default=False, metadata=IN_ID_WHEN_SET)

    def __post_init__(self) -> None:
        _positive(self, "lr", "clip_grad_norm", "max_epochs", "decay_patience", "max_decays")
        if self.decay_start_epoch < 0:
            raise BenchError(f"train.decay_start_epoch must be >= 0, got {self.decay_start_epoch}")
        if not 0.0 < self.lr_decay < 1.0:
            raise BenchError(f"train.lr_decay must be in (0, 1), got {self.lr_decay}")
        _positive_or_none(self, "max_train_minutes")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings; the number of importance samples goes into every record."""

    iw_samples: int = 500  # K in the importance-weighted bound (Burda et al. 2016)
    iw_max_sentences: int | None = None  # score only the first N test sentences with the IW bound
    # Largest logits tensor (elements) one decoder pass may hold during IW evaluation;
    # sentences and samples are chunked to stay below it, which bounds memory.
    iw_max_elements: int = 50_000_000
    # The decoder's output layer in bfloat16 in IW evaluation, its dominant terms recomputed in
    # float32 (bench.core.output_layer.output_layer_nll_bf16); `python -m bench perf --bf16` times it.
    iw_bf16: bool = field(default=False, metadata=IN_ID_WHEN_SET)
    # z samples per sentence of the MI estimate over the whole test split
    # (bench.core.metrics.mutual_information); its standard error goes as 1 / sqrt(samples)
    mi_samples: int = field(default=10, metadata=IN_ID_WHEN_SET)

    def __post_init__(self) -> None:
        _positive(self, "iw_samples", "iw_max_elements", "mi_samples")
        _positive_or_none(self, "iw_max_sentences")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run; its hash identifies the run."""

    method: str
    dataset: str
    profile: str
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Per-method settings as given (validated by each method's own config class).
    methods: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["methods"] = {k: dict(v) for k, v in self.methods.items()}
        return out

    def identity(self) -> dict[str, Any]:
        """:meth:`to_dict` without the settings marked ``IN_ID_WHEN_SET`` that are at their
        default: what the run id hashes."""
        out = self.to_dict()
        for section in SECTIONS:
            for item in dataclasses.fields(getattr(self, section)):
                if item.metadata.get("in_id_when_set") and out[section][item.name] == item.default:
                    del out[section][item.name]
        return out


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "eval": EvalConfig}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> tuple[str, dict[str, Any], str]:
    """Read a profile by name (``cpu``) or path; returns (name, raw sections, source)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        if Path(name_or_path).suffix:  # a path, not a name
            raise BenchError(f"profile file {name_or_path} not found; give a profile's path or one of the names: "
                             f"{', '.join(available_profiles())}")
        hint = did_you_mean(name_or_path, available_profiles())
        raise BenchError(f"unknown profile '{name_or_path}'{hint}; available: {', '.join(available_profiles())}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise BenchError(yaml_error(path, err)) from None
    if raw is None:  # an empty file would silently train the paper-size model
        raise BenchError(f"{path} is empty; a profile needs at least one of the sections {', '.join(SECTIONS)} "
                         "(see bench/profiles/cpu.yaml)")
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: expected a mapping of sections {sorted(SECTIONS)} + methods")
    return path.stem, raw, str(path)


def yaml_error(path: Path | str, err: yaml.YAMLError) -> str:
    """``FILE:LINE:COLUMN: not valid YAML (the parser's problem)``, for a one-line error."""
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{where}: not valid YAML ({problem}); fix the file at that line"


def parse_overrides(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """Turn ``["model.hidden=8", "kl_anneal.warm_up=2"]`` into nested dicts (values parsed as YAML)."""
    nested: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise BenchError(f"--set expects SECTION.KEY=VALUE (e.g. model.latent_dim=16), got '{pair}'")
        try:
            nested.setdefault(section, {})[name] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise BenchError(f"--set {pair}: value is not valid YAML") from None
    return nested


def build_run_config(method: str, dataset: str, profile: str = "cpu", seed: int = 0,
                     overrides: Mapping[str, Mapping[str, Any]] | None = None,
                     overrides_source: str = "--set") -> RunConfig:
    """Resolve a profile plus overrides into a validated :class:`RunConfig`.

    Sections other than data/model/train/eval are method settings, kept for the method's
    own config class to validate (see :func:`bench.core.method.build_method`).
    ``overrides_source`` names where the overrides came from in error messages (an
    experiment file's run, or the command line).
    """
    profile_name, raw, source = load_profile(profile)
    merged: dict[str, dict[str, Any]] = {}
    for layer, where in ((raw, source), (overrides or {}, overrides_source)):
        for section, values in layer.items():
            if section == "methods":  # older profiles nest the method sections under "methods"
                for name, settings in (values or {}).items():
                    merged.setdefault(name, {}).update(_mapping(settings, f"{where}: methods.{name}"))
                continue
            merged.setdefault(section, {}).update(_mapping(values, f"{where}: {section}"))
    for name, cls in SECTIONS.items():  # the profile alone first, so that an error is blamed on its source
        from_dict(cls, _mapping(raw.get(name) or {}, f"{source}: {name}"), f"{source} [{name}]")
    sections = {name: from_dict(cls, merged.pop(name, {}),
                                f"{overrides_source} {name}" if name in (overrides or {}) else f"{source} [{name}]")
                for name, cls in SECTIONS.items()}
    if dataset == "synthetic":
        _check_synthetic_overrides(sections["data"], (overrides or {}).get("data", {}))
    return RunConfig(method=method, dataset=dataset, profile=profile_name, seed=int(seed),
                     methods=merged, **sections)


# A synthetic-corpus size that an override sets is only used up to the profile's cap on it.
_SYNTHETIC_CAPS = {"synthetic_train": "max_train_sentences", "synthetic_valid": "max_eval_sentences",
                   "synthetic_test": "max_eval_sentences", "synthetic_vocab": "max_vocab",
                   "synthetic_length": "max_length"}


def _check_synthetic_overrides(data: DataConfig, overridden: Mapping[str, Any]) -> None:
    """Refuse an override of the synthetic corpus that a profile cap would silently undo."""
    for key, cap_key in _SYNTHETIC_CAPS.items():
        cap = getattr(data, cap_key)
        if key in overridden and cap is not None and getattr(data, key) > cap:
            raise BenchError(f"--set data.{key}={getattr(data, key)} has no effect: the profile caps it with "
                             f"data.{cap_key}={cap}; set data.{cap_key} too (e.g. --set data.{cap_key}="
                             f"{getattr(data, key)}) or choose a value <= {cap}")


def from_dict(cls: type, raw: Mapping[str, Any], where: str):
    """Build dataclass ``cls`` from ``raw``, checking keys and value types.

    Errors name the key, the expected type and ``where`` the values came from.
    """
    raw = _mapping(raw, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        hint = did_you_mean(unknown[0], list(fields))
        raise BenchError(f"{where}: unknown key '{unknown[0]}'{hint}; valid keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(value, hints[name], f"{where} {name}") for name, value in raw.items()}
    try:
        return cls(**values)
    except (BenchError, ValueError) as err:
        raise BenchError(f"{where}: {err}") from None


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a simple annotation (int, float, bool, str, Optional, Literal, tuple)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except BenchError as err:
                errors.append(str(err))
        raise BenchError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise BenchError(f"{where}: expected one of {list(allowed)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise BenchError(f"{where}: expected a list, got {value!r}")
        (item_type, _ellipsis) = typing.get_args(annotation)
        return tuple(_coerce(v, item_type, where) for v in value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise BenchError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BenchError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BenchError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise BenchError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BenchError(f"{where}: expected a mapping of settings, got {value!r}")
    return dict(value)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise BenchError(f"{name} must be positive, got {getattr(obj, name)}")


def _positive_or_none(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and value <= 0:
            raise BenchError(f"{name} must be positive or null, got {value}")
