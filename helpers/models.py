"""Tokenizer, teacher and student per profile; sizes. Every model is loaded by ``from_pretrained``, on a hub id
(``full``) or on a folder written here by ``save_pretrained`` (``cpu``, ``smoke``): one loading path everywhere."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    PreTrainedModel,
)

from helpers import cache
from helpers.config import LABELS, Config, minilm_path
from helpers.data import synthetic_vocabulary

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The real teacher's config names its classes LABEL_0..3; we build the stand-ins the same way and verify the order
# against the data (evaluate.check_label_order) rather than trusting names.
GENERIC_LABELS = {i: f"LABEL_{i}" for i in range(len(LABELS))}
# The teacher ships only pytorch_model.bin. Loading it from the hub would start transformers' background
# "auto_conversion" thread, which asks a hub Space to convert the repo (a pull request on someone else's model) while
# training runs; a DataLoader worker forked beside that thread risks a hang. We load the .bin and convert nothing.
os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")


def _label_kwargs() -> dict:
    return {"num_labels": len(LABELS), "id2label": dict(enumerate(LABELS)),
            "label2id": {name: i for i, name in enumerate(LABELS)}}


def tokenizer_path(config: Config) -> str:
    """Hub id or local folder of the profile's tokenizer (built on first use for smoke)."""
    if config.tokenizer_hub_id:
        return config.tokenizer_hub_id
    if config.local_base == "minilm":
        return minilm_path()
    folder = Path(config.cache_dir) / "tokenizer"
    if not (folder / "tokenizer_config.json").exists():
        vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + synthetic_vocabulary())}
        with cache.atomic_folder(folder) as temporary:
            BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(temporary)
    return str(folder)


def load_tokenizer(config: Config):
    return AutoTokenizer.from_pretrained(tokenizer_path(config))


def base_teacher_path(config: Config) -> str:
    """Where a locally fine-tuned teacher starts from: MiniLM (cpu) or a tiny random BERT (smoke)."""
    if config.local_base == "minilm":
        return minilm_path()
    folder = Path(config.cache_dir) / "teacher-init"
    if not cache.complete_model_folder(folder):
        tokenizer = load_tokenizer(config)
        bert = BertConfig(vocab_size=len(tokenizer), hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=96, max_position_embeddings=64, id2label=GENERIC_LABELS,
                          label2id={v: k for k, v in GENERIC_LABELS.items()})
        torch.manual_seed(config.data_seed)
        with cache.atomic_folder(folder) as temporary:
            BertForSequenceClassification(bert).save_pretrained(temporary)
    return str(folder)


def fine_tuned_teacher_path(config: Config) -> Path:
    """The keyed folder of a teacher fine-tuned here: other data or settings name another folder, never this one."""
    from helpers import data, hardware, results

    key = cache.key_of(config.profile, data.source_fingerprint(config), config.data_seed, config.validation_rows,
                       config.max_train_rows, config.teacher_epochs, config.teacher_batch_size,
                       config.teacher_learning_rate, config.teacher_warmup_ratio, config.teacher_length,
                       config.weight_decay, hardware.resolve_precision(config.precision), results.code_hash())
    return Path(config.cache_dir) / f"teacher-{key}"


def teacher_path(config: Config) -> str:
    """Hub id (full) or the folder of the locally fine-tuned teacher (cpu, smoke)."""
    if config.teacher_hub_id:
        return config.teacher_hub_id
    folder = fine_tuned_teacher_path(config)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"No fine-tuned teacher at {folder}. Run notebooks/02_teacher_evaluation.ipynb "
                                "(or helpers.pipeline.load_or_train_teacher) first.")
    return str(folder)


def load_classifier(path: str, attn_implementation: str | None = None, **kwargs) -> PreTrainedModel:
    """``AutoModelForSequenceClassification.from_pretrained`` with an actionable error for a missing model."""
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            path, attn_implementation=attn_implementation, **kwargs)
    except OSError as error:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or not Path(path).exists()
        hint = (" The hub is unreachable from here: use KD_PROFILE=cpu or smoke, or copy the model folder "
                "locally and point the config at it.") if offline else ""
        raise OSError(f"Could not load the model {path!r}: {error}.{hint}") from error


def load_teacher(config: Config, attn_implementation: str | None = None) -> PreTrainedModel:
    """The frozen teacher: eval mode, no gradients."""
    teacher = load_classifier(teacher_path(config), attn_implementation=attn_implementation)
    return freeze(teacher)


