"""Deployment: int8 keeps the answers, export keeps the logits, timings are sane, bad input is refused."""

from __future__ import annotations

import copy
import datetime
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import kdlab
from kdlab.deployment import (
    DEPLOYMENT_EPOCHS, HEAD_FROM_TEACHER, benchmark_results, deployment_row, export_onnx, export_program, file_size_mb,
    latency_ms, length_growth, onnx_predict_logits, onnx_session, pareto_front, program_module, quantize_dynamic_int8, quantize_onnx_int8,
    results_frame, same_predictions, size_on_disk_mb, trained_student,
)
from kdlab.students import build_student
from kdlab.teacher import load_encoder
from kdlab.tokens import Tokens
from kdlab.training import STUDENT_DEFAULTS, predict_logits


@pytest.fixture(scope="module")
def cache():
    return kdlab.load_teacher_cache(progress=False)


@pytest.fixture(scope="module")
def tokenizer():
    return load_encoder()[1]


@pytest.fixture(scope="module")
def bag(cache, tokenizer):
    """A bag student after one quick epoch on 2,000 real queries: confident enough to have clear argmaxes."""
    student = build_student("bag", tokenizer, len(cache.label_names), seed=0)
    kdlab.train_student(student, cache, epochs=1, lr=1e-2, batch_size=64, rows=torch.arange(2000), progress=False)
    return student.eval()


@pytest.fixture(scope="module")
def test_rows(cache) -> Tokens:
    return cache.tokens["test"].select(torch.arange(500))


def test_int8_bag_student_predicts_like_the_float_one_and_is_smaller(bag, test_rows):
    quantized = quantize_dynamic_int8(bag)
    agreement = same_predictions(bag, quantized, test_rows)
    assert agreement.agreement >= 0.95
    assert 0 < agreement.max_abs_logit_diff < 1.0  # changed (int8 rounding), but only slightly
    assert size_on_disk_mb(quantized) < 0.5 * size_on_disk_mb(bag)  # the 30k×64 table dominates: ~4× smaller


def test_quantizing_returns_a_copy_and_leaves_the_float_model_alone(bag):
    quantize_dynamic_int8(bag)
    assert isinstance(bag.embedding, nn.EmbeddingBag) and isinstance(bag.classifier[2], nn.Linear)
    assert bag.embedding.weight.dtype == torch.float32


def test_int8_tiny_bert_quantizes_linear_layers_and_embeddings(cache, tokenizer, test_rows):
    student = build_student("tiny-bert", tokenizer, len(cache.label_names), seed=0).eval()
    quantized = quantize_dynamic_int8(student)
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from kdlab.deployment import Int8Lookup

    modules = list(quantized.modules())
    assert not any(type(m) in (nn.Linear, nn.Embedding) for m in modules)  # every one was converted
    assert sum(isinstance(m, DynamicInt8Linear) for m in modules) == 2 * 6 + 1  # 6 per layer + the head
    assert sum(isinstance(m, Int8Lookup) for m in modules) == 3  # word, position, token-type tables
    rows = test_rows.select(torch.arange(16))
    assert quantized(rows.input_ids, rows.attention_mask).shape == (16, len(cache.label_names))
    assert size_on_disk_mb(quantized) < 0.5 * size_on_disk_mb(student)


def test_bag_exported_to_onnx_predicts_like_eager_and_its_ort_int8_file_is_smaller(bag, cache, test_rows, tmp_path):
    path = export_onnx(bag, cache.tokens["dev"].select(torch.arange(8)), tmp_path / "bag.onnx")
    session = onnx_session(path)
    eager = predict_logits(bag, test_rows)
    # Other rows and widths than the export saw, batch 1 included.
    for rows in (test_rows, test_rows.select([3]), test_rows.select([0, 1])):
        assert (onnx_predict_logits(session, rows) - predict_logits(bag, rows)).abs().max().item() < 1e-4
    assert int((onnx_predict_logits(session, test_rows).argmax(1) != eager.argmax(1)).sum()) == 0
    int8 = quantize_onnx_int8(path, tmp_path / "bag-int8.onnx")
    assert file_size_mb(int8) < 0.5 * file_size_mb(path)  # the 30k×64 table dominates: ~4× smaller
    agreement = (onnx_predict_logits(onnx_session(int8), test_rows).argmax(1) == eager.argmax(1)).float().mean().item()
    assert agreement >= 0.95


