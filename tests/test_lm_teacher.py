"""The language-model teacher: tokenizer, cache (build, reload, rebuild), hub-style folders, perplexity by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import write_toy_folder
from lm_tiny import TINY_SETTINGS, tiny_lm_teacher


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return tiny_lm_teacher(tmp_path_factory.mktemp("lm-cache"))


def test_tokenizer_wraps_a_query_in_bos_eos_and_round_trips(teacher):
    tokenizer = teacher.tokenizer
    text = "I lost my card, can you help?"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(tokenizer) == TINY_SETTINGS["vocab_size"]
    assert tokenizer.pad_token == "<pad>" and tokenizer.pad_token_id not in (tokenizer.bos_token_id, tokenizer.eos_token_id)
    # byte-level: any text is encodable, nothing becomes <unk>
    assert tokenizer.decode(tokenizer("Zürich €5 🙂")["input_ids"], skip_special_tokens=True) == "Zürich €5 🙂"


def test_the_tokenizer_has_a_chat_template_trl_can_apply(teacher):
    text = teacher.tokenizer.apply_chat_template(
        [{"role": "user", "content": "I lost"}, {"role": "assistant", "content": "my card"}], tokenize=False)
    assert text == "<bos>I lost my card<eos>"


def test_the_teacher_is_a_frozen_gpt2_in_eval_mode_with_its_meta(teacher):
    from transformers import GPT2LMHeadModel

    assert isinstance(teacher.model, GPT2LMHeadModel) and not teacher.model.training
    assert not any(p.requires_grad for p in teacher.model.parameters())
    assert teacher.meta["params"] == teacher.params == sum(p.numel() for p in teacher.model.parameters())
    assert teacher.meta["steps"] == TINY_SETTINGS["steps"] and teacher.meta["train_seconds"] > 0
    assert set(teacher.texts) == {"train", "dev", "test"} and len(teacher.texts["train"]) > 1000
    # trained: clearly better than a uniform guess over the vocabulary
    assert 1 < teacher.meta["test_perplexity"] < TINY_SETTINGS["vocab_size"] / 3


def test_perplexity_is_exp_of_the_mean_token_nll_by_hand(teacher):
    from kdlab.lm_teacher import perplexity

    texts = teacher.texts["test"][:40] + [max(teacher.texts["test"], key=len)]  # one longer than 64 tokens: truncated
    total, count = 0.0, 0
    with torch.no_grad():
        for text in texts:  # one query at a time: no padding at all, so no mask to get wrong
            ids = torch.tensor([teacher.tokenizer(text, truncation=True, max_length=64)["input_ids"]])
            logits = teacher.model(input_ids=ids).logits[0, :-1]
            total += F.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            count += ids.shape[1] - 1
    assert perplexity(teacher.model, teacher.tokenizer, texts, batch_size=16) == pytest.approx(math.exp(total / count), rel=1e-5)


def test_a_second_call_loads_the_cache_instead_of_training(teacher, capsys):
    from kdlab.lm_teacher import load_lm_teacher

    again = load_lm_teacher(progress=False, cache_dir=teacher.path.parent, **TINY_SETTINGS)
    assert "training it" not in capsys.readouterr().out
    assert again.path == teacher.path and again.meta == teacher.meta
    for a, b in zip(again.model.parameters(), teacher.model.parameters()):
        assert torch.equal(a, b)
    files = {p.name for p in teacher.path.iterdir()}
    assert files == {"model", "tokenizer", "meta.json"}
    assert (teacher.path / "model" / "model.safetensors").is_file()
    assert not list(teacher.path.parent.glob("*.partial"))  # the temporary folder was moved into place


def test_the_build_is_deterministic_under_a_seed(teacher, tmp_path):
    from kdlab.lm_teacher import load_lm_teacher

    settings = dict(TINY_SETTINGS, steps=8, data=write_toy_folder(tmp_path / "toy"))
    first = load_lm_teacher(progress=False, cache_dir=tmp_path / "a", **settings)
    second = load_lm_teacher(progress=False, cache_dir=tmp_path / "b", **settings)
    other_seed = load_lm_teacher(progress=False, cache_dir=tmp_path / "b", **dict(settings, seed=1))
    assert first.path.name == second.path.name != other_seed.path.name  # the seed is part of the key
    weights = lambda t: torch.cat([p.flatten() for p in t.model.parameters()])
    assert torch.equal(weights(first), weights(second))
    assert not torch.equal(weights(first), weights(other_seed))


def test_a_stale_folder_is_rebuilt_not_used(teacher, tmp_path, capsys):
    from kdlab.lm_teacher import load_lm_teacher

    settings = dict(TINY_SETTINGS, steps=4, data=write_toy_folder(tmp_path / "toy"))
    built = load_lm_teacher(progress=False, cache_dir=tmp_path, **settings)
    meta = json.loads((built.path / "meta.json").read_text())
    (built.path / "meta.json").write_text(json.dumps(dict(meta, key="someone-else")))
    capsys.readouterr()
    rebuilt = load_lm_teacher(progress=False, cache_dir=tmp_path, **settings)
    assert "rebuilding it" in capsys.readouterr().out
    assert rebuilt.meta["key"] == meta["key"]


def test_a_hub_style_folder_loads_back_by_path(teacher, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    teacher.model.save_pretrained(tmp_path / "hub-teacher")
    teacher.tokenizer.save_pretrained(tmp_path / "hub-teacher")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hub-teacher")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hub-teacher")
    ids = torch.tensor([tokenizer("I lost my card")["input_ids"]])
    assert ids.tolist() == [teacher.tokenizer("I lost my card")["input_ids"]]
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, teacher.model(input_ids=ids).logits)
    assert tokenizer.pad_token_id == teacher.tokenizer.pad_token_id and tokenizer.chat_template


def test_lm_batches_cover_the_data_padded_to_each_batch_and_reproducibly(teacher):
    from kdlab.lm_teacher import lm_batches, lm_labels

    texts = [t for t in teacher.texts["train"] if len(t) < 100][:96]  # none long enough to be truncated
    batches = list(lm_batches(teacher.tokenizer, texts, batch_size=16, steps=6, seed=3))
    assert [b[0].shape[0] for b in batches] == [16] * 6
    decoded = sorted(t for ids, mask in batches for t in teacher.tokenizer.batch_decode(ids, skip_special_tokens=True))
    assert decoded == sorted(texts)  # one epoch: every query exactly once
    again = list(lm_batches(teacher.tokenizer, texts, batch_size=16, steps=6, seed=3))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    ids, mask = batches[0]
    assert (mask.sum(dim=1).max() == ids.shape[1])  # padded to its own longest query
    labels = lm_labels(ids, mask)
    assert torch.equal(labels == -100, mask[:, 1:] == 0) and torch.equal(labels[mask[:, 1:] == 1], ids[:, 1:][mask[:, 1:] == 1])


@pytest.mark.parametrize("settings, words", [
    (dict(steps=0), "steps must be an integer ≥ 1"),
    (dict(width=50, heads=4), "multiple of heads"),
    (dict(vocab_size=100), "vocab_size must be ≥ 259"),
    (dict(stepz=3), "unknown language-model teacher setting"),
    (dict(lr=-1.0), "lr must be > 0"),
])
def test_bad_settings_are_refused_before_any_work(settings, words, tmp_path):
    from kdlab.lm_teacher import load_lm_teacher

    with pytest.raises(ValueError, match=words):
        load_lm_teacher(progress=False, cache_dir=tmp_path, **settings)
    assert not list(tmp_path.iterdir())


def test_encode_queries_refuses_a_bare_string(teacher):
    from kdlab.lm_teacher import encode_queries

    with pytest.raises(ValueError, match=r"wrap it: \[text\]"):
        encode_queries(teacher.tokenizer, "I lost my card")
