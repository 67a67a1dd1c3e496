import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import data
from helpers.config import SHARED_DATA_DIR, get_config

ROWS = pd.DataFrame({"text": ["Stocks rally on earnings", "Team wins the cup", "New chip unveiled", "Talks collapse"],
                     "label": [2, 1, 3, 0]})


def write_split(folder, frame, split="train", suffix=".parquet"):
    path = folder / f"{split}{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict(orient="records")))
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_loads_the_hugging_face_layout(tmp_path, suffix):
    write_split(tmp_path, ROWS, "train", suffix)
    write_split(tmp_path, ROWS, "test", suffix)
    loaded = data.load_local_dataset(tmp_path)
    assert loaded["train"]["text"][:] == ROWS["text"].tolist()
    assert loaded["test"]["label"][:] == ROWS["label"].tolist()
    assert loaded["train"].features["label"].names == ["World", "Sports", "Business", "Sci/Tech"]


def test_loads_the_original_ag_news_csv(tmp_path):
    original = '"3","Wall St. Bears","Short-sellers are seeing green."\n"1","Talks","Envoys meet."\n'
    (tmp_path / "train.csv").write_text(original)
    (tmp_path / "test.csv").write_text(original)
    loaded = data.load_local_dataset(tmp_path)
    assert loaded["train"]["text"][0] == "Wall St. Bears Short-sellers are seeing green."
    assert loaded["train"]["label"][:] == [2, 0]


@pytest.mark.parametrize("frame, message", [
    (ROWS.drop(columns="label"), "missing column"),
    (ROWS.assign(label=[0, 1, 2, 4]), "outside 0..3: \\[4\\]"),
    (ROWS.assign(label=[0, 1, 2.5, 3]), "non-integer"),
    (ROWS.assign(label=[0, None, 2, 3]), "non-integer or null"),
    (ROWS.assign(text=["ok", "  ", "fine", "good"]), "empty or null texts"),
    (ROWS.assign(text=["ok", None, "fine", "good"]), "empty or null texts"),
    (ROWS.iloc[:0], "no rows"),
])
def test_bad_files_raise_naming_file_and_problem(tmp_path, frame, message):
    path = write_split(tmp_path, frame)
    write_split(tmp_path, ROWS, "test")
    with pytest.raises(ValueError, match=message) as error:
        data.load_local_dataset(tmp_path)
    assert str(path) in str(error.value)


