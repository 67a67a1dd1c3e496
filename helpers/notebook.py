"""The first call of every notebook: quiet libraries, resolve and print the configuration."""

from __future__ import annotations

import logging
import os
import warnings

from helpers.config import Config, get_config


def quiet_libraries() -> None:
    """No progress bars or library warnings, so stored notebook outputs stay stable (nbval) and readable."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def setup(profile: str | None = None) -> Config:
    """Quiet libraries, display settings for tables, and the profile's config (printed)."""
    quiet_libraries()
    import pandas as pd

    pd.set_option("display.precision", 4)
    pd.set_option("display.max_colwidth", 100)
    config = get_config(profile)
    print(config.describe())
    return config


# Columns holding a share of rows, shown as percentages.
FRACTIONS = ("accuracy", "f1", "agreement", "ece", "ci_", "share", "compliance")


def readable(frame):
    """For a reader: shares as %, other numbers to 4 significant digits (whole from 1,000), "–" if none, plain names."""
    import pandas as pd

    shown = frame.copy()
    for column in shown.columns:
        values = shown[column]
        if pd.api.types.is_float_dtype(values):
            share = any(word in str(column) for word in FRACTIONS)
            shown[column] = ["–" if pd.isna(v) else f"{v:.2%}" if share else f"{v:,.0f}" if abs(v) >= 1_000
                             else f"{v:.4g}" for v in values]
        else:
            shown[column] = values.astype(object).where(values.notna(), "–")
    shown.columns = [str(column).replace("_", " ") for column in shown.columns]
    shown.index.names = [name.replace("_", " ") if isinstance(name, str) else name for name in shown.index.names]
    return shown