def test_tiny_bert_exported_with_torch_export_reproduces_eager_logits(cache, tokenizer, test_rows):
    student = build_student("tiny-bert", tokenizer, len(cache.label_names), seed=0).eval()
    program = export_program(student, cache.tokens["dev"].select(torch.arange(8)))
    longest = Tokens(torch.randint(1000, 2000, (2, 64)), torch.ones(2, 64, dtype=torch.long))  # MAX_LENGTH tokens
    for rows in (test_rows.select(torch.arange(64)), test_rows.select([5]), longest):
        with torch.inference_mode():
            assert torch.allclose(student(rows.input_ids, rows.attention_mask),
                                  program_module(program)(rows.input_ids, rows.attention_mask), atol=1e-5)


def hand_predictions(model, tokens, batch_size):
    """argmax of the model's logits, computed here batch by batch (dynamic int8 scales each batch by its own range)."""
    model.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(tokens), batch_size):
            batch = tokens.select(list(range(start, min(start + batch_size, len(tokens)))))
            chunks.append(model(batch.input_ids, batch.attention_mask).argmax(dim=1))
    return torch.cat(chunks).numpy()


def test_deployment_rows_compare_an_int8_model_with_its_float_baseline(bag, cache):
    tokens, labels = cache.tokens["test"].select(torch.arange(200)), cache.labels["test"][:200]
    int8 = quantize_dynamic_int8(bag)
    float_row = deployment_row("bag", bag, tokens, labels, repeats=5, max_examples=64)
    int8_row = deployment_row("bag int8", int8, tokens, labels, baseline=float_row, params=float_row["params"],
                              repeats=5, max_examples=64)
    # Parameters: a hand count of every weight and bias of the bag student's layers.
    vocab, dim = bag.embedding.weight.shape
    hidden, classes = bag.classifier[2].out_features, bag.classifier[5].out_features
    by_hand = vocab * dim + 2 * dim + (dim * hidden + hidden) + (hidden * classes + classes)
    assert float_row["params"] == int8_row["params"] == by_hand
    # Accuracy, cost and agreement: numpy counts of predictions made here, batch by batch (deployment_row uses 64).
    truth = labels.numpy()
    float_pred, int8_pred = hand_predictions(bag, tokens, 64), hand_predictions(int8, tokens, 64)
    assert (float_row["predictions"].numpy() == float_pred).all() and (int8_row["predictions"].numpy() == int8_pred).all()
    float_correct, int8_correct = np.count_nonzero(float_pred == truth), np.count_nonzero(int8_pred == truth)
    assert float_row["accuracy"] == pytest.approx(float_correct / 200, abs=1e-6)  # 1e-6 ≪ one row (0.005)
    assert int8_row["accuracy"] == pytest.approx(int8_correct / 200, abs=1e-6)
    assert int8_row["accuracy_cost"] == pytest.approx((int8_correct - float_correct) / 200, abs=1e-6)
    assert int8_row["agreement"] == pytest.approx(np.count_nonzero(float_pred == int8_pred) / 200, abs=1e-6)
    frame = results_frame([float_row, int8_row])
    assert list(frame.index) == ["bag", "bag int8"] and "predictions" not in frame.columns
    assert frame.loc["bag", "test accuracy (%)"] == pytest.approx(100 * float_correct / 200, abs=0.01)
    assert frame.loc["bag int8", "params (M)"] == pytest.approx(by_hand / 1e6, abs=0.005)
    with pytest.raises(ValueError, match="logits"):
        deployment_row("bag", bag, tokens, labels, logits=torch.zeros(5, 77))


