"""kdlab.augment: garbled copies of each query keep [CLS]/[SEP], edit only the inner word pieces, and line up."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from kdlab.augment import AUGMENTATIONS, augment_query, augment_tokens, concat_tokens
from kdlab.tokens import Tokens

CLS, SEP, MASK, PAD = 101, 102, 103, 0


def is_subsequence(short: list[int], long: list[int]) -> bool:
    """Whether `short` is `long` with some items removed, order kept (a plain two-pointer walk)."""
    walker = iter(long)
    return all(any(item == other for other in walker) for item in short)


def random_queries(count: int, seed: int, low: int = 2, high: int = 9) -> list[list[int]]:
    """[CLS] + `low`..`high` distinct inner ids + [SEP], for every row."""
    rng = torch.Generator().manual_seed(seed)
    queries = []
    for _ in range(count):
        length = int(torch.randint(low, high + 1, (1,), generator=rng))
        inner = (torch.randperm(50, generator=rng)[:length] + 1000).tolist()
        queries.append([CLS, *inner, SEP])
    return queries


def as_tokens(queries: list[list[int]]) -> Tokens:
    width = max(map(len, queries))
    ids = torch.full((len(queries), width), PAD)
    mask = torch.zeros((len(queries), width), dtype=torch.long)
    for i, q in enumerate(queries):
        ids[i, :len(q)] = torch.tensor(q)
        mask[i, :len(q)] = 1
    return Tokens(ids, mask)


@pytest.mark.parametrize("probability", [0.01, 0.15, 0.9])
def test_each_edit_touches_only_the_inner_pieces_and_always_changes_the_query(probability):
    generator = torch.Generator().manual_seed(0)
    for query in random_queries(60, seed=1):
        inner = query[1:-1]
        for how in AUGMENTATIONS:
            copy = augment_query(query, how, probability, MASK, generator)
            assert copy[0] == CLS and copy[-1] == SEP, (how, copy)
            new_inner = copy[1:-1]
            assert copy != query, (how, query, copy)  # ≥ 2 inner pieces: the copy is a new query
            if how == "mask":
                assert len(copy) == len(query)
                assert all(new == old or new == MASK for new, old in zip(new_inner, inner))
            elif how == "drop":
                assert 1 <= len(new_inner) < len(inner)
                assert is_subsequence(new_inner, inner)
            else:
                assert sorted(new_inner) == sorted(inner)  # a permutation of the same pieces


def test_swap_changes_a_query_whose_pieces_repeat():
    """Swapping two equal neighbours changes nothing; the copy must still differ from its source."""
    for seed in range(40):
        generator = torch.Generator().manual_seed(seed)
        for inner in ([7, 7, 8], [7, 8, 8], [7, 7, 7, 8], [5, 6, 6, 6]):
            query = [CLS, *inner, SEP]
            copy = augment_query(query, "swap", 0.15, MASK, generator)
            assert sorted(copy[1:-1]) == sorted(inner) and copy != query, (seed, inner, copy)


@pytest.mark.parametrize("how", AUGMENTATIONS)
def test_a_one_piece_query_is_returned_unchanged(how):
    for query in ([CLS, 1234, SEP], [CLS, SEP]):
        assert augment_query(query, how, 0.9, MASK, torch.Generator().manual_seed(0)) == query


def test_an_unknown_edit_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown augmentation 'shuffle'.*mask, drop, swap"):
        augment_query([CLS, 5, 6, SEP], "shuffle", 0.5, MASK, torch.Generator())


def test_augment_tokens_rows_sources_padding_and_edits_line_up():
    queries = random_queries(7, seed=3)
    tokens = as_tokens(queries)
    copies = 5
    made, source, edits = augment_tokens(tokens, copies, MASK, seed=0, probability=0.3, pad_id=PAD)
    assert len(made) == copies * len(queries) and source.tolist() == list(range(len(queries))) * copies
    assert edits == [AUGMENTATIONS[c % 3] for c in range(copies) for _ in queries]  # mask, drop, swap, mask, drop
    lengths = made.attention_mask.sum(dim=1)
    assert made.input_ids.shape[1] == int(lengths.max())  # no column only padding
    for row in range(len(made)):
        n = int(lengths[row])
        assert made.attention_mask[row, :n].eq(1).all() and made.attention_mask[row, n:].eq(0).all()
        assert made.input_ids[row, n:].eq(PAD).all()
        ids, original = made.input_ids[row, :n].tolist(), queries[int(source[row])]
        assert ids[0] == CLS and ids[-1] == SEP and ids != original
        inner, old = ids[1:-1], original[1:-1]
        if edits[row] == "mask":
            assert len(ids) == len(original) and all(a == b or a == MASK for a, b in zip(inner, old))
        elif edits[row] == "drop":
            assert len(ids) < len(original) and is_subsequence(inner, old)
        else:
            assert Counter(inner) == Counter(old)


def test_seeds_reproduce_and_differ():
    tokens = as_tokens(random_queries(20, seed=4))
    a = augment_tokens(tokens, 3, MASK, seed=1)[0]
    b = augment_tokens(tokens, 3, MASK, seed=1)[0]
    c = augment_tokens(tokens, 3, MASK, seed=2)[0]
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.attention_mask, b.attention_mask)
    assert a.input_ids.shape != c.input_ids.shape or not torch.equal(a.input_ids, c.input_ids)


@pytest.mark.parametrize("kwargs, message", [
    ({"copies": 0}, "copies must be an integer ≥ 1"),
    ({"copies": 1.5}, "copies must be an integer"),
    ({"probability": 0}, "probability must be > 0"),
    ({"probability": 1.5}, "probability must be a probability in"),
    ({"tokens": [[CLS, 5, SEP]]}, "tokens must be a non-empty kdlab Tokens batch"),
])
def test_bad_arguments_are_refused_naming_the_argument(kwargs, message):
    arguments = {"tokens": as_tokens(random_queries(3, seed=0)), "copies": 2, "mask_id": MASK, "probability": 0.15, **kwargs}
    with pytest.raises(ValueError, match=message):
        augment_tokens(**arguments)


def test_concat_tokens_pads_the_narrower_batch():
    narrow = as_tokens([[CLS, 5, SEP], [CLS, 6, 7, SEP]])
    wide = as_tokens([[CLS, 8, 9, 10, 11, 12, SEP]])
    for first, second in ((narrow, wide), (wide, narrow)):
        both = concat_tokens(first, second, pad_id=PAD)
        assert both.input_ids.shape == (3, 7) and both.attention_mask.shape == (3, 7)
        rows = [*(first.input_ids[i, :int(first.attention_mask[i].sum())].tolist() for i in range(len(first))),
                *(second.input_ids[i, :int(second.attention_mask[i].sum())].tolist() for i in range(len(second)))]
        for row, ids in enumerate(rows):
            n = len(ids)
            assert both.input_ids[row, :n].tolist() == ids and both.input_ids[row, n:].eq(PAD).all()
            assert both.attention_mask[row].tolist() == [1] * n + [0] * (7 - n)
