"""The teacher: finding the packaged MiniLM, loading any local folder, pooling, embedding."""

from __future__ import annotations

import pytest
import torch

from kdlab.teacher import Teacher, embed, load_encoder, mean_pool, packaged_teacher_path, verify_weights
from kdlab.tokens import tokenize


def test_packaged_minilm_is_found_and_its_weights_verified():
    path = packaged_teacher_path()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def test_wrong_weights_hash_is_refused(tmp_path):
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="corrupted or replaced: reinstall"):
        verify_weights(fake, "0" * 64)


def test_mean_pool_matches_a_loop_over_real_tokens():
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    expected = torch.stack([hidden[i, : int(mask[i].sum())].mean(dim=0) for i in range(3)])
    assert torch.allclose(mean_pool(hidden, mask), expected, atol=1e-6)


def test_local_folder_saved_with_save_pretrained_loads_like_a_hub_id(tiny_bert):
    encoder, tokenizer = load_encoder(str(tiny_bert))
    assert encoder.config.num_hidden_layers == 2 and not encoder.training
    assert tokenizer.tokenize("my card is lost") == ["my", "card", "is", "lost"]


def test_hub_id_while_offline_says_how_to_use_a_local_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        load_encoder("bert-base-uncased")


def test_embed_sorted_batches_equal_one_by_one_features(tiny_bert):
    encoder, tokenizer = load_encoder(str(tiny_bert))
    teacher = Teacher(encoder, num_labels=3)
    texts = ["card lost", "please help my top up money add", "euro", "why is the exchange rate a dollar"]
    tokens = tokenize(tokenizer, texts)
    batched = embed(teacher, tokens, batch_size=3, progress=False)
    with torch.no_grad():
        encoded = [tokenizer([t], return_tensors="pt") for t in texts]
        single = torch.cat([teacher.features(e["input_ids"], e["attention_mask"]) for e in encoded])
    assert torch.allclose(batched, single, atol=1e-5)
    assert not teacher.training


def test_fine_tune_trains_encoder_and_head_and_leaves_eval_mode(tiny_bert, toy_data):
    from kdlab.data import load_splits
    from kdlab.teacher import fine_tune

    encoder, tokenizer = load_encoder(str(tiny_bert))
    teacher = Teacher(encoder, num_labels=3)
    train = load_splits(toy_data)["train"]
    tokens = tokenize(tokenizer, list(train["text"]))
    labels = torch.tensor(list(train["label"]))
    before = [p.detach().clone() for p in teacher.encoder.parameters()]
    losses = fine_tune(teacher, tokens, labels, epochs=4, lr=1e-3, batch_size=16, progress=False)
    assert losses[-1] < losses[0] * 0.8  # it learns the toy intents
    assert any(not torch.equal(a, b) for a, b in zip(before, teacher.encoder.parameters()))  # the encoder moved too
    assert not teacher.training


def test_file_hashes_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import os

    import kdlab.data as data

    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 1000)
    calls = []
    real = data._hash_file
    monkeypatch.setattr(data, "_hash_file", lambda p: calls.append(p) or real(p))
    first = data.file_sha256(path)
    assert data.file_sha256(path) == first and len(calls) == 1  # a second ask reads nothing
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(1, 1))  # even a same-size rewrite with an old mtime is a new (ino, size, mtime) key
    assert data.file_sha256(path) != first and len(calls) == 2


def test_utf16_without_bom_is_named(tmp_path):
    from kdlab.data import _decode

    for encoding in ("utf-16-le", "utf-16-be"):
        with pytest.raises(ValueError, match="looks UTF-16 encoded"):
            _decode(tmp_path / "x.tsv", "text\tlabel\nhello\tcard\n".encode(encoding))


def test_loads_in_four_threads_at_once_leave_gpt2_weight_tying_on(tiny_bert):
    """from_pretrained switches tying off class-wide while it loads; kdlab's loads take turns, so it comes back on."""
    import threading

    from transformers.modeling_utils import PreTrainedModel

    from kdlab.lm_teacher import lm_config, new_gpt2

    original = PreTrainedModel.tie_weights
    together = threading.Barrier(4)
    errors = []

    def load_three_times():
        try:
            together.wait(timeout=60)
            for _ in range(3):
                load_encoder(tiny_bert)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    workers = [threading.Thread(target=load_three_times) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert not errors, errors
    assert PreTrainedModel.tie_weights is original

    class Vocabulary:
        bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

        def __len__(self):
            return 300

    model = new_gpt2(lm_config(Vocabulary(), layers=1, width=16, heads=2, max_length=16))
    assert model.lm_head.weight is model.transformer.wte.weight  # tied: one matrix for input and output
