"""Shared fixtures: a tiny random BERT saved with save_pretrained, and a tiny data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toy import FILLER, TOY_WORDS, write_toy_split

os.environ.setdefault("HF_HUB_OFFLINE", "1")

@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread: the test tensors are small, and extra OpenMP threads stall badly on a busy CPU."""
    from kdlab.threads import threads

    with threads(1):
        yield


def write_toy_folder(folder: Path) -> Path:
    """Train/dev/test .tsv files of the three toy intents (90/30/30 rows) in a new folder."""
    folder.mkdir()
    for split, rows, seed in (("train", 90, 0), ("dev", 30, 1), ("test", 30, 2)):
        write_toy_split(folder / f"{split}.tsv", rows, seed)
    return folder


@pytest.fixture
def toy_data(tmp_path: Path) -> Path:
    """A data folder with train/dev/test .tsv files of the three toy intents."""
    return write_toy_folder(tmp_path / "toy")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT and its tokenizer, saved like a hub download would be."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted({w for ws in TOY_WORDS.values() for w in ws} | set(FILLER))
    tokenizer = BertTokenizer(vocab={word: i for i, word in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def toy_cache(tiny_bert, tmp_path_factory):
    """The tiny BERT's teacher cache on the toy data, built once per session; tests must not modify it."""
    from kdlab.cache import TeacherSettings, load_teacher_cache

    root = tmp_path_factory.mktemp("toy-cache")
    data = write_toy_folder(root / "toy")
    return load_teacher_cache(data, str(tiny_bert), TeacherSettings(head_epochs=30, head_lr=1e-2), root=root / "cache",
                              progress=False)


@pytest.fixture(scope="session")
def tiny_teacher(tiny_bert):
    """(encoder, tokenizer) of the tiny BERT: what students of the toy cache read and copy layers from."""
    import kdlab

    return kdlab.load_encoder(str(tiny_bert))
