"""New queries made from the training queries, for the teacher to label (notebook 12).

Labels exist only for the queries someone wrote down; a teacher can score any query. So a transfer set can
be grown: each training query is copied a few times with some word pieces masked, dropped or swapped, and the
teacher's soft targets on those new inputs (`kdlab.ensemble.load_teacher_panel` scores them once and caches
them) teach the student what labels cannot — how the teacher's belief moves when a query is garbled. TinyBERT's
largest gain came from such a teacher-labelled augmented set. Everything here uses the teacher's own
tokenizer: no external model or word list.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_count, check_probability
from .tokens import Tokens

# One edit per copy, in turn: copy 0 masks, copy 1 drops, copy 2 swaps, copy 3 masks again, ...
AUGMENTATIONS = ("mask", "drop", "swap")


def augment_query(ids: list[int], how: str, probability: float, mask_id: int, generator: torch.Generator) -> list[int]:
    """One garbled copy of one query's word pieces ([CLS] … [SEP] kept in place): mask, drop or swap some of them."""
    if how not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {how!r}; choose one of {', '.join(AUGMENTATIONS)}")
    first, inner, last = ids[:1], list(ids[1:-1]), ids[-1:]
    if len(inner) < 2:  # one word piece: nothing to garble without emptying the query
        return list(ids)
    hit = (torch.rand(len(inner), generator=generator) < probability).tolist()
    if not any(hit):  # at least one edit, so the copy is a new query
        hit[int(torch.randint(len(inner), (1,), generator=generator))] = True
    if how == "mask":
        inner = [mask_id if h else t for t, h in zip(inner, hit)]
    elif how == "drop":
        kept = [t for t, h in zip(inner, hit) if not h]
        inner = kept or inner[:1]
    else:  # swap each hit word piece with its right-hand neighbour
        for i, h in enumerate(hit[:-1]):
            if h:
                inner[i], inner[i + 1] = inner[i + 1], inner[i]
        if inner == list(ids[1:-1]):  # the swaps undid each other, or swapped equal pieces: swap two that differ
            i = next((i for i in range(len(inner) - 1) if inner[i] != inner[i + 1]), 0)
            inner[i], inner[i + 1] = inner[i + 1], inner[i]
    return first + inner + last


def augment_tokens(tokens: Tokens, copies: int, mask_id: int, seed: int = 0, probability: float = 0.15,
                   pad_id: int = 0) -> tuple[Tokens, Tensor, list[str]]:
    """`copies` garbled versions of every query: their tokens, the row each came from, and the edit each got."""
    copies = check_count(copies, "copies", hint="new queries per training query, e.g. 2")
    probability = check_probability(probability, "probability")
    if probability == 0:
        raise ValueError("probability must be > 0: with 0 every copy would equal its source query")
    if not isinstance(tokens, Tokens) or len(tokens) == 0:
        raise ValueError("tokens must be a non-empty kdlab Tokens batch, e.g. cache.tokens['train']")
    generator = torch.Generator().manual_seed(seed)
    lengths = tokens.attention_mask.sum(dim=1).tolist()
    rows, made, edits = [], [], []
    for copy in range(copies):
        how = AUGMENTATIONS[copy % len(AUGMENTATIONS)]
        for row, length in enumerate(lengths):
            made.append(augment_query(tokens.input_ids[row, :length].tolist(), how, probability, mask_id, generator))
            rows.append(row)
            edits.append(how)
    width = max(len(ids) for ids in made)
    input_ids = torch.full((len(made), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(made), width), dtype=torch.long)
    for i, ids in enumerate(made):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        attention_mask[i, :len(ids)] = 1
    return Tokens(input_ids, attention_mask), torch.tensor(rows), edits


def concat_tokens(first: Tokens, second: Tokens, pad_id: int = 0) -> Tokens:
    """Rows of both batches in one, padded to the wider of the two."""
    width = max(first.input_ids.shape[1], second.input_ids.shape[1])

    def padded(t: Tokens) -> tuple[Tensor, Tensor]:
        extra = width - t.input_ids.shape[1]
        return (torch.nn.functional.pad(t.input_ids, (0, extra), value=pad_id),
                torch.nn.functional.pad(t.attention_mask, (0, extra), value=0))

    (a_ids, a_mask), (b_ids, b_mask) = padded(first), padded(second)
    return Tokens(torch.cat([a_ids, b_ids]), torch.cat([a_mask, b_mask]))


__all__ = ["AUGMENTATIONS", "augment_query", "augment_tokens", "concat_tokens"]
