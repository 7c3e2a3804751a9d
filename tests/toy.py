"""Toy intents shared by tests: recognisable by their words, learnable in seconds."""

from __future__ import annotations

import random
from pathlib import Path

# Three toy intents, each recognisable by its own words, so a model can learn them in seconds.
TOY_WORDS = {
    "card_lost": ["card", "lost", "stolen", "missing", "wallet"],
    "top_up": ["top", "up", "money", "add", "balance"],
    "exchange": ["exchange", "rate", "currency", "euro", "dollar"],
}
FILLER = ["my", "the", "please", "help", "i", "need", "why", "is", "a"]


def write_toy_split(path: Path, rows: int, seed: int, sep: str = "\t") -> None:
    """Write `rows` toy queries with their intent to a .tsv/.csv file."""
    rng = random.Random(seed)
    lines = [f"text{sep}label"]
    intents = list(TOY_WORDS)
    for i in range(rows):
        intent = intents[i % len(intents)]
        words = rng.sample(TOY_WORDS[intent], 2) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        lines.append(f"{' '.join(words)}{sep}{intent}")
    path.write_text("\n".join(lines) + "\n")
