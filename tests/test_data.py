import json

import numpy as np
import pandas as pd
import pytest

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
    frame = data.synthetic_frame(200, seed=0)
    assert frame["label"].value_counts().tolist() == [50] * 4
    assert frame["text"].nunique() == 200


@pytest.mark.skipif(not SHARED_DATA_DIR.exists(), reason="the shared AG News copy is not beside this checkout")
def test_the_shared_ag_news_copy_loads_complete_test_split():
    splits = data.load_splits(get_config("cpu", data_dir=str(SHARED_DATA_DIR)))
    assert len(splits["test"]) == 7_600
    assert np.bincount(splits["test"]["label"][:]).tolist() == [1_900] * 4
    assert splits["test"]["text"][0].startswith("Fears for T N pension after talks")