def test_missing_folder_file_and_empty_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="KD_DATA_DIR"):
        data.load_local_dataset(tmp_path / "nowhere")
    write_split(tmp_path, ROWS, "train")
    with pytest.raises(FileNotFoundError, match="No test file"):
        data.load_local_dataset(tmp_path)
    (tmp_path / "test.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        data.load_local_dataset(tmp_path)


def test_original_csv_label_out_of_range_is_reported(tmp_path):
    (tmp_path / "train.csv").write_text('"5","Title","Body"\n')
    (tmp_path / "test.csv").write_text('"1","Title","Body"\n')
    with pytest.raises(ValueError, match="outside 0..3"):
        data.load_local_dataset(tmp_path)


def test_stratified_subset_is_balanced_and_nested():
    dataset = data.load_synthetic_dataset(train_rows=400)["train"]
    small, large = data.stratified_subset(dataset, 40, seed=0), data.stratified_subset(dataset, 200, seed=0)
    assert np.bincount(small["label"][:]).tolist() == [10, 10, 10, 10]
    assert set(small["text"][:]) <= set(large["text"][:])
    assert data.stratified_subset(dataset, None, seed=0) is dataset


def test_splits_keep_test_whole_and_carve_a_stratified_validation(smoke_config):
    splits = data.load_splits(smoke_config)
    assert len(splits["validation"]) == smoke_config.validation_rows
    assert np.bincount(splits["validation"]["label"][:]).tolist() == [16] * 4
    assert not set(splits["validation"]["text"][:]) & set(splits["train"]["text"][:])
    assert len(splits["test"]) == 200


def test_tokenize_gives_no_token_type_ids_and_respects_max_length(smoke_workspace):
    tokenized = smoke_workspace.tokenized["student_train"]
    assert set(tokenized.column_names) == {"input_ids", "attention_mask", "labels", "length"}
    assert max(tokenized["length"][:]) <= smoke_workspace.config.max_length


def test_synthetic_rows_are_learnable_but_not_trivial():
    """A bag of words learns the synthetic task from 400 rows; a one-word lookup does not get every row, because
    rows carry other topics' words too. The test rows are not the train rows."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    splits = data.load_synthetic_dataset(train_rows=400, test_rows=200, seed=0)
    train, test = splits["train"].to_pandas(), splits["test"].to_pandas()
    assert not set(train["text"]) & set(test["text"])
    words = CountVectorizer().fit(train["text"])
    model = LogisticRegression(max_iter=1000).fit(words.transform(train["text"]), train["label"])
    assert (model.predict(words.transform(test["text"])) == test["label"]).mean() > 0.9
    topic = {word: label for label, topic_words in data._TOPIC_WORDS.items() for word in topic_words}
    first_topic_word = [next(topic[w] for w in text.lower().split() if w in topic) for text in test["text"]]
    assert 0.5 < (np.asarray(first_topic_word) == test["label"]).mean() < 0.98
    assert data.synthetic_frame(50, seed=3).equals(data.synthetic_frame(50, seed=3))  # the fingerprint relies on it


# --------------------------------------------------------------------------------------------- fresh views
CLS, SEP, PAD, MASK = 2, 3, 0, 4
SPECIAL = torch.tensor([CLS, SEP, PAD])


def batch_of(lengths: list[int], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows [CLS] w1 .. wk [SEP] [PAD]..., every ordinary token distinct (10, 11, ...: its original position
    readable from its id), padded to the longest row (or ``width``)."""
    width = width or max(lengths)
    ids, mask = torch.full((len(lengths), width), PAD), torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.tensor([CLS, *range(10, 10 + length - 2), SEP])
        mask[row, :length] = 1
    return ids, mask


def view(ids, mask, drop=0.1, masked=0.1):
    return data.fresh_view(ids, mask, SPECIAL, MASK, PAD, drop=drop, mask=masked)


def test_a_fresh_view_keeps_special_tokens_padding_and_order():
    torch.manual_seed(0)
    ids, mask = batch_of([40, 12, 3, 2, 25] * 20, width=48)  # [CLS] x [SEP] and [CLS][SEP] rows too
    new_ids, new_mask = view(ids, mask, drop=0.3, masked=0.3)
    assert new_ids.shape == new_mask.shape and new_ids.shape[0] == ids.shape[0]
    assert new_mask.dtype == mask.dtype
    lengths = new_mask.sum(dim=1)
    assert new_ids.shape[1] == int(lengths.max()) < 48  # no all-padding column is left
    for row in range(ids.shape[0]):
        kept, rest = new_ids[row, : lengths[row]].tolist(), new_ids[row, lengths[row]:].tolist()
        assert new_mask[row].tolist() == [1] * lengths[row] + [0] * len(rest)  # the mask marks exactly the kept
        assert set(rest) <= {PAD}
        assert kept[0] == CLS and kept[-1] == SEP and kept.count(CLS) == kept.count(SEP) == 1  # never dropped/masked
        assert PAD not in kept
        ordinary = [token for token in kept[1:-1] if token != MASK]
        assert ordinary == sorted(ordinary) and len(set(ordinary)) == len(ordinary)  # in their order, none repeated
        assert set(ordinary) <= set(ids[row].tolist())
    short = [row for row in range(ids.shape[0]) if mask[row].sum() <= 3]
    assert all(new_ids[row, : lengths[row]].tolist() in ([CLS, SEP], [CLS, 10, SEP], [CLS, MASK, SEP])
               for row in short)


def test_without_dropping_or_masking_a_view_is_the_batch():
    ids, mask = batch_of([9, 5, 7])
    new_ids, new_mask = view(ids, mask, drop=0.0, masked=0.0)
    assert torch.equal(new_ids, ids) and torch.equal(new_mask, mask)


def test_a_view_drops_and_masks_about_a_tenth_of_the_ordinary_tokens():
    torch.manual_seed(1)
    ids, mask = batch_of([130] * 64)  # 8,192 ordinary tokens
    new_ids, new_mask = view(ids, mask)
    ordinary = 128 * 64
    kept = int(new_mask.sum()) - 2 * 64
    masked = int((new_ids == MASK).sum())
    assert 0.08 < 1 - kept / ordinary < 0.12  # dropped: 10% ± ~6 standard deviations
    assert 0.08 < masked / kept < 0.12  # masked among the tokens kept


def test_a_view_follows_torchs_seed():
    ids, mask = batch_of([30, 18, 25, 9])
    torch.manual_seed(7)
    first = view(ids, mask)
    torch.manual_seed(7)
    again = view(ids, mask)
    torch.manual_seed(8)
    other = view(ids, mask)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not (first[0].shape == other[0].shape and torch.equal(first[0], other[0]))


@pytest.mark.skipif(not SHARED_DATA_DIR.exists(), reason="the shared AG News copy is not beside this checkout")
def test_the_shared_ag_news_copy_loads_complete_test_split():
    splits = data.load_splits(get_config("cpu", data_dir=str(SHARED_DATA_DIR)))
    assert len(splits["test"]) == 7_600
    assert np.bincount(splits["test"]["label"][:]).tolist() == [1_900] * 4
    assert splits["test"]["text"][0].startswith("Fears for T N pension after talks")