class SleepyModel(nn.Module):
    """A model that takes a known time per query: 5 ms of sleep, then zeros."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        time.sleep(0.005)
        return torch.zeros(len(input_ids), 3)


def test_latency_measures_a_model_of_known_speed(test_rows):
    latency = latency_ms(SleepyModel(), test_rows, repeats=20, warmup=2)
    samples = sorted(latency.samples_ms)
    assert len(samples) == 20
    # time.sleep(0.005) waits at least 5 ms; a busy CPU adds to that, rarely more than a few tens of ms.
    assert 5.0 <= samples[0] and latency.median_ms < 5.0 + 50.0
    # Median and p95 of 20 samples, by hand: the mean of the 10th and 11th, and 5% of the way from the 19th to the 20th.
    assert latency.median_ms == pytest.approx((samples[9] + samples[10]) / 2)
    assert latency.p95_ms == pytest.approx(samples[18] + 0.05 * (samples[19] - samples[18]))


class LengthSleepyModel(nn.Module):
    """A model whose cost grows with the query: 1 ms of sleep per real token."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        time.sleep(0.001 * int(attention_mask.sum()))
        return torch.zeros(len(input_ids), 3)


def _rows_of_length(length: int, count: int = 4) -> Tokens:
    """`count` queries of exactly `length` real tokens."""
    ids = torch.full((count, length), 5, dtype=torch.long)
    return Tokens(ids, torch.ones_like(ids))


def test_length_growth_tells_a_length_bound_model_from_a_fixed_cost_one():
    short, long = _rows_of_length(4), _rows_of_length(16)
    # By hand: 16 ms against 4 ms of sleep is 4×; sleep only ever overshoots, by about the same at both lengths.
    assert 2.5 < length_growth(LengthSleepyModel(), short, long, repeats=10, warmup=1) <= 4.0 + 0.5
    assert 0.6 < length_growth(SleepyModel(), short, long, repeats=10, warmup=1) < 1.6  # 5 ms whatever the length


def test_length_growth_times_short_and_long_queries_in_turn():
    seen = []

    class Recorder(nn.Module):
        def forward(self, input_ids, attention_mask):
            seen.append(int(attention_mask.sum()))
            return torch.zeros(len(input_ids), 3)

    length_growth(Recorder(), _rows_of_length(2), _rows_of_length(7), repeats=3, warmup=1)
    assert seen == [2, 7] * 4  # one short, one long, four times (one warm-up round): background load hits both alike
    with pytest.raises(ValueError, match="long"):
        length_growth(Recorder(), _rows_of_length(2), "a long query")


def test_latency_of_a_bag_student_is_well_under_a_second(bag, test_rows):
    latency = latency_ms(bag, test_rows, repeats=20, warmup=2)
    assert len(latency.samples_ms) == 20
    assert latency.p95_ms >= latency.median_ms > 0
    assert latency.median_ms < 1000  # a bag of words answers in well under a second, even on a busy CPU


def test_size_on_disk_matches_the_float32_weights(tmp_path):
    layer = nn.Linear(1000, 250)  # 250,250 float32 numbers = 1.001 MB, plus a little pickle overhead
    assert 1.001 <= size_on_disk_mb(layer) < 1.001 + 0.01
    # ...and what torch.save writes for the state dict, measured by the file system (to within the file's name,
    # which torch's zip format stores in every record: a temporary name there, "layer" here).
    torch.save(layer.state_dict(), tmp_path / "layer.pt")
    assert abs(1e6 * size_on_disk_mb(layer) - os.path.getsize(tmp_path / "layer.pt")) < 500


def test_same_predictions_counts_changed_answers_and_the_largest_logit_change(bag, test_rows):
    with torch.no_grad():
        logits = bag(test_rows.input_ids, test_rows.attention_mask).numpy()
    before = logits.argmax(axis=1)
    favourite = np.bincount(before).argmax()  # the class the bag student predicts most often
    for shift in (100.0, -100.0):
        shifted = copy.deepcopy(bag)
        with torch.no_grad():
            shifted.classifier[5].bias[favourite] += shift  # that class's logit moves by `shift` on every row
        agreement = same_predictions(bag, shifted, test_rows)
        # +100: every row now predicts the favourite class; −100: no row does, and the others keep their answer.
        after = np.full_like(before, favourite) if shift > 0 else np.where(before == favourite, -1, before)
        assert agreement.agreement == pytest.approx(np.mean(before == after), abs=1e-6)
        assert 0 < agreement.agreement < 1
        assert agreement.max_abs_logit_diff == pytest.approx(abs(shift), abs=1e-3)


def test_pareto_front_keeps_models_nothing_beats_on_both_axes():
    latencies = [1.0, 2.0, 3.0, 10.0, 2.5]
    accuracies = [0.80, 0.85, 0.84, 0.93, 0.85]
    assert pareto_front(latencies, accuracies) == [0, 1, 3]  # 3.0 ms/0.84 and 2.5 ms/0.85 are beaten by 2.0 ms/0.85
    assert pareto_front([], []) == []


