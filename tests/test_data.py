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


# ---- the three data forms -------------------------------------------------------------------------------

def test_save_to_disk_folder_loads_like_the_tsv_folder_with_the_same_fingerprint(toy_data, tmp_path):
    from kdlab.data import data_fingerprint, splits_fingerprint

    splits = load_splits(toy_data)
    saved = tmp_path / "saved"
    splits.save_to_disk(str(saved))
    assert data.data_form(saved) == "saved"
    again = load_splits(saved)
    assert label_names(again) == label_names(splits)
    for split in ("train", "dev", "test"):
        assert list(again[split]["text"]) == list(splits[split]["text"])
        assert list(again[split]["label"]) == list(splits[split]["label"])
    assert data_fingerprint(saved) == data_fingerprint(toy_data) == splits_fingerprint(splits)


def test_save_to_disk_with_string_labels_and_a_validation_split(toy_data, tmp_path):
    from datasets import Dataset, DatasetDict

    splits = load_splits(toy_data)
    names = label_names(splits)
    as_strings = {
        {"dev": "validation"}.get(split, split): Dataset.from_dict(
            {"text": list(splits[split]["text"]), "label": [names[i] for i in splits[split]["label"]]})
        for split in ("train", "dev", "test")
    }
    DatasetDict(as_strings).save_to_disk(str(tmp_path / "saved"))
    again = load_splits(tmp_path / "saved")
    assert list(again) == ["train", "dev", "test"] and len(again["dev"]) == 30
    assert data.splits_fingerprint(again) == data.splits_fingerprint(splits)  # content, not layout


def test_hub_branch_reads_what_load_dataset_returns(toy_data, tmp_path):
    """The hub code path without internet: load_dataset on a local folder of csv files (dev.csv → validation)."""
    folder = tmp_path / "hubby"
    folder.mkdir()
    for split in ("train", "dev", "test"):
        frame = (toy_data / f"{split}.tsv").read_text().replace("\t", ",")
        (folder / f"{split}.csv").write_text(frame)
    from_hub = data._load_hub_dataset(str(folder))
    local = load_splits(toy_data)
    assert data.splits_fingerprint(from_hub) == data.splits_fingerprint(local)


def test_a_hub_id_goes_to_load_dataset_and_validation_becomes_dev(toy_data, monkeypatch):
    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    local = load_splits(toy_data)
    features = Features({"text": Value("string"), "label": ClassLabel(names=label_names(local))})
    fake = DatasetDict({
        {"dev": "validation"}.get(s, s): Dataset.from_dict({"text": list(local[s]["text"]), "label": list(local[s]["label"])},
                                                         features=features)
        for s in ("train", "dev", "test")
    })
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name: asked.append(name) or fake)
    assert data.data_form("someone/banking") == "hub"
    loaded = load_splits("someone/banking")
    assert asked == ["someone/banking"]
    assert data.splits_fingerprint(loaded) == data.splits_fingerprint(local)
    assert data.data_fingerprint("someone/banking") == data.splits_fingerprint(local)


def test_hub_split_without_labels_is_refused(monkeypatch):
    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=["a", "b"])})
    part = lambda labels: Dataset.from_dict({"text": [f"t{i}" for i in range(len(labels))], "label": labels}, features=features)
    fake = DatasetDict(train=part([0, 1, 0]), validation=part([0, 1]), test=part([-1, -1]))
    monkeypatch.setattr(datasets, "load_dataset", lambda name: fake)
    with pytest.raises(ValueError, match=r"hub dataset 'x/y' split 'test' has 2 row\(s\) without a label"):
        load_splits("x/y")


