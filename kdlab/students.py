"""Students: small models that read the teacher's token ids and learn from its soft targets (notebook 05).

Every student follows one small protocol, which is all the training loop, the Trainer and the losses rely on:
`student(input_ids, attention_mask)` returns class logits, and `student(..., return_features=True)` returns
`(logits, features)`, the sentence vector the classifier reads; `student.feature_dim` is that vector's width.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .teacher import mean_pool
from .tokens import vocab_fingerprint

STUDENT_KINDS = ("bag", "tiny-bert", "truncated")
# The kinds whose classifier starts from the teacher's trained head (student_start): a truncated student keeps
# teacher layers, so the teacher's head already reads its sentence vectors about half right.
STARTS_FROM_TEACHER_HEAD = ("truncated",)


class BagStudent(nn.Module):
    """Average of WordPiece embeddings + a small MLP: word order ignored, trains in seconds."""

    def __init__(self, vocab_size: int, num_labels: int, dim: int = 64, hidden: int = 256, dropout: float = 0.1, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.feature_dim = dim
        self.embedding = nn.EmbeddingBag(vocab_size, dim, mode="sum", padding_idx=pad_id)
        self.classifier = nn.Sequential(
            nn.LayerNorm(dim), nn.Dropout(dropout), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_labels)
        )

    def forward(self, input_ids: Tensor, attention_mask: Tensor, return_features: bool = False):
        mask = attention_mask.float()  # float per-token weights, also for an int8 embedding table
        weights = mask / mask.sum(dim=1, keepdim=True).clamp(min=1.0)  # sum of weighted vectors = mean over real tokens
        pooled = self.embedding(input_ids, per_sample_weights=weights)
        logits = self.classifier(pooled)
        return (logits, pooled) if return_features else logits


class EncoderStudent(nn.Module):
    """A BERT encoder (small from scratch, or teacher layers kept) + mean pooling + linear head."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.feature_dim = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def pooled(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The mean-pooled sentence vector (what a hidden-state loss compares with the teacher's)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, return_features: bool = False):
        pooled = self.pooled(input_ids, attention_mask)
        logits = self.head(self.dropout(pooled))
        return (logits, pooled) if return_features else logits


def tiny_bert_encoder(vocab_size: int, layers: int = 2, hidden: int = 128, heads: int = 2, max_positions: int = 128) -> nn.Module:
    """A small BERT built from a config, randomly initialised: same tokenizer, a fraction of the size."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * hidden, max_position_embeddings=max_positions,
    )
    return BertModel(config, add_pooling_layer=False)


def truncated_encoder(teacher_encoder: nn.Module, keep_layers: int = 3) -> nn.Module:
    """DistilBERT-style: copy the teacher and keep every other layer, so the student starts from its weights."""
    total = teacher_encoder.config.num_hidden_layers
    if not 1 <= keep_layers <= total:
        raise ValueError(f"keep_layers must be between 1 and the teacher's {total} layers, got {keep_layers}")
    encoder = copy.deepcopy(teacher_encoder)
    step = total / keep_layers
    chosen = sorted({int(i * step) for i in range(keep_layers)})
    encoder.encoder.layer = nn.ModuleList([encoder.encoder.layer[i] for i in chosen])
    encoder.config.num_hidden_layers = len(chosen)
    encoder.kept_layers = chosen
    return encoder


def build_student(kind: str, tokenizer, num_labels: int, teacher_encoder: nn.Module | None = None, seed: int = 0,
                  teacher_head: nn.Linear | None = None, **options) -> nn.Module:
    """Make a student of the given kind that reads the teacher tokenizer's ids.

    `teacher_head` (e.g. kdlab.teacher_head(cache)) starts an encoder student's classifier from the teacher's
    trained one (see head_from_teacher).
    """
    if kind not in STUDENT_KINDS:
        raise ValueError(f"student must be one of {', '.join(STUDENT_KINDS)}, got {kind!r}")
    if not isinstance(num_labels, int) or num_labels < 2:
        raise ValueError(f"num_labels must be an integer ≥ 2, got {num_labels!r}")
    torch.manual_seed(seed)
    vocab_size = len(tokenizer)
    if kind == "bag":
        student = BagStudent(vocab_size, num_labels, pad_id=tokenizer.pad_token_id, **options)
    elif kind == "tiny-bert":
        student = EncoderStudent(tiny_bert_encoder(vocab_size, **options), num_labels)
    else:
        if teacher_encoder is None:
            raise ValueError("the 'truncated' student copies teacher layers: pass teacher_encoder=")
        student = EncoderStudent(truncated_encoder(teacher_encoder, **options), num_labels)
    if teacher_head is not None:
        head_from_teacher(student, teacher_head)
    student.vocab_fingerprint = vocab_fingerprint(tokenizer)
    return student


def student_start(kind: str, cache, tokenizer, teacher_encoder: nn.Module | None = None, seed: int = 0, **options) -> nn.Module:
    """The standard starting point of each student kind, decided here once for every caller.

    'truncated' keeps teacher layers and starts its classifier from the teacher's trained head (kdlab.teacher_head):
    right on about half of dev before any training instead of 1 in 77. The other kinds start from scratch.
    """
    from .cache import teacher_head

    head = teacher_head(cache) if kind in STARTS_FROM_TEACHER_HEAD else None
    student = build_student(kind, tokenizer, len(cache.label_names), teacher_encoder=teacher_encoder, seed=seed,
                            teacher_head=head, **options)
    check_same_tokenizer(student, tokenizer)
    return student


def check_same_tokenizer(student: nn.Module, tokenizer) -> None:
    """Refuse to distill when student and teacher tokenizers differ: ids would mean different words."""
    expected = getattr(student, "vocab_fingerprint", None)
    actual = vocab_fingerprint(tokenizer)
    if expected is None:
        raise ValueError("student has no vocab_fingerprint; build it with kdlab.build_student(kind, tokenizer, ...)")
    if expected != actual:
        raise ValueError(
            f"student was built for a tokenizer with vocabulary {expected}, but the teacher's is {actual}; "
            "build the student from the teacher's tokenizer so both read the same token ids"
        )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable weights: the size measure in every results table."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def head_from_teacher(student: nn.Module, teacher_head: nn.Linear) -> nn.Module:
    """Start an encoder student's classifier from the teacher's trained head, in place.

    The truncated student's sentence vectors live in (nearly) the teacher's space, since its layers are the
    teacher's: with the teacher's head it is right on about half of dev before any training, instead of 1 in 77.
    """
    head = getattr(student, "head", None)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"head_from_teacher needs an encoder student with a linear head, got {type(student).__name__}")
    if not isinstance(teacher_head, nn.Linear):
        raise ValueError(f"teacher_head must be the teacher's nn.Linear head, got {type(teacher_head).__name__}")
    if teacher_head.weight.shape != head.weight.shape:
        raise ValueError(
            f"teacher_head maps {teacher_head.in_features} features to {teacher_head.out_features} classes, the student's "
            f"head {head.in_features} to {head.out_features}; use a student of the teacher's width (e.g. 'truncated')"
        )
    with torch.no_grad():
        head.weight.copy_(teacher_head.weight)
        head.bias.copy_(teacher_head.bias)
    return student
