"""Token ids shared by teacher and students: one tokenization serves both."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor

MAX_LENGTH = 64  # Banking77 queries: median 13 WordPiece tokens, 99.9th percentile 73.


@dataclass
class Tokens:
    """Padded token ids and attention mask for a list of texts, row i = text i."""

    input_ids: Tensor
    attention_mask: Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: Tensor | list[int]) -> "Tokens":
        """Pick rows, trimming padding columns no row in the batch needs (faster transformer steps)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        mask = self.attention_mask[rows]
        width = max(int(mask.sum(dim=1).max()), 1) if len(rows) else 1
        return Tokens(self.input_ids[rows, :width], mask[:, :width])

    def to(self, device: torch.device | str) -> "Tokens":
        """Move both tensors to a device in one call."""
        return Tokens(self.input_ids.to(device), self.attention_mask.to(device))


def tokenize(tokenizer, texts: list[str], max_length: int = MAX_LENGTH) -> Tokens:
    """Tokenize texts once, padded to the longest, so every model sees identical ids."""
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, got a single string; wrap it in a list")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty; pass at least one string")
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return Tokens(encoded["input_ids"].to(torch.int64), encoded["attention_mask"].to(torch.int64))


def vocab_fingerprint(tokenizer) -> str:
    """A short hash of a tokenizer's vocabulary: equal hashes mean the same ids for the same text."""
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(repr(vocab).encode()).hexdigest()[:16]