# ---- parser errors name the file and the fix ---------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    ("text\tlabel\ncafé au lait\tcard_lost\n".encode("latin-1"), r"test.tsv is not UTF-8 text: line 2 holds byte 0xE9.*save it as UTF-8"),
    ("text\tlabel\nhello\tcard_lost\n".encode("utf-16"), r"test.tsv looks UTF-16 encoded.*save it as UTF-8"),
    (b"PK\x03\x04\x00\x00binary\x00stuff", r"test.tsv is a binary file, not text \(a zip archive"),
    (b"", r"test.tsv is empty \(0 bytes\)"),
    (b"  \n\n", r"test.tsv is empty \(4 bytes\)"),
    (b"text\tlabel\nok one\tcard_lost\ntwo\ttabs here\tcard_lost\nok\ttop_up\n", r"test.tsv line 3 has 3 fields where the header has 2.*tab inside the text"),
    (b'text\tlabel\n"a query\nover two lines"\tcard_lost\nok\ttop_up\nbad\textra\ttop_up\n', r"test.tsv line 5 has 3 fields"),  # physical line, not record 4
    (b"text\tlabel\nok one\tcard_lost\nno tab here\nok\ttop_up\n", r"test.tsv line 3 has 1 fields.*tab between text and label missing"),
    (b'text\tlabel\nok\tcard_lost\n"my card\tcard_lost\nmore\ttop_up\n', r"test.tsv line 3 has 1 fields.*starts on line 3 runs on to line 4.*double quote"),
    (b'text\tlabel\nok\tcard_lost\n"my card\tcard_lost\nmore" text\ttop_up\n', r"test.tsv line 3: one text swallowed several lines.*runs on to line 4"),
    (b"text\tlabel\nhello\t \n  \tcard_lost\nfine\ttop_up\n", r"test.tsv has empty text or label on line\(s\) \[2, 3\]"),
    (b"text,label\nhello,card_lost\n", r"test.tsv lacks column\(s\).*separates columns with tabs"),
])
def test_broken_files_get_the_file_the_line_and_the_fix(toy_data, content, message):
    (toy_data / "test.tsv").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_splits(toy_data)


def test_semicolon_csv_says_to_use_commas(tmp_path):
    for split in ("train", "dev", "test"):
        write_toy_split(tmp_path / f"{split}.csv", 12, 3, sep=";")
    with pytest.raises(ValueError, match=r"train.csv lacks column.*separate columns with commas"):
        load_splits(tmp_path)


def test_labels_na_none_null_are_real_strings(toy_data):
    lines = ["text\tlabel"] + [f"query number {i}\t{name}" for i in range(4) for name in ("NA", "None", "null", "nan")]
    for split in ("train", "dev", "test"):
        (toy_data / f"{split}.tsv").write_text("\n".join(lines).replace("query", split) + "\n")
    splits = load_splits(toy_data)
    assert label_names(splits) == ["NA", "None", "nan", "null"]
    assert splits["train"][0]["text"] == "train number 0"


def test_a_file_instead_of_a_folder_and_tsv_plus_csv_are_refused(toy_data):
    with pytest.raises(ValueError, match=r"data is empty"):
        load_splits("")  # not the current directory
    with pytest.raises(ValueError, match=r"train.tsv is a file, not a folder: pass the folder"):
        load_splits(toy_data / "train.tsv")
    write_toy_split(toy_data / "dev.csv", 10, 5, sep=",")
    with pytest.raises(ValueError, match=r"holds both dev.tsv and dev.csv.*remove \(or rename\) the one"):
        load_splits(toy_data)


def test_train_with_one_class_is_refused_before_any_teacher_work(toy_data):
    (toy_data / "train.tsv").write_text("text\tlabel\nmy card is lost\tcard_lost\nlost wallet\tcard_lost\n")
    (toy_data / "dev.tsv").write_text("text\tlabel\ncard stolen\tcard_lost\n")
    (toy_data / "test.tsv").write_text("text\tlabel\nmissing card\tcard_lost\n")
    with pytest.raises(ValueError, match=r"train has only one class \('card_lost'\)"):
        load_splits(toy_data)


def test_banking77_parser_gives_what_pandas_gives():
    """The csv-module reader keeps the vendored files' content identical to pandas' default quoting."""
    import pandas as pd

    splits = load_splits()
    names = label_names(splits)
    for split in ("train", "dev", "test"):
        frame = pd.read_csv(data.DEFAULT_DATA_DIR / f"{split}.tsv", sep="\t", dtype=str)
        assert list(splits[split]["text"]) == frame["text"].tolist()
        assert [names[i] for i in splits[split]["label"]] == frame["label"].tolist()


# ---- leakage ---------------------------------------------------------------------------------------------

def test_dev_test_texts_copied_from_train_are_counted_once(toy_data, monkeypatch):
    monkeypatch.setattr(data, "_LEAKAGE_SAID", set())
    train_line = (toy_data / "train.tsv").read_text().splitlines()[1]
    with open(toy_data / "test.tsv", "a") as handle:
        handle.write(train_line + "\n" + train_line + "\n")
    with pytest.warns(data.DataLeakageWarning, match=r"0 dev and 2 test row\(s\) have a text identical to a train row") as caught:
        load_splits(toy_data)
    assert train_line.split("\t")[0] in str(caught[0].message)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", data.DataLeakageWarning)
        load_splits(toy_data)  # said once per process and data, not at every load


def test_banking77_has_one_exact_train_test_duplicate(monkeypatch):
    monkeypatch.setattr(data, "_LEAKAGE_SAID", set())
    with pytest.warns(data.DataLeakageWarning, match=r"0 dev and 1 test row\(s\).*What businesses accept this card\?"):
        load_splits()
