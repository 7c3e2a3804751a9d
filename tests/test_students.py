"""Students: sizes, shared tokenizer, and what each architecture keeps from the teacher."""

from __future__ import annotations

import pytest
import torch

from kdlab.students import build_student, check_same_tokenizer, count_parameters
from kdlab.teacher import Teacher, load_encoder
from kdlab.tokens import tokenize


@pytest.fixture(scope="module")
def minilm():
    return load_encoder()


def test_default_bag_student_is_at_most_a_tenth_of_the_teacher(minilm):
    encoder, tokenizer = minilm
    teacher_params = count_parameters(Teacher(encoder, 77))
    assert 22_000_000 < teacher_params < 23_000_000  # MiniLM-L6-H384 + a 384x77 head
    bag = build_student("bag", tokenizer, 77)
    assert count_parameters(bag) <= teacher_params / 10


def test_every_student_kind_maps_token_ids_to_class_logits(minilm):
    encoder, tokenizer = minilm
    tokens = tokenize(tokenizer, ["my card has not arrived", "what is the exchange rate for euros?"])
    for kind in ("bag", "tiny-bert", "truncated"):
        student = build_student(kind, tokenizer, 5, teacher_encoder=encoder).eval()
        assert student(tokens.input_ids, tokens.attention_mask).shape == (2, 5), kind


def test_truncated_student_starts_from_the_chosen_teacher_layers(minilm):
    encoder, tokenizer = minilm
    student = build_student("truncated", tokenizer, 77, teacher_encoder=encoder, keep_layers=3)
    kept = student.encoder.encoder.layer
    assert len(kept) == 3 and student.encoder.kept_layers == [0, 2, 4]
    for mine, theirs in zip(kept, [encoder.encoder.layer[i] for i in (0, 2, 4)]):
        for a, b in zip(mine.parameters(), theirs.parameters()):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()  # same values, own copy
    assert encoder.config.num_hidden_layers == 6  # the teacher itself is untouched


def test_bag_student_ignores_padding(minilm):
    _, tokenizer = minilm
    student = build_student("bag", tokenizer, 4).eval()
    short = tokenize(tokenizer, ["card lost"])
    padded = tokenize(tokenizer, ["card lost", "a much longer query that forces padding onto the first one"])
    with torch.no_grad():
        alone = student(short.input_ids, short.attention_mask)
        in_batch = student(padded.input_ids, padded.attention_mask)[:1]
    assert torch.allclose(alone, in_batch, atol=1e-6)


def test_student_built_for_another_tokenizer_is_refused(minilm, tiny_bert):
    _, tokenizer = minilm
    _, other = load_encoder(str(tiny_bert))
    student = build_student("bag", other, 3)
    check_same_tokenizer(student, other)
    with pytest.raises(ValueError, match="build the student from the teacher's tokenizer"):
        check_same_tokenizer(student, tokenizer)


def test_bad_student_arguments_are_refused(minilm):
    encoder, tokenizer = minilm
    with pytest.raises(ValueError, match="student must be one of bag, tiny-bert, truncated"):
        build_student("huge", tokenizer, 3)
    with pytest.raises(ValueError, match="num_labels must be an integer ≥ 2"):
        build_student("bag", tokenizer, 1)
    with pytest.raises(ValueError, match="pass teacher_encoder="):
        build_student("truncated", tokenizer, 3)
    with pytest.raises(ValueError, match="keep_layers must be between 1 and the teacher's 6 layers"):
        build_student("truncated", tokenizer, 3, teacher_encoder=encoder, keep_layers=7)


def test_an_encoder_student_can_start_from_the_teacher_head(minilm):
    from torch import nn

    from kdlab.students import head_from_teacher

    encoder, tokenizer = minilm
    torch.manual_seed(1)
    teacher_head = nn.Linear(encoder.config.hidden_size, 5)
    student = build_student("truncated", tokenizer, 5, teacher_encoder=encoder, teacher_head=teacher_head)
    assert torch.equal(student.head.weight, teacher_head.weight) and torch.equal(student.head.bias, teacher_head.bias)
    with torch.no_grad():
        student.head.weight.add_(1.0)
    assert not torch.equal(student.head.weight, teacher_head.weight)  # a copy: training the student leaves the teacher alone
    plain = build_student("truncated", tokenizer, 5, teacher_encoder=encoder)
    assert not torch.equal(plain.head.weight, teacher_head.weight)
    with pytest.raises(ValueError, match="teacher_head maps 384 features"):
        build_student("tiny-bert", tokenizer, 5, teacher_head=teacher_head)  # 128-wide sentence vectors
    with pytest.raises(ValueError, match="encoder student"):
        build_student("bag", tokenizer, 5, teacher_head=teacher_head)
    with pytest.raises(ValueError, match="teacher_head must be"):
        head_from_teacher(plain, "head.pt")
