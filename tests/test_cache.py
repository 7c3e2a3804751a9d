"""The teacher cache: built once, reused, keyed, aligned by id, stale files rebuilt."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import kdlab.cache as cache_module
from kdlab.cache import TeacherSettings, cache_root, load_teacher_cache, teacher_head

SETTINGS = TeacherSettings(head_epochs=30, head_lr=1e-2)


@pytest.fixture
def built(toy_data, tiny_bert, tmp_path):
    root = tmp_path / "cache"
    cache = load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, progress=False)
    return cache, root


def test_miss_builds_a_safetensors_file_with_every_split(built, toy_data):
    cache, root = built
    assert cache.path.parent == root and cache.path.suffix == ".safetensors"
    stored = load_file(str(cache.path))  # plain tensors: nothing to unpickle
    for split, rows in (("train", 90), ("dev", 30), ("test", 30)):
        assert stored[f"{split}.logits"].shape == (rows, 3)
        assert torch.equal(cache.ids[split], torch.arange(rows))
    # The toy intents are separable from their words: even a random tiny encoder + head learns them.
    assert cache.accuracy("train") > 0.6


def test_hit_loads_without_building(built, toy_data, tiny_bert, monkeypatch):
    cache, root = built
    monkeypatch.setattr(cache_module, "build_teacher_cache", lambda *a, **k: pytest.fail("rebuilt a valid cache"))
    again = load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, progress=False)
    assert torch.equal(again.logits["test"], cache.logits["test"])


def test_other_settings_or_data_get_their_own_key(built, toy_data, tiny_bert):
    cache, root = built
    other = load_teacher_cache(toy_data, str(tiny_bert), TeacherSettings(head_epochs=5), root=root, progress=False)
    assert other.key != cache.key
    with open(toy_data / "train.tsv", "a") as handle:
        handle.write("lost wallet card\tcard_lost\n")
    changed = load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, progress=False)
    assert changed.key not in (cache.key, other.key) and len(changed.ids["train"]) == 91


def _rewrite(path, change):
    """Rewrite a cache file's tensors in place, keeping its metadata (simulates a stale file)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=metadata)


@pytest.mark.parametrize("damage", ["shuffled-ids", "nan-logits", "wrong-labels"])
def test_stale_or_misaligned_cache_is_rebuilt_with_a_message(built, toy_data, tiny_bert, capsys, damage):
    cache, root = built

    def change(tensors):
        if damage == "shuffled-ids":
            tensors["train.ids"] = tensors["train.ids"].flip(0)
        elif damage == "nan-logits":
            tensors["dev.logits"][0, 0] = float("nan")
        else:
            tensors["test.labels"] = (tensors["test.labels"] + 1) % 3

    _rewrite(cache.path, change)
    rebuilt = load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, progress=False)
    assert "stale or misaligned" in capsys.readouterr().out
    assert torch.isfinite(rebuilt.logits["dev"]).all()
    assert torch.equal(rebuilt.logits["train"], cache.logits["train"])  # same settings, same seed: same logits


def test_cache_for_another_key_under_the_same_name_is_rebuilt(built, toy_data, tiny_bert, capsys):
    cache, root = built
    tensors = load_file(str(cache.path))
    meta = json.loads(json.dumps({"key": "someone-else", "format": 1}))
    save_file(tensors, str(cache.path), metadata={"kdlab": json.dumps(meta)})
    load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, progress=False)
    assert "written for key someone-else" in capsys.readouterr().out


def test_logits_are_looked_up_by_id_not_by_position(built):
    cache, _ = built
    ids = torch.tensor([7, 2, 55, 0])
    assert torch.equal(cache.logits_for("train", ids), cache.logits["train"][ids])
    with pytest.raises(ValueError, match="not in the teacher cache"):
        cache.logits_for("dev", torch.tensor([29, 500]))
    with pytest.raises(ValueError, match="not in the teacher cache"):
        cache.logits_for("dev", torch.tensor([-1]))


def test_kdlab_cache_variable_moves_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "elsewhere"))
    assert cache_root() == tmp_path / "elsewhere"


def test_teacher_head_turns_cached_features_into_cached_logits(built):
    cache, _ = built
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    head = teacher_head(cache)
    assert torch.equal(torch.rand(3), expected)  # reading the head draws no random numbers
    with torch.no_grad():
        for split in ("train", "test"):
            assert torch.allclose(head(cache.features[split]), cache.logits[split], atol=1e-5)
