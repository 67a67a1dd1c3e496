import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from helpers import models


def test_distilbert_from_bert_computes_the_same_function_with_all_layers():
    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                                                    num_attention_heads=4, intermediate_size=64)).eval()
    student = models._distilbert_from_bert(bert, [0, 1]).eval()
    input_ids = torch.randint(5, 50, (3, 7))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 4:] = 0
    with torch.no_grad():
        expected = bert.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        actual = student.distilbert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    valid = attention_mask.bool()
    assert torch.allclose(expected[valid], actual[valid], atol=1e-5)
    assert student.config.n_layers == 2


def test_smoke_tokenizer_knows_the_synthetic_words(smoke_config):
    tokenizer = models.load_tokenizer(smoke_config)
    ids = tokenizer("Shares profit merger")["input_ids"]
    assert tokenizer.unk_token_id not in ids


def test_teacher_is_frozen_and_named_like_the_real_one(smoke_workspace):
    teacher = models.load_teacher(smoke_workspace.config)
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    assert teacher.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2", 3: "LABEL_3"}


def test_student_is_the_real_distilbert_class_with_our_labels(smoke_workspace):
    student = models.load_student(smoke_workspace.config, seed=0)
    assert type(student).__name__ == "DistilBertForSequenceClassification"
    assert student.config.id2label[3] == "Sci/Tech"
    models.check_vocabularies(smoke_workspace.tokenizer, student, models.load_teacher(smoke_workspace.config))


def test_missing_model_error_says_what_to_do(tmp_path):
    with pytest.raises(OSError, match="KD_PROFILE=cpu or smoke"):
        models.load_classifier(str(tmp_path / "no-such-model"))


def test_missing_local_teacher_points_to_the_notebook(smoke_config, tmp_path):
    import dataclasses

    config = dataclasses.replace(smoke_config, cache_dir=str(tmp_path), teacher_max_length=24)
    with pytest.raises(FileNotFoundError, match="02_teacher_evaluation"):
        models.teacher_path(config)
    # Nor is there a teacher to name before notebook 02's rule has chosen its input length.
    with pytest.raises(RuntimeError, match="run notebook 02 first"):
        models.teacher_path(dataclasses.replace(config, teacher_max_length=None))


def test_vocabulary_mismatch_is_an_error(smoke_workspace):
    student = models.load_student(smoke_workspace.config, seed=0)
    student.config.vocab_size += 1
    with pytest.raises(ValueError, match="Vocabulary mismatch"):
        models.check_vocabularies(smoke_workspace.tokenizer, student)