def test_trained_student_is_saved_and_then_loaded(cache, tokenizer, monkeypatch, tmp_path):
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path))
    first, loaded = trained_student(cache, tokenizer, kind="bag", epochs=1, max_train_rows=300)
    assert not loaded and list((tmp_path / "students").glob("bag-*.safetensors"))
    again, loaded = trained_student(cache, tokenizer, kind="bag", epochs=1, max_train_rows=300)
    assert loaded
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    _, loaded = trained_student(cache, tokenizer, kind="bag", epochs=1, max_train_rows=301)
    assert not loaded  # other settings, other file


# --- the saved-student cache: damaged files are noticed, reported in one line, and trained again ---


@pytest.fixture
def toy_student(toy_cache, tiny_teacher, monkeypatch, tmp_path):
    """A bag student of the toy cache, trained once and saved under tmp_path: (student, its file, tokenizer)."""
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path))
    student, loaded = trained_student(toy_cache, tiny_teacher[1], kind="bag", epochs=1)
    assert not loaded
    [path] = (tmp_path / "students").iterdir()  # the file itself, no temporary left beside it
    assert path.name.startswith("bag-") and path.suffix == ".safetensors"
    return student, path, tiny_teacher[1]


def flip_byte(path, where):
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")  # safetensors: 8-byte header length, JSON header, then the tensors
    index = {"header": 8 + header // 2, "weights": len(data) - 3}[where]
    data[index] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def change_a_weight_keep_the_metadata(path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata, state = handle.metadata(), {name: handle.get_tensor(name) for name in handle.keys()}
    state["embedding.weight"][1, 0] += 0.5  # a well-formed file whose weights are no longer the ones trained
    save_file(state, str(path), metadata=metadata)


def drop_the_checksums(path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata, state = handle.metadata(), {name: handle.get_tensor(name) for name in handle.keys()}
    save_file(state, str(path), metadata={"kdlab": metadata["kdlab"]})  # as an older kdlab wrote it


DAMAGE = {
    "truncated": (truncate, "unreadable"),
    "empty": (lambda path: path.write_bytes(b""), "unreadable"),
    "flipped byte in the header": (lambda path: flip_byte(path, "header"), "unreadable"),
    "flipped byte in the weights": (lambda path: flip_byte(path, "weights"), "do not match their checksums"),
    "a weight changed, metadata kept": (change_a_weight_keep_the_metadata, "do not match their checksums"),
    "no checksums": (drop_the_checksums, "no checksums"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_student_file_is_reported_in_one_line_and_trained_again(toy_student, toy_cache, capsys, damage):
    from kdlab.deployment import load_student_file

    original, path, tokenizer = toy_student
    capsys.readouterr()
    damage_file, reason = DAMAGE[damage]
    damage_file(path)
    state, problem = load_student_file(path)
    assert state is None and reason in problem
    # train=False: nothing usable on disk, so nothing is returned (and no traceback)
    assert trained_student(toy_cache, tokenizer, kind="bag", epochs=1, train=False) == (None, False)
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"Ignoring saved student {path.name}: ") and reason in line and line.endswith("not training here.")
    again, loaded = trained_student(toy_cache, tokenizer, kind="bag", epochs=1)
    [line] = capsys.readouterr().out.splitlines()
    assert not loaded and reason in line and line.endswith("training it again.")
    for (name, a), b in zip(original.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name  # same seed, same recipe: the same student as the first time
    # ...and saved intact over the damaged file, which now loads without a word.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert load_student_file(path)[0] is not None
    _, loaded = trained_student(toy_cache, tokenizer, kind="bag", epochs=1)
    assert loaded and capsys.readouterr().out == ""


def test_checksums_are_sha256_of_dtype_shape_and_bytes(toy_student):
    import hashlib

    from safetensors import safe_open

    from kdlab.deployment import tensor_checksum

    student, path, _ = toy_student
    with safe_open(str(path), framework="pt") as handle:
        saved = json.loads(handle.metadata()["sha256"])
    weight = student.state_dict()["classifier.5.bias"]
    by_hand = hashlib.sha256(f"torch.float32 {tuple(weight.shape)}".encode() + weight.numpy().tobytes()).hexdigest()
    assert saved["classifier.5.bias"] == tensor_checksum(weight) == by_hand
    assert set(saved) == set(student.state_dict())
    # the same bytes read as another shape are another tensor
    assert tensor_checksum(weight.reshape(1, -1)) != tensor_checksum(weight)


def test_a_failed_save_leaves_the_old_file_and_no_temporary(toy_student, monkeypatch):
    import safetensors.torch

    from kdlab.deployment import load_student_file, save_student_file

    student, path, _ = toy_student
    before = path.read_bytes()

    def crash_half_way(state, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        save_student_file(student.state_dict(), path, {"kind": "bag"})
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert load_student_file(path)[0] is not None


def test_bad_input_is_refused_with_the_argument_named(bag, test_rows, cache, tokenizer, tmp_path):
    with pytest.raises(ValueError, match="tokens"):
        latency_ms(bag, "my card is lost")
    with pytest.raises(ValueError, match="tokens"):
        latency_ms(bag, Tokens(torch.zeros(0, 4, dtype=torch.long), torch.zeros(0, 4, dtype=torch.long)))
    with pytest.raises(ValueError, match="repeats"):
        latency_ms(bag, test_rows, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        latency_ms(bag, test_rows, warmup=-1)
    with pytest.raises(ValueError, match="model"):
        size_on_disk_mb("bag.pt")
    with pytest.raises(ValueError, match="model"):
        quantize_dynamic_int8(None)
    with pytest.raises(ValueError, match="example_tokens must have at least 2 rows"):
        export_program(bag, test_rows.select([0]))
    with pytest.raises(ValueError, match="path"):
        export_onnx(bag, test_rows.select(torch.arange(8)), tmp_path / "bag.pt")
    with pytest.raises(ValueError, match="path"):
        onnx_session(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="latencies"):
        pareto_front([1.0, 2.0], [0.9])
    with pytest.raises(ValueError, match="kind"):
        trained_student(cache, tokenizer, kind="lstm")
    with pytest.raises(ValueError, match="max_train_rows"):
        trained_student(cache, tokenizer, kind="bag", max_train_rows=0)


def test_accuracy_vs_latency_plot_labels_every_model_and_draws_the_front():
    from matplotlib.figure import Figure

    from kdlab.plots import plot_accuracy_vs_latency

    rows = [{"model": name, "latency_median_ms": ms, "accuracy": acc, "size_mb": mb}
            for name, ms, acc, mb in (("teacher", 30.0, 0.93, 91.0), ("teacher int8", 25.0, 0.92, 23.0),
                                      ("bag KD student", 0.3, 0.90, 8.0), ("bag int8", 0.4, 0.89, 2.2))]
    ax = Figure().subplots()
    plot_accuracy_vs_latency(ax, rows)
    texts = " ".join(t.get_text() for t in ax.texts)
    assert all(r["model"] in texts for r in rows)
    assert ax.get_xscale() == "log" and "ms" in ax.get_xlabel() and "%" in ax.get_ylabel() and ax.get_title()
    front = [line for line in ax.lines if "Pareto" in line.get_label()]
    assert len(front) == 1 and list(front[0].get_xdata()) == [0.3, 25.0, 30.0]  # bag int8 is dominated by bag
    with pytest.raises(ValueError, match="rows"):
        plot_accuracy_vs_latency(ax, [])
    with pytest.raises(ValueError, match="rows"):
        plot_accuracy_vs_latency(ax, [{"model": "x"}])


@pytest.fixture
def six_layer_toy(toy_data, tiny_bert, tmp_path, monkeypatch):
    """A toy teacher cache from a random 6-layer BERT (the truncated student keeps 3 of 6), caches under tmp_path."""
    from transformers import BertConfig, BertModel, BertTokenizer

    from kdlab.cache import TeacherSettings

    folder = tmp_path / "six-layer-bert"
    BertTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    config = BertConfig.from_pretrained(tiny_bert)
    config.num_hidden_layers = 6
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    cache = kdlab.load_teacher_cache(toy_data, str(folder), TeacherSettings(head_epochs=30, head_lr=1e-2), progress=False)
    encoder, tokenizer = load_encoder(str(folder))
    return cache, encoder, tokenizer


def test_trained_truncated_student_starts_from_the_teacher_head_and_its_file_says_so(six_layer_toy):
    from safetensors import safe_open

    cache, encoder, tokenizer = six_layer_toy
    # Nothing saved: train=False answers at once, before copying any teacher layers (no encoder needed).
    assert trained_student(cache, tokenizer, kind="truncated", train=False) == (None, False)
    # lr=1e-30: AdamW moves float32 weights by ~1e-30, i.e. not at all, so the head comes back where it started.
    student, loaded = trained_student(cache, tokenizer, kind="truncated", teacher_encoder=encoder, epochs=1, lr=1e-30)
    head = kdlab.teacher_head(cache)
    assert not loaded and torch.equal(student.head.weight, head.weight) and torch.equal(student.head.bias, head.bias)
    files = list((cache.path.parent / "students").glob("truncated-*.safetensors"))
    with safe_open(str(files[0]), framework="pt") as handle:
        assert json.loads(handle.metadata()["kdlab"])["head_from_teacher"] is True
    again, loaded = trained_student(cache, tokenizer, kind="truncated", teacher_encoder=encoder, epochs=1, lr=1e-30, train=False)
    assert loaded and torch.equal(again.head.weight, head.weight)


def test_teacher_head_puts_the_truncated_student_far_above_chance_before_any_training(cache, tokenizer):
    encoder = load_encoder()[0]
    rows, labels = cache.tokens["dev"].select(torch.arange(200)), cache.labels["dev"][:200]
    with_head = build_student("truncated", tokenizer, len(cache.label_names), teacher_encoder=encoder,
                              teacher_head=kdlab.teacher_head(cache))
    without = build_student("truncated", tokenizer, len(cache.label_names), teacher_encoder=encoder)
    # Chance is 1/77 ≈ 1.3%; on all of dev the teacher's head reads the 3-layer student's vectors 46.7% right.
    assert kdlab.evaluate(with_head, rows, labels, batch_size=50).accuracy > 0.3
    assert kdlab.evaluate(without, rows, labels, batch_size=50).accuracy < 0.1


def test_committed_benchmark_results_cover_every_model_with_the_current_recipe():
    results = benchmark_results()
    names = [row["model"] for row in results.rows]
    for kind in DEPLOYMENT_EPOCHS:
        assert f"{kind} KD student" in names and f"{kind} int8" in names
    assert names[0].startswith("teacher") and results.meta["test_queries"] == 3080
    machine, date = results.meta["machine"], results.meta["date"]
    datetime.date.fromisoformat(date)  # a real date, and a machine named: the label the notebook shows
    assert machine and results.source == f"measured by benchmarks/deployment.py on {machine}, {date}"
    assert all(0 < row["accuracy"] <= 1 and row["latency_median_ms"] > 0 and row["size_mb"] > 0 for row in results.rows)
    # The file is stale the moment a recipe changes: rerun the benchmark (its docstring says how).
    for kind, epochs in DEPLOYMENT_EPOCHS.items():
        recipe = results.meta["recipes"][kind]
        assert recipe["epochs"] == epochs and recipe["head_from_teacher"] == (kind in HEAD_FROM_TEACHER), kind
        assert (recipe["lr"], recipe["batch_size"]) == (STUDENT_DEFAULTS[kind]["lr"], STUDENT_DEFAULTS[kind]["batch_size"]), kind


def test_benchmark_results_refuse_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `python benchmarks/deployment.py --json .*missing.json`"):
        benchmark_results(tmp_path / "missing.json")
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match=r"lacks \['machine', 'date', 'test_queries'\]: rerun `python benchmarks/deployment.py"):
        benchmark_results(foreign)
    foreign.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        benchmark_results(foreign)


def test_both_benchmark_readers_give_the_same_shape():
    import kdlab.tuning as tuning
    from kdlab.results import BenchmarkResults

    deployment, sweep = benchmark_results(), tuning.benchmark_results("sweep")
    assert type(deployment) is type(sweep) is BenchmarkResults
    for results in (deployment, sweep):
        assert isinstance(results.rows, list) and results.rows and "rows" not in results.meta
        assert results.source.startswith("measured by benchmarks/") and results.meta["date"] in results.source