def freeze(model: PreTrainedModel) -> PreTrainedModel:
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _distilbert_from_bert(bert: BertForSequenceClassification, layers: list[int]
                          ) -> DistilBertForSequenceClassification:
    """A DistilBERT initialised from a BERT's embeddings and a subset of its layers, as DistilBERT itself was."""
    source = bert.config
    config = DistilBertConfig(vocab_size=source.vocab_size, max_position_embeddings=source.max_position_embeddings,
                              dim=source.hidden_size, n_layers=len(layers), n_heads=source.num_attention_heads,
                              hidden_dim=source.intermediate_size, activation=source.hidden_act, **_label_kwargs())
    student = DistilBertForSequenceClassification(config)
    copy_bert_layers(bert.bert, student.distilbert, layers)
    return student


def copy_bert_layers(bert, distilbert, layers: list[int]) -> None:
    """A BertModel's embeddings and ``layers`` into a DistilBertModel, in place."""
    with torch.no_grad():
        distilbert.embeddings.word_embeddings.weight.copy_(bert.embeddings.word_embeddings.weight)
        # DistilBERT has no token-type embeddings; BERT adds type 0 to every token, so fold it into positions.
        distilbert.embeddings.position_embeddings.weight.copy_(
            bert.embeddings.position_embeddings.weight + bert.embeddings.token_type_embeddings.weight[0])
        distilbert.embeddings.LayerNorm.load_state_dict(bert.embeddings.LayerNorm.state_dict())
        for target, index in zip(distilbert.transformer.layer, layers, strict=True):
            layer = bert.encoder.layer[index]
            attention = layer.attention
            target.attention.q_lin.load_state_dict(attention.self.query.state_dict())
            target.attention.k_lin.load_state_dict(attention.self.key.state_dict())
            target.attention.v_lin.load_state_dict(attention.self.value.state_dict())
            target.attention.out_lin.load_state_dict(attention.output.dense.state_dict())
            target.sa_layer_norm.load_state_dict(attention.output.LayerNorm.state_dict())
            target.ffn.lin1.load_state_dict(layer.intermediate.dense.state_dict())
            target.ffn.lin2.load_state_dict(layer.output.dense.state_dict())
            target.output_layer_norm.load_state_dict(layer.output.LayerNorm.state_dict())


def student_init_path(config: Config) -> str:
    """Hub id (full) or a folder holding the untrained student, written once (cpu, smoke)."""
    if config.student_hub_id:
        return config.student_hub_id
    folder = Path(config.cache_dir) / "student-init"
    if not cache.complete_model_folder(folder):
        torch.manual_seed(config.data_seed)
        if config.local_base == "minilm":
            minilm = BertForSequenceClassification.from_pretrained(minilm_path(), num_labels=4)
            step = minilm.config.num_hidden_layers // config.student_layers
            student = _distilbert_from_bert(minilm, list(range(0, minilm.config.num_hidden_layers, step)))
        else:
            # Narrower than the smoke teacher (32 vs 48) so the feature loss's learned projection is exercised.
            tiny = DistilBertConfig(vocab_size=len(load_tokenizer(config)), dim=32, n_layers=config.student_layers,
                                    n_heads=4, hidden_dim=64, max_position_embeddings=64, **_label_kwargs())
            student = DistilBertForSequenceClassification(tiny)
        with cache.atomic_folder(folder) as temporary:
            student.save_pretrained(temporary)
    return str(folder)


def load_student(config: Config, seed: int, attn_implementation: str | None = None) -> PreTrainedModel:
    """The untrained student; ``seed`` fixes its fresh classification head."""
    torch.manual_seed(seed)
    return load_classifier(student_init_path(config), attn_implementation=attn_implementation, **_label_kwargs())


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def size_on_disk_mb(folder: str | Path) -> float:
    """Megabytes of a saved model's weight files: a folder, or a hub id (``full``'s teacher) read from the snapshot
    ``from_pretrained`` left in the Hugging Face cache (nothing is downloaded)."""
    if not Path(folder).is_dir():
        from huggingface_hub import snapshot_download

        folder = snapshot_download(str(folder), local_files_only=True)
    files = [f for f in Path(folder).iterdir() if f.suffix in (".safetensors", ".bin")]
    return sum(f.stat().st_size for f in files) / 2**20


def check_vocabularies(tokenizer, *models: PreTrainedModel) -> None:
    """Teacher and student must read the same token ids: one tokenizer feeds both."""
    sizes = {type(m).__name__: m.config.vocab_size for m in models}
    if any(size != len(tokenizer) for size in sizes.values()):
        raise ValueError(f"Vocabulary mismatch: tokenizer has {len(tokenizer)} tokens, models have {sizes}. "
                         "Teacher and student must share the tokenizer's vocabulary (bert-base-uncased).")
