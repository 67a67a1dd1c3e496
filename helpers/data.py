"""AG News from the hub, a local folder or synthetic rows; validation at the door; splits; tokenization."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, concatenate_datasets

from helpers.config import LABELS, Config

SUPPORTED_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")
FEATURES = Features({"text": Value("string"), "label": ClassLabel(names=list(LABELS))})


def _read_frame(path: Path) -> pd.DataFrame:
    """One file in the Hugging Face layout (text, label) or the original AG News CSV (class 1..4, title, body)."""
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): expected AG News rows with columns text and label.")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}.")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=True)
        return _read_csv(path)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}): re-save it as UTF-8."
                         ) from error
    except ValueError as error:
        if str(error).startswith(str(path)):  # already ours: names the file and the fix
            raise
        raise ValueError(f"{path} could not be read as {suffix[1:]} ({error}): the file may be truncated or "
                         "corrupt; replace it with a complete copy.") from error
    except Exception as error:  # noqa: BLE001 - pyarrow and pandas raise many types for a broken file
        raise ValueError(f"{path} could not be read as {suffix[1:]} ({type(error).__name__}: {error}): the file "
                         "may be truncated or corrupt; replace it with a complete copy.") from error


def _read_csv(path: Path) -> pd.DataFrame:
    head = pd.read_csv(path, nrows=1, header=None, dtype=str, keep_default_na=False)
    if {"text", "label"} <= set(head.iloc[0].str.strip()):
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    if head.shape[1] == 3 and head.iloc[0, 0].strip().isdigit():
        # The original AG News CSV: no header, every field quoted, class index 1..4, title, description.
        raw = pd.read_csv(path, header=None, names=["class_index", "title", "description"], dtype=str,
                          keep_default_na=False, skipinitialspace=True)
        labels = pd.to_numeric(raw["class_index"], errors="coerce") - 1
        return pd.DataFrame({"text": raw["title"] + " " + raw["description"], "label": labels})
    raise ValueError(f"{path}: neither a CSV with a 'text,label' header nor the original 3-column AG News CSV "
                     f"(class index 1..4, title, description); its first row is {list(head.iloc[0])}.")


def validate_frame(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check the columns, labels and texts of one split; raise ValueError naming the file, column and rows."""
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"{source}: missing column(s) {sorted(missing)}; found {list(frame.columns)}. "
                         "Expected text (string) and label (0..3).")
    if len(frame) == 0:
        raise ValueError(f"{source}: no rows.")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = labels.isna() | (labels != labels.round())
    if bad.any():
        examples = frame.loc[bad, "label"].head(5).tolist()
        raise ValueError(f"{source}: column 'label' has {int(bad.sum())} of {len(frame)} non-integer or null "
                         f"values, e.g. {examples}. Labels must be integers 0..{len(LABELS) - 1}.")
    outside = ~labels.isin(range(len(LABELS)))
    if outside.any():
        values = sorted(set(labels[outside].astype(int).tolist()))[:10]
        hint = " (the original CSV numbers classes 1..4: subtract 1)" if set(values) <= {4} else ""
        raise ValueError(f"{source}: column 'label' has {int(outside.sum())} of {len(frame)} values outside "
                         f"0..{len(LABELS) - 1}: {values}{hint}. Label set: {dict(enumerate(LABELS))}.")
    texts = frame["text"]
    empty = texts.isna() | (texts.astype(str).str.strip() == "")
    if empty.any():
        rows = frame.index[empty][:5].tolist()
        raise ValueError(f"{source}: column 'text' has {int(empty.sum())} of {len(frame)} empty or null texts, "
                         f"e.g. at rows {rows}. Remove or fill them before loading.")
    return pd.DataFrame({"text": texts.astype(str), "label": labels.astype("int64")}).reset_index(drop=True)


def _find_split_file(folder: Path, split: str) -> Path:
    candidates = [folder / f"{split}{suffix}" for suffix in SUPPORTED_SUFFIXES]
    found = [path for path in candidates if path.exists()]
    if not found:
        raise FileNotFoundError(f"No {split} file in {folder}: expected one of "
                                f"{', '.join(p.name for p in candidates)}. Set KD_DATA_DIR to the AG News folder.")
    return found[0]


