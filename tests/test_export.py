"""Export: torch.export, ONNX Runtime and ExecuTorch give the eager model's logits at any batch size and length, int8 stays close.

Every comparison is against the same model run eagerly in torch (kdlab.training.predict_logits), on the toy cache
of the tiny BERT (tests/conftest.py): a bag student, a truncated transformer student and the tiny teacher itself.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

import kdlab
from kdlab.deployment import (
    BagAsEmbedding, MissingEdgeExtra, cached_executorch, executorch_logits, executorch_program, export_executorch, export_onnx,
    export_program, exportable, file_size_mb, onnx_predict_logits, onnx_session,
    program_module, quantize_dynamic_int8, quantize_onnx_int8, quantize_onnx_static_int8,
)
from kdlab.tokens import Tokens
from kdlab.training import predict_logits

KINDS = ("bag", "truncated", "teacher")


@pytest.fixture(scope="module")
def models(toy_cache, tiny_teacher, tiny_bert) -> dict[str, nn.Module]:
    """A briefly trained bag student (clear argmaxes), a 1-layer truncated student and the tiny teacher."""
    encoder, tokenizer = tiny_teacher
    bag = kdlab.student_start("bag", toy_cache, tokenizer, seed=0)
    kdlab.train_student(bag, toy_cache, epochs=15, lr=1e-2, batch_size=16, progress=False)
    truncated = kdlab.student_start("truncated", toy_cache, tokenizer, teacher_encoder=encoder, seed=0, keep_layers=1)
    kdlab.train_student(truncated, toy_cache, epochs=3, lr=1e-3, batch_size=16, progress=False)
    teacher = kdlab.teacher_from_cache(toy_cache, str(tiny_bert))
    return {"bag": bag.eval(), "truncated": truncated.eval(), "teacher": teacher.eval()}


@pytest.fixture(scope="module")
def onnx_files(models, toy_cache, tmp_path_factory) -> dict[str, Path]:
    """Each model exported once, traced on 4 dev rows (other batch sizes and lengths come later)."""
    folder = tmp_path_factory.mktemp("onnx")
    example = toy_cache.tokens["dev"].select(torch.arange(4))
    return {kind: export_onnx(model, example, folder / f"{kind}.onnx") for kind, model in models.items()}


def all_rows(cache) -> Tokens:
    """Every toy query (train, dev and test: 150 rows); every other one cut short and padded, so lengths differ."""
    ids = torch.cat([cache.tokens[split].input_ids for split in ("train", "dev", "test")])
    mask = torch.cat([cache.tokens[split].attention_mask for split in ("train", "dev", "test")])
    assert ids.shape[1] > 6
    for row in range(1, len(ids), 2):
        keep = 3 + row % 4  # 3 to 6 of the row's tokens, then padding
        ids[row, keep:], mask[row, keep:] = 0, 0
    return Tokens(ids, mask)


def test_bag_in_embedding_form_has_the_same_weights_and_logits(models, toy_cache):
    bag = models["bag"]
    friendly = exportable(bag)
    assert isinstance(friendly, BagAsEmbedding) and isinstance(friendly.embedding, nn.Embedding)
    assert torch.equal(friendly.embedding.weight, bag.embedding.weight)
    rows = all_rows(toy_cache)
    assert not bool(rows.attention_mask.all())  # padded rows included
    with torch.inference_mode():
        assert torch.allclose(friendly(rows.input_ids, rows.attention_mask), bag(rows.input_ids, rows.attention_mask), atol=1e-6)
    assert exportable(models["truncated"]) is models["truncated"]  # nothing to change for an encoder


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_runtime_gives_the_eager_logits_at_other_batch_sizes_and_lengths(models, onnx_files, toy_cache, kind):
    session = onnx_session(onnx_files[kind])
    assert all(isinstance(size, str) for i in session.get_inputs() for size in i.shape)  # symbolic axes, not fixed sizes
    rows = all_rows(toy_cache)
    widths = set()
    for batch in (rows.select([7]), rows.select(torch.arange(3)), rows.select(torch.arange(10, 60))):
        widths.add(batch.input_ids.shape[1])
        eager = predict_logits(models[kind], batch)
        onnx = onnx_predict_logits(session, batch, batch_size=len(batch))
        assert onnx.shape == eager.shape
        assert (onnx - eager).abs().max().item() < 1e-4
    assert len(widths) >= 2  # batch sizes 1, 3, 50 and several lengths, none the traced 4-row example's shape


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_and_eager_predictions_agree_on_every_row(models, onnx_files, toy_cache, kind):
    rows = all_rows(toy_cache)
    eager = predict_logits(models[kind], rows, batch_size=32).argmax(dim=1)
    onnx = onnx_predict_logits(onnx_session(onnx_files[kind]), rows, batch_size=32).argmax(dim=1)
    disagreements = int((eager != onnx).sum())
    assert disagreements == 0, f"{disagreements} of {len(rows)} rows predicted differently"


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("kind", KINDS)
def test_ort_int8_file_is_smaller_and_mostly_agrees(models, onnx_files, toy_cache, kind, static, tmp_path):
    if static:  # activation ranges from the train rows; scored below on all rows, as a smoke check of the method
        int8 = quantize_onnx_static_int8(onnx_files[kind], tmp_path / f"{kind}-int8.onnx", toy_cache.tokens["train"])
    else:
        int8 = quantize_onnx_int8(onnx_files[kind], tmp_path / f"{kind}-int8.onnx")
    assert file_size_mb(int8) < file_size_mb(onnx_files[kind])
    rows = all_rows(toy_cache)
    eager = predict_logits(models[kind], rows, batch_size=32)
    quantized = onnx_predict_logits(onnx_session(int8), rows, batch_size=32)
    agreement = (quantized.argmax(dim=1) == eager.argmax(dim=1)).float().mean().item()
    assert agreement >= 0.95
    assert (quantized - eager).abs().max().item() > 0  # really quantized: the logits moved


@pytest.mark.parametrize("kind", ("bag", "truncated"))
def test_torch_export_program_reproduces_eager_logits(models, toy_cache, kind):
    program = export_program(models[kind], toy_cache.tokens["dev"].select(torch.arange(4)))
    assert isinstance(program, torch.export.ExportedProgram)
    rows = all_rows(toy_cache)
    unpadded = rows.select(torch.arange(0, 40, 2))  # every even row is full length: an all-ones mask
    assert bool(unpadded.attention_mask.all())
    for batch in (rows.select([0]), rows.select(torch.arange(20, 45)), unpadded):
        with torch.inference_mode():
            exported = program_module(program)(batch.input_ids, batch.attention_mask)
        assert (exported - predict_logits(models[kind], batch)).abs().max().item() < 1e-5


def test_bad_input_is_refused_with_a_clear_message(models, onnx_files, toy_cache, tmp_path):
    example = toy_cache.tokens["dev"].select(torch.arange(4))
    with pytest.raises(ValueError, match="path must end in .onnx"):
        export_onnx(models["bag"], example, tmp_path / "bag.pt")
    with pytest.raises(ValueError, match="at least 2 rows"):
        export_onnx(models["bag"], example.select([0]), tmp_path / "bag.onnx")
    with pytest.raises(ValueError, match="example_tokens must be a kdlab Tokens"):
        export_program(models["bag"], "my card is lost")
    with pytest.raises(ValueError, match="ExportedProgram"):
        program_module(models["bag"])
    with pytest.raises(ValueError, match="student protocol"):
        export_program(nn.Linear(4, 3), example)  # forward takes one tensor, not (input_ids, attention_mask)
    with pytest.raises(ValueError, match="one row of logits"):
        export_program(NoLogits(), example)
    with pytest.raises(ValueError, match="fixed the sequence axis"):
        export_program(WidthDependent(), Tokens(torch.ones(4, 5, dtype=torch.long), torch.ones(4, 5, dtype=torch.long)))
    with pytest.raises(ValueError, match="fixed the sequence axis"):
        export_onnx(WidthDependent(), Tokens(torch.ones(4, 5, dtype=torch.long), torch.ones(4, 5, dtype=torch.long)),
                    tmp_path / "bag.onnx")
    with pytest.raises(ValueError, match="must be a torch.nn.Module"):
        export_onnx("bag.pt", example, tmp_path / "bag.onnx")
    with pytest.raises(ValueError, match="torch int8 copy"):
        export_onnx(quantize_dynamic_int8(models["bag"]), example, tmp_path / "bag.onnx")
    with pytest.raises(ValueError, match="existing .onnx file"):
        onnx_session(tmp_path / "missing.onnx")
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("not a model")
    with pytest.raises(ValueError, match="not a model ONNX Runtime can load"):
        onnx_session(not_onnx)
    with pytest.raises(ValueError, match="existing .onnx file"):
        quantize_onnx_int8(tmp_path / "missing.onnx", tmp_path / "int8.onnx")
    with pytest.raises(ValueError, match="int8_path"):
        quantize_onnx_int8(onnx_files["bag"], onnx_files["bag"])
    with pytest.raises(ValueError, match="calibration_tokens"):
        quantize_onnx_static_int8(onnx_files["bag"], tmp_path / "static.onnx", "my card is lost")
    session = onnx_session(onnx_files["bag"])
    with pytest.raises(ValueError, match="tokens"):
        onnx_predict_logits(session, "my card is lost")
    with pytest.raises(ValueError, match="batch_size"):
        onnx_predict_logits(session, example, batch_size=0)
    with pytest.raises(ValueError, match="existing file"):
        file_size_mb(tmp_path / "missing.onnx")
    assert not (tmp_path / "bag.onnx").exists()  # nothing half-written by a refused export


class NoLogits(nn.Module):
    """Accepts (input_ids, attention_mask) but returns one number, not logits per row."""

    def forward(self, input_ids, attention_mask):
        return input_ids.float().sum()


class WidthDependent(nn.Module):
    """Branches on the input's length: torch.export can only keep the branch of the example's length."""

    def forward(self, input_ids, attention_mask):
        if input_ids.shape[1] == 5:
            return torch.zeros(input_ids.shape[0], 3)
        return torch.ones(input_ids.shape[0], 3)


def test_energy_estimate_counts_the_bag_by_hand_and_ranks_the_models(models, toy_cache):
    from kdlab.deployment import ENERGY_PJ_45NM, energy_estimate

    rows = all_rows(toy_cache)
    bag = models["bag"]
    dim, hidden, labels = bag.feature_dim, bag.classifier[2].out_features, bag.classifier[5].out_features
    estimate = energy_estimate(bag, rows, max_queries=20)
    assert estimate.macs == dim * hidden + hidden * labels  # the MLP's two matrix products; the lookup costs no MAC
    dense = sum(p.numel() for name, p in bag.named_parameters() if not name.startswith("embedding"))
    widths = [rows.select([i]).input_ids.shape[1] for i in range(20)]
    assert estimate.dram_bytes == pytest.approx(4 * dense + 4 * dim * sum(widths) / 20)
    pj = ENERGY_PJ_45NM
    assert estimate.total_uj == pytest.approx((estimate.macs * (pj["fp32 multiply"] + pj["fp32 add"])
                                               + estimate.dram_bytes / 4 * pj["dram read per 32 bits"]) / 1e6)
    teacher = energy_estimate(models["teacher"], rows, max_queries=20)
    assert teacher.macs > estimate.macs and teacher.total_uj > energy_estimate(models["truncated"], rows, max_queries=20).total_uj


# --- ExecuTorch (the optional edge extra, requirements-edge.txt; `make test` installs it) ---

EDGE_KINDS = ("bag", "truncated")


@pytest.fixture(scope="module")
def pte_files(models, toy_cache, tmp_path_factory) -> dict[str, Path]:
    """The bag and the truncated student lowered once to XNNPACK .pte files, traced on one dev query."""
    pytest.importorskip("executorch.runtime", reason="ExecuTorch is the optional extra: pip install -r requirements-edge.txt")
    folder = tmp_path_factory.mktemp("pte")
    example = toy_cache.tokens["dev"].select(torch.arange(4))
    return {kind: export_executorch(models[kind], example, folder / f"{kind}.pte") for kind in EDGE_KINDS}


@pytest.mark.parametrize("kind", EDGE_KINDS)
def test_executorch_gives_the_eager_predictions_on_every_row(models, pte_files, toy_cache, kind):
    program = executorch_program(pte_files[kind])
    rows = all_rows(toy_cache)  # 150 queries of 3 to full length: none the traced query's shape
    assert len(set(rows.attention_mask.sum(dim=1).tolist())) >= 3
    eager = predict_logits(models[kind], rows, batch_size=32)
    lowered = executorch_logits(program, rows)
    assert lowered.shape == eager.shape
    disagreements = int((lowered.argmax(dim=1) != eager.argmax(dim=1)).sum())
    assert disagreements == 0, f"{disagreements} of {len(rows)} rows predicted differently"
    assert (lowered - eager).abs().max().item() < 1e-4


def test_executorch_program_knows_its_longest_query(models, pte_files, toy_cache, tiny_bert):
    import json

    positions = json.loads((tiny_bert / "config.json").read_text())["max_position_embeddings"]
    assert executorch_program(pte_files["truncated"]).max_length == positions  # the position table caps the length
    assert executorch_program(pte_files["bag"]).max_length == 512  # a bag has no position table: the default cap
    assert pte_files["bag"].read_bytes()[4:8] == b"ET12"  # an ExecuTorch flatbuffer (its file identifier)


def test_executorch_refuses_bad_input_with_a_clear_message(models, pte_files, toy_cache, tmp_path):
    example = toy_cache.tokens["dev"].select(torch.arange(4))
    with pytest.raises(ValueError, match="path must end in .pte"):
        export_executorch(models["bag"], example, tmp_path / "bag.onnx")
    with pytest.raises(ValueError, match="torch int8 copy"):
        export_executorch(quantize_dynamic_int8(models["bag"]), example, tmp_path / "bag.pte")
    with pytest.raises(ValueError, match="has 1 real tokens; it needs 2 to 512"):
        export_executorch(models["bag"], Tokens(torch.ones(2, 1, dtype=torch.long), torch.ones(2, 1, dtype=torch.long)),
                          tmp_path / "bag.pte")
    assert not (tmp_path / "bag.pte").exists()
    with pytest.raises(ValueError, match="existing .pte file"):
        executorch_program(tmp_path / "missing.pte")
    garbage = tmp_path / "notes.pte"
    garbage.write_bytes(b"not a program")
    with pytest.raises(ValueError, match="not a program ExecuTorch can load"):
        executorch_program(garbage)
    with pytest.raises(ValueError, match="threads"):
        executorch_program(pte_files["bag"], threads=0)
    program = executorch_program(pte_files["bag"])
    with pytest.raises(ValueError, match="executorch_program"):
        executorch_logits(onnx_session, example)
    left_padded = Tokens(torch.tensor([[0, 5, 6]]), torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match="padded on the right"):
        executorch_logits(program, left_padded)
    too_long = Tokens(torch.ones(1, 600, dtype=torch.long), torch.ones(1, 600, dtype=torch.long))
    with pytest.raises(ValueError, match="2 to 512 real tokens"):
        executorch_logits(program, too_long)


def test_without_executorch_every_function_says_what_to_install(models, toy_cache, tmp_path, monkeypatch):
    """Simulate a machine without the extra: Python refuses an import whose sys.modules entry is None."""
    import sys

    for name in ("executorch", "executorch.runtime", "executorch.exir",
                 "executorch.backends.xnnpack.partition.xnnpack_partitioner"):
        monkeypatch.setitem(sys.modules, name, None)
    example = toy_cache.tokens["dev"].select(torch.arange(4))
    with pytest.raises(MissingEdgeExtra, match=r"pip install -r requirements-edge\.txt") as missing:
        export_executorch(models["bag"], example, tmp_path / "bag.pte")
    assert isinstance(missing.value, ImportError)  # so `except ImportError` in a notebook catches it too
    assert "optional extra" in str(missing.value)
    assert not (tmp_path / "bag.pte").exists()  # refused before any work
    fake = tmp_path / "some.pte"
    fake.write_bytes(b"\0" * 16)
    with pytest.raises(MissingEdgeExtra, match=r"pip install -r requirements-edge\.txt"):
        executorch_program(fake)


def test_cached_executorch_lowers_once_per_set_of_weights(models, pte_files, toy_cache, tmp_path, monkeypatch):
    import kdlab.deployment as deployment

    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path))
    example = toy_cache.tokens["dev"].select(torch.arange(4))
    first = cached_executorch(models["bag"], example)
    assert first.is_relative_to(tmp_path) and first.suffix == ".pte"
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary file left behind
    rows = all_rows(toy_cache)
    assert torch.allclose(executorch_logits(executorch_program(first), rows), predict_logits(models["bag"], rows), atol=1e-4)

    def no_lowering(*args, **kwargs):
        raise AssertionError("lowered again although the file is in the cache")

    monkeypatch.setattr(deployment, "export_executorch", no_lowering)
    assert cached_executorch(models["bag"], example) == first  # the same weights: the saved file, not a new lowering
    changed = copy.deepcopy(models["bag"])
    with torch.no_grad():
        changed.classifier[-1].bias[0] += 1.0  # one weight changed
    with pytest.raises(AssertionError, match="lowered again"):
        cached_executorch(changed, example)  # other weights: another key, so it must lower
