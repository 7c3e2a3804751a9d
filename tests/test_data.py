"""Data loading: local folders of any shape, the vendored Banking77, and the low-label split."""

from __future__ import annotations

import shutil

import pytest

import kdlab.data as data
from kdlab.data import file_sha256, label_names, load_splits, low_label_split

from toy import write_toy_split


def test_toy_folder_loads_with_class_names_and_ids(toy_data):
    splits = load_splits(toy_data)
    assert list(splits) == ["train", "dev", "test"]
    assert label_names(splits) == ["card_lost", "exchange", "top_up"]
    train = splits["train"]
    assert len(train) == 90 and list(train["id"]) == list(range(90))
    first = (toy_data / "train.tsv").read_text().splitlines()[1].split("\t")
    assert train[0]["text"] == first[0]
    assert label_names(splits)[train[0]["label"]] == first[1]


def test_csv_files_load_too(tmp_path):
    for split in ("train", "dev", "test"):
        write_toy_split(tmp_path / f"{split}.csv", 12, 3, sep=",")
    assert len(load_splits(tmp_path)["test"]) == 12


def test_vendored_banking77_has_the_documented_shape():
    splits = load_splits()
    assert {s: len(splits[s]) for s in splits} == {"train": 9003, "dev": 1000, "test": 3080}
    assert len(label_names(splits)) == 77
    for name, expected in data.BANKING77_SHA256.items():
        assert file_sha256(data.DEFAULT_DATA_DIR / name) == expected


def test_tampered_banking77_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "banking77"
    shutil.copytree(data.DEFAULT_DATA_DIR, copy)
    with open(copy / "dev.tsv", "a") as handle:
        handle.write("one more query\tcard_arrival\n")
    monkeypatch.setattr(data, "DEFAULT_DATA_DIR", copy)
    with pytest.raises(ValueError, match="dev.tsv does not match the vendored Banking77 sha256"):
        data.load_splits(copy)


def test_missing_folder_and_missing_split_say_what_to_add(tmp_path, toy_data):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_splits(tmp_path / "nowhere")
    (toy_data / "dev.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="no 'dev' split: add dev.tsv or dev.csv"):
        load_splits(toy_data)


def test_missing_column_empty_split_and_blank_rows_are_refused(toy_data):
    (toy_data / "test.tsv").write_text("query\tlabel\nhello\tcard_lost\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['text'\]"):
        load_splits(toy_data)
    (toy_data / "test.tsv").write_text("text\tlabel\n")
    with pytest.raises(ValueError, match="has no rows"):
        load_splits(toy_data)
    (toy_data / "test.tsv").write_text("text\tlabel\nhello\t\n")
    with pytest.raises(ValueError, match=r"empty text or label on line\(s\) \[2\]"):
        load_splits(toy_data)


def test_labels_unseen_in_train_are_refused(toy_data):
    with open(toy_data / "test.tsv", "a") as handle:
        handle.write("where is my parcel\tparcel_tracking\n")
    with pytest.raises(ValueError, match=r"test has label\(s\) never seen in train: \['parcel_tracking'\]"):
        load_splits(toy_data)


def test_hub_id_offline_says_to_use_a_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="Offline\\? Save it as a folder"):
        load_splits("nobody-here/not-a-dataset")


def test_low_label_split_keeps_k_per_class_and_the_rest_as_transfer(toy_data):
    train = load_splits(toy_data)["train"]
    labelled, transfer = low_label_split(train, 5, seed=0)
    counts = {c: list(labelled["label"]).count(c) for c in range(3)}
    assert counts == {0: 5, 1: 5, 2: 5}
    assert set(labelled["id"]).isdisjoint(transfer["id"])
    assert sorted(list(labelled["id"]) + list(transfer["id"])) == list(range(90))
    again, _ = low_label_split(train, 5, seed=0)
    other, _ = low_label_split(train, 5, seed=1)
    assert list(again["id"]) == list(labelled["id"]) and list(other["id"]) != list(labelled["id"])
    with pytest.raises(ValueError, match="labels_per_class must be an integer ≥ 1"):
        low_label_split(train, 0)
