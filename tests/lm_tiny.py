"""A tiny language-model teacher for the tests: the real recipe (tokenizer, GPT-2, cache) at toy size, built in seconds."""

from __future__ import annotations

from pathlib import Path

TINY_SETTINGS = dict(vocab_size=320, layers=1, width=48, heads=2, steps=60, batch_size=16, warmup_steps=5, lr=5e-3)
_BUILT: dict[str, object] = {}


def tiny_lm_teacher(root: Path):
    """The tiny teacher cached under `root`, built once per test session (tests must not modify it)."""
    from kdlab.lm_teacher import load_lm_teacher

    if str(root) not in _BUILT:
        _BUILT[str(root)] = load_lm_teacher(progress=False, cache_dir=root, **TINY_SETTINGS)
    return _BUILT[str(root)]
