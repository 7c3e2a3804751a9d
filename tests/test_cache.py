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


def _rewrite(path, change, resign=True):
    """Rewrite a cache file's tensors in place, keeping its metadata.

    resign=True stores checksums of the changed tensors (an intact but stale or misaligned file: the alignment
    checks must catch it); resign=False keeps the old checksums (a file damaged after it was written).
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    change(tensors)
    if resign:
        metadata[cache_module.CHECKSUMS] = cache_module._checksums(tensors)
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


# ---- damaged files: a one-line message and a correct rebuild, never a traceback or silent use -------------

def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_header(path):
    data = bytearray(path.read_bytes())
    for i in range(8, 40):  # inside the JSON header that follows the 8-byte length
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _change_one_logit(path):
    def change(tensors):
        tensors["dev.logits"][3, 1] += 0.5  # still finite: only the checksum can tell
    _rewrite(path, change, resign=False)


def _flip_a_token_id(path):
    def change(tensors):
        ids = tensors["train.input_ids"]
        ids[0, 1] = (ids[0, 1] + 1) % 5
    _rewrite(path, change, resign=False)


@pytest.mark.parametrize("damage", [_truncate, _flip_header, _change_one_logit, _flip_a_token_id],
                         ids=["truncated", "header-flipped", "one-logit-changed", "token-id-flipped"])
def test_damaged_cache_is_rebuilt_with_one_line(built, toy_data, tiny_bert, capsys, damage):
    cache, root = built
    capsys.readouterr()
    damage(cache.path)
    rebuilt = load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, progress=False)
    said = [line for line in capsys.readouterr().out.splitlines() if "Teacher cache" in line]
    assert len(said) == 1 and "is damaged" in said[0] and "rebuilding it" in said[0], said
    for split in ("train", "dev", "test"):
        assert torch.equal(rebuilt.logits[split], cache.logits[split])
        assert torch.equal(rebuilt.tokens[split].input_ids, cache.tokens[split].input_ids)
    again = load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, progress=False)  # the rebuilt file is intact
    assert "Teacher cache" not in capsys.readouterr().out and torch.equal(again.logits["dev"], cache.logits["dev"])


def test_old_format_file_is_rebuilt_not_misread(built, toy_data, tiny_bert, capsys):
    cache, root = built
    tensors = load_file(str(cache.path))
    save_file(tensors, str(cache.path), metadata={"kdlab": json.dumps({"key": cache.key, "format": 1})})
    load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, progress=False)
    assert "(format 1)" in capsys.readouterr().out


# ---- concurrent builds ---------------------------------------------------------------------------------------

def test_two_builds_into_one_empty_cache_both_succeed(toy_data, tiny_bert, tmp_path, monkeypatch):
    import threading

    root = tmp_path / "shared-cache"
    real_save = cache_module.save_file
    together = threading.Barrier(2)

    def save_at_the_same_time(tensors, filename, metadata=None):
        together.wait(timeout=120)  # both runs write at once, and both finish writing before either moves its
        real_save(tensors, filename, metadata=metadata)  # file into place: with one fixed '.partial' name the
        together.wait(timeout=120)  # second move found nothing to move (FileNotFoundError)

    monkeypatch.setattr(cache_module, "save_file", save_at_the_same_time)
    results, errors = [], []

    def run():
        try:
            results.append(load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, progress=False))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert len(results) == 2 and results[0].key == results[1].key
    files = sorted(p.name for p in root.iterdir())
    assert files == [f"teacher-{results[0].key}.safetensors"]  # no leftover partial file
    monkeypatch.setattr(cache_module, "build_teacher_cache", lambda *a, **k: pytest.fail("the shared file is not valid"))
    load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, progress=False)


# ---- the key: teacher tokenizer and config, the splits actually passed, the weights hashed once ------------

def _copy_teacher(tiny_bert, folder, skip=()):
    import shutil

    folder.mkdir()
    for path in tiny_bert.iterdir():
        if path.name not in skip:
            shutil.copy(path, folder / path.name)
    return folder


def test_key_covers_tokenizer_and_config_files(tiny_bert, tmp_path):
    from kdlab.teacher import teacher_fingerprint

    original = teacher_fingerprint(str(tiny_bert))
    vocab = _copy_teacher(tiny_bert, tmp_path / "vocab")
    spec = json.loads((vocab / "tokenizer.json").read_text())  # transformers 5 saves tokenizer.json, no vocab.txt
    table = spec["model"]["vocab"]
    table["card"], table["lost"] = table["lost"], table["card"]  # same weights, two words swapped: other ids, other logits
    (vocab / "tokenizer.json").write_text(json.dumps(spec))
    config = _copy_teacher(tiny_bert, tmp_path / "config")
    (config / "config.json").write_text((config / "config.json").read_text().replace('"hidden_act": "gelu"', '"hidden_act": "relu"'))
    tok_config = _copy_teacher(tiny_bert, tmp_path / "tok-config")
    (tok_config / "tokenizer_config.json").write_text(
        (tok_config / "tokenizer_config.json").read_text().replace('"do_lower_case": true', '"do_lower_case": false'))
    prints = {teacher_fingerprint(str(f)) for f in (vocab, config, tok_config)}
    assert original not in prints and len(prints) == 3
    assert teacher_fingerprint(str(_copy_teacher(tiny_bert, tmp_path / "same"))) == original


def test_teacher_folder_without_tokenizer_is_refused(tiny_bert, toy_data, tmp_path):
    from kdlab.teacher import TOKENIZER_FILES, load_encoder

    bare = _copy_teacher(tiny_bert, tmp_path / "bare", skip=TOKENIZER_FILES)
    with pytest.raises(ValueError, match=r"has no tokenizer files.*save_pretrained"):
        load_teacher_cache(toy_data, str(bare), SETTINGS, root=tmp_path / "cache", progress=False)
    with pytest.raises(ValueError, match="has no tokenizer files"):
        load_encoder(str(bare))


def test_key_follows_the_splits_argument_not_the_data_path(built, toy_data, tiny_bert):
    from datasets import DatasetDict

    cache, root = built
    splits = kdlab_load(toy_data)
    reworded = DatasetDict({s: splits[s] for s in splits})
    reworded["dev"] = reworded["dev"].map(lambda row: {"text": "please " + row["text"]})  # same ids and labels
    other = load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, splits=reworded, progress=False)
    assert other.key != cache.key
    assert not torch.equal(other.features["dev"], cache.features["dev"])  # logits of B's texts, not A's
    same = load_teacher_cache(toy_data, str(tiny_bert), SETTINGS, root=root, splits=splits, progress=False)
    assert same.key == cache.key


def kdlab_load(folder):
    from kdlab.data import load_splits

    return load_splits(folder)


def test_teacher_weights_are_hashed_once_per_load(tiny_bert, toy_data, tmp_path, monkeypatch):
    import kdlab.data as data_module

    fresh = _copy_teacher(tiny_bert, tmp_path / "fresh")  # not yet hashed in this process
    real_hash, hashed = data_module._hash_file, []
    monkeypatch.setattr(data_module, "_hash_file", lambda path: hashed.append(path.name) or real_hash(path))
    load_teacher_cache(toy_data, str(fresh), SETTINGS, root=tmp_path / "cache", progress=False)  # a miss: load + build
    assert hashed.count("model.safetensors") == 1


def test_save_to_disk_data_keys_like_the_tsv_folder_of_the_same_content(built, toy_data, tiny_bert, tmp_path, monkeypatch):
    cache, root = built
    saved = tmp_path / "saved"
    kdlab_load(toy_data).save_to_disk(str(saved))
    monkeypatch.setattr(cache_module, "build_teacher_cache", lambda *a, **k: pytest.fail("same content, rebuilt"))
    same = load_teacher_cache(saved, str(tiny_bert), SETTINGS, root=root, progress=False)
    assert same.key == cache.key and torch.equal(same.logits["test"], cache.logits["test"])
    monkeypatch.undo()
    splits = kdlab_load(toy_data)
    splits["test"] = splits["test"].select(range(20))  # other content: its own key and cache
    splits.save_to_disk(str(tmp_path / "saved-other"))
    other = load_teacher_cache(tmp_path / "saved-other", str(tiny_bert), SETTINGS, root=root, progress=False)
    assert other.key != cache.key and other.logits["test"].shape == (20, 3)


# ---- KDLAB_CACHE is checked before any work ----------------------------------------------------------------

def test_empty_kdlab_cache_is_an_error_not_the_current_directory(monkeypatch, tmp_path, toy_data, tiny_bert):
    monkeypatch.setenv("KDLAB_CACHE", "")
    with pytest.raises(ValueError, match="KDLAB_CACHE is set but empty"):
        cache_root()
    with pytest.raises(ValueError, match="KDLAB_CACHE is set but empty"):
        load_teacher_cache(tmp_path / "no-data-needed-yet", str(tiny_bert), SETTINGS, progress=False)


def test_kdlab_cache_pointing_at_a_file_is_refused(monkeypatch, tmp_path):
    from kdlab.cache import check_cache_root

    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("KDLAB_CACHE", str(afile))
    with pytest.raises(ValueError, match=r"KDLAB_CACHE=.*afile is a file, not a folder: set KDLAB_CACHE to a folder"):
        check_cache_root()
    monkeypatch.setenv("KDLAB_CACHE", str(afile / "below"))
    with pytest.raises(ValueError, match=r"KDLAB_CACHE=.*cannot be created"):
        check_cache_root()


def test_read_only_kdlab_cache_is_refused(monkeypatch, tmp_path):
    import tempfile

    from kdlab.cache import check_cache_root

    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "ro"))
    assert check_cache_root() == tmp_path / "ro" and (tmp_path / "ro").is_dir() and not list((tmp_path / "ro").iterdir())

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # root may write anywhere: simulate a read-only folder
    with pytest.raises(ValueError, match=r"KDLAB_CACHE=.*ro is not writable \(Permission denied\)"):
        check_cache_root()


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_folder_is_refused_for_real(monkeypatch, tmp_path):
    from kdlab.cache import check_cache_root

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    monkeypatch.setenv("KDLAB_CACHE", str(folder))
    try:
        with pytest.raises(ValueError, match="is not writable"):
            check_cache_root()
    finally:
        folder.chmod(0o755)