def load_local_dataset(path: str | Path) -> DatasetDict:
    """AG News from a folder holding train.* and test.* (parquet, CSV or JSON Lines), validated."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"AG News folder {folder} does not exist. Set KD_DATA_DIR to a folder holding "
                                "train.parquet and test.parquet (or .csv / .jsonl), or use KD_PROFILE=smoke.")
    splits = {}
    for split in ("train", "test"):
        file = _find_split_file(folder, split)
        frame = validate_frame(_read_frame(file), str(file))
        splits[split] = Dataset.from_pandas(frame, features=FEATURES, preserve_index=False)
    return DatasetDict(splits)


def load_hub_dataset(name: str) -> DatasetDict:
    """AG News through ``datasets.load_dataset``, with an actionable error where the hub is out of reach."""
    from datasets import load_dataset

    try:
        raw = load_dataset(name)
    except Exception as error:  # noqa: BLE001 - any failure here means the same thing to the user
        raise RuntimeError(f"Could not load {name!r} from the Hugging Face hub ({type(error).__name__}: {error}). "
                           "Without network use KD_PROFILE=cpu with KD_DATA_DIR=/path/to/ag_news.") from error
    return DatasetDict({split: Dataset.from_pandas(validate_frame(raw[split].to_pandas(), f"{name}[{split}]"),
                                                   features=FEATURES, preserve_index=False)
                        for split in ("train", "test")})


_TOPIC_WORDS = {
    0: "minister election parliament embassy troops treaty president rebels ceasefire diplomats".split(),
    1: "coach season playoff striker tournament goal champions league quarterback medal".split(),
    2: "shares profit earnings merger investors quarterly revenue stocks bank oil".split(),
    3: "software internet computer scientists nasa chip wireless browser researchers space".split()}
_FILLER = "the a of in on after over new says report today week officials said its with amid".split()


def synthetic_vocabulary() -> list[str]:
    """Every word the synthetic generator can emit (the smoke tokenizer's vocabulary)."""
    return sorted({w for words in _TOPIC_WORDS.values() for w in words} | set(_FILLER))


def synthetic_frame(rows: int, seed: int) -> pd.DataFrame:
    """AG-News-like rows whose class is learnable from topic words, with some cross-topic noise words."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % len(LABELS)
    rng.shuffle(labels)
    texts = []
    for label in labels:
        # 3-5 own-topic words, 0-2 words of another topic, filler: learnable, but not trivially separable.
        own = rng.choice(_TOPIC_WORDS[label], size=rng.integers(3, 6)).tolist()
        other = rng.choice(_TOPIC_WORDS[(label + rng.integers(1, 4)) % 4], size=rng.integers(0, 3)).tolist()
        words = own + other + rng.choice(_FILLER, size=rng.integers(4, 12)).tolist()
        rng.shuffle(words)
        texts.append(" ".join(words).capitalize())
    return pd.DataFrame({"text": texts, "label": labels.astype("int64")})


def load_synthetic_dataset(train_rows: int = 960, test_rows: int = 200, seed: int = 0) -> DatasetDict:
    return DatasetDict({
        "train": Dataset.from_pandas(synthetic_frame(train_rows, seed), features=FEATURES, preserve_index=False),
        "test": Dataset.from_pandas(synthetic_frame(test_rows, seed + 1), features=FEATURES, preserve_index=False)})


def stratified_subset(dataset: Dataset, rows: int | None, seed: int) -> Dataset:
    """At most ``rows`` rows, balanced across classes; a smaller cap (same seed) gives a subset of a larger one."""
    if rows is None or rows >= len(dataset):
        return dataset
    labels = np.asarray(dataset["label"])
    order = np.random.default_rng(seed).permutation(len(labels))
    # Rank of each row within its class in the shuffled order: taking rank < k per class nests across caps.
    per_class = rows // len(LABELS)
    chosen = [i for c in range(len(LABELS)) for i in order[labels[order] == c][:per_class]]
    return dataset.select(sorted(chosen))


def load_splits(config: Config) -> DatasetDict:
    """train (all rows left after validation), validation (stratified from train), test (untouched)."""
    if config.data_source == "local":
        raw = load_local_dataset(config.data_dir)
    elif config.data_source == "hub":
        raw = load_hub_dataset(config.hub_dataset)
    elif config.data_source == "synthetic":
        raw = load_synthetic_dataset(seed=config.data_seed)
    else:
        raise ValueError(f"Unknown data_source {config.data_source!r}: use hub, local or synthetic.")
    carved = raw["train"].train_test_split(test_size=config.validation_rows, stratify_by_column="label",
                                           seed=config.data_seed)
    return DatasetDict({"train": carved["train"], "validation": carved["test"], "test": raw["test"]})


def student_train_split(splits: DatasetDict, config: Config) -> Dataset:
    """The rows the students train on: the profile's stratified cap of ``splits['train']``."""
    return stratified_subset(splits["train"], config.max_train_rows, config.data_seed)


def selection_train_split(splits: DatasetDict, config: Config) -> Dataset:
    """The rows the selection grid trains on: a stratified subset of the students' rows (nested: same seed)."""
    return stratified_subset(student_train_split(splits, config), config.selection_max_train_rows, config.data_seed)


def teacher_train_split(splits: DatasetDict, config: Config) -> Dataset:
    """The rows a locally fine-tuned teacher trains on: the students' and validation rows, mirroring the hub teacher
    (fine-tuned on all of AG News' train: its logits there are memorised, its validation accuracy flatters it)."""
    return concatenate_datasets([student_train_split(splits, config), splits["validation"]])


def unseen_splits(splits: DatasetDict, config: Config) -> tuple[Dataset, Dataset]:
    """Train rows no model trains on, both stratified: ``unseen_rows`` of them, where every choice is made, and the
    plateau check's extra rows (up to ``plateau_rows`` in all, disjoint from the first). Both empty in full."""
    train = splits["train"]
    wanted = max(config.unseen_rows, config.plateau_rows)
    if not wanted:
        return train.select([]), train.select([])
    used = set(student_train_split(splits, config)["text"])
    unused = train.select([i for i, text in enumerate(train["text"]) if text not in used])
    if len(unused) < wanted:
        raise ValueError(f"unseen_rows/plateau_rows ask for {wanted} rows but only {len(unused)} train rows are left "
                         "after the students' rows and validation: lower them, or max_train_rows.")
    pool = stratified_subset(unused, wanted, config.data_seed + 1).add_column("row", list(range(wanted)))
    first = stratified_subset(pool, config.unseen_rows, config.data_seed + 1)  # nested: a subset of the pool
    rest = sorted(set(range(wanted)) - set(first["row"]))
    return first.remove_columns("row"), pool.select(rest).remove_columns("row")


def fresh_view(input_ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: torch.Tensor, mask_token_id: int,
               pad_token_id: int, drop: float = 0.1, mask: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """A new augmented view of a tokenized batch (torch's global RNG, the Trainer's seed): each ordinary token (not
    [CLS]/[SEP]/[PAD]) is deleted with probability ``drop``, the rest closing up, then each one left is replaced by
    [MASK] with probability ``mask``. A headline and a sentence or two stay readable with a tenth of their word pieces
    gone or masked, and BERT-family models were pretrained to read [MASK]. (B, L) -> (B, L'), L' <= L, rows in order."""
    present = attention_mask.bool()
    ordinary = present & ~torch.isin(input_ids, special_ids)
    keep = present & ~(ordinary & (torch.rand(input_ids.shape) < drop).to(input_ids.device))
    lengths = keep.sum(dim=1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept tokens first, in their order
    width = int(lengths.max())
    ids = torch.gather(input_ids, 1, order)[:, :width].clone()
    new_mask = (torch.arange(width, device=ids.device)[None, :] < lengths[:, None]).to(attention_mask.dtype)
    ids[new_mask == 0] = pad_token_id
    masked = new_mask.bool() & ~torch.isin(ids, special_ids) & (torch.rand(ids.shape) < mask).to(ids.device)
    ids[masked] = mask_token_id
    return ids, new_mask


def source_fingerprint(config: Config) -> str:
    """The data's identity before loading (keys the local teacher): local files' bytes, hub name or synthetic seed."""
    if config.data_source == "local":
        folder = Path(config.data_dir)
        digest = hashlib.sha256()
        for split in ("train", "test"):
            digest.update(_find_split_file(folder, split).read_bytes())
        return digest.hexdigest()[:16]
    return f"{config.data_source}:{config.hub_dataset if config.data_source == 'hub' else config.data_seed}"


def fingerprint(dataset: Dataset) -> str:
    """A short content hash of a split (texts and labels), for cache keys."""
    digest = hashlib.sha256()
    for text, label in zip(dataset["text"], dataset["label"], strict=True):
        digest.update(f"{label}\t{text}\n".encode())
    return digest.hexdigest()[:16]


def tokenize(dataset: Dataset, tokenizer, max_length: int) -> Dataset:
    """input_ids, attention_mask, labels and length; no padding (collation pads each batch to its longest row).
    No token_type_ids: DistilBERT takes none, and BERT's default (all zeros) is what a single text gets anyway."""

    def encode(batch):
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_length, return_token_type_ids=False)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    tokenized = dataset.map(encode, batched=True, remove_columns=["text"], desc="tokenize")
    return tokenized.rename_column("label", "labels")


def class_balance(splits: DatasetDict) -> pd.DataFrame:
    """Rows per class and split."""
    table = {name: pd.Series(split["label"]).value_counts().sort_index() for name, split in splits.items()}
    frame = pd.DataFrame(table).fillna(0).astype(int)
    frame.index = [LABELS[i] for i in frame.index]
    frame.loc["total"] = frame.sum()
    return frame


def length_table(dataset: Dataset, tokenizer, max_length: int) -> pd.DataFrame:
    """Per-row length in words and in tokens, and whether max_length truncates it."""
    frame = pd.DataFrame({"label": [LABELS[i] for i in dataset["label"]]})
    texts = list(dataset["text"])
    frame["words"] = [len(text.split()) for text in texts]
    frame["tokens"] = [len(ids) for ids in tokenizer(texts, return_token_type_ids=False)["input_ids"]]
    frame["truncated"] = frame["tokens"] > max_length
    return frame


def duplicates_report(splits: DatasetDict) -> dict[str, int]:
    """Exact duplicate texts within train (with validation), within test, and shared between them."""
    train = pd.Series(list(splits["train"]["text"]) + list(splits.get("validation", {"text": []})["text"]))
    test = pd.Series(list(splits["test"]["text"]))
    return {"train_duplicate_texts": int(train.duplicated().sum()),
            "test_duplicate_texts": int(test.duplicated().sum()),
            "test_texts_also_in_train": int(test.isin(set(train)).sum())}
