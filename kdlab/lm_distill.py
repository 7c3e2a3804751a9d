"""Distilling a language model: five ways to train one small student from the same teacher (notebook 11).

The arms, all at the same student size, step budget and batch size:

- "ce": next-token cross-entropy on the training queries alone (no teacher);
- "forward_kl": token-level (word-level) KD, KL(p_T ‖ p_S) at every position of the real text, the teacher's
  full next-token distribution computed live per batch (Hinton et al. 2015; Kim & Rush 2016);
- "reverse_kl": the same positions, KL(p_S ‖ p_T) (mode-seeking; MiniLLM, Gu et al. 2023);
- "sequence_kd": cross-entropy on queries the teacher sampled itself, drawn once per seed (Kim & Rush 2016);
- "on_policy": GKD (Agarwal et al. 2023): the student samples queries and the teacher scores every token with
  the generalised JSD(β). From scratch this is poor at a CPU budget (the student's first samples are noise the
  teacher can say little useful about), so the arm spends the first `warmup_fraction` of the SAME step budget
  on forward KL on the text, then, each step, with probability λ (`lmbda`) trains on a batch of its own samples
  and otherwise on a batch of text, with generalized_jsd(β) on either.

All token-level losses are `kdlab.generalized_jsd` with -100 on padding, so the one rule holds here too.
"""

from __future__ import annotations

import logging
import random
import statistics
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .checks import check_beta, check_count, check_positive_number, check_probability, check_temperature
from .lm_teacher import (LMTeacher, ce_loss, encode_queries, lm_batches, lm_config, lm_labels, new_gpt2, perplexity,
                         sequence_nll, warmup_cosine)
from .losses import generalized_jsd

ARMS = ("ce", "forward_kl", "reverse_kl", "sequence_kd", "on_policy")
DEFAULT_BETA = {"forward_kl": 0.0, "reverse_kl": 1.0, "on_policy": 1.0}  # β of generalized_jsd per token arm
MAX_STUDENT_FRACTION = 0.1  # a student has at most 1/10 of the teacher's parameters


@dataclass
class LMRun:
    """One trained student: the model (eval mode), the loss at every step, and the wall time it took."""

    arm: str
    model: "torch.nn.Module"
    history: list[dict]
    seconds: float
    settings: dict = field(default_factory=dict)

    @property
    def params(self) -> int:
        """The student's parameter count."""
        return sum(p.numel() for p in self.model.parameters())


def lm_student(tokenizer, seed: int = 0, layers: int = 2, width: int = 88, heads: int = 2):
    """A small GPT-2 for the teacher's tokenizer, about 1/11 of the teacher's size (notebook 11).

    Same vocabulary and positions as the teacher (the token-level losses compare distributions over the same
    tokens), freshly initialised from `seed`. 2 layers × 88 wide is 0.33M parameters against the teacher's 3.6M.
    """
    check_count(seed, "seed", minimum=0)
    for value, name in ((layers, "layers"), (width, "width"), (heads, "heads")):
        check_count(value, name)
    if width % heads:
        raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
    positions = tokenizer.model_max_length
    if positions > 100_000:
        raise ValueError("the tokenizer has no model_max_length; use the LM teacher's tokenizer (load_lm_teacher().tokenizer)")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = new_gpt2(lm_config(tokenizer, layers, width, heads, positions, dropout=0.0))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def student_fraction(student, teacher: LMTeacher) -> float:
    """The student's parameter count as a fraction of the teacher's."""
    return sum(p.numel() for p in student.parameters()) / teacher.params


def check_lm_arm(arm: str, steps, temperature, beta, lmbda, batch_size, lr, warmup_fraction) -> tuple[float | None, float]:
    """Refuse a bad arm or setting before any training; the β and λ the arm will use."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose one of {', '.join(ARMS)}")
    check_count(steps, "steps", hint="training steps of the student")
    check_count(batch_size, "batch_size")
    check_temperature(temperature)
    check_positive_number(lr, "lr", "a learning rate, e.g. 3e-3")
    check_probability(warmup_fraction, "warmup_fraction")
    if beta is not None and arm not in DEFAULT_BETA:
        raise ValueError(f"beta is the generalised JSD's mixture; arm {arm!r} has no such loss (it is one of {', '.join(DEFAULT_BETA)})")
    if lmbda is not None and arm != "on_policy":
        raise ValueError(f"lmbda (the on-policy fraction of batches) only applies to the 'on_policy' arm, not {arm!r}")
    beta = check_beta(DEFAULT_BETA[arm] if beta is None else beta) if arm in DEFAULT_BETA else None
    lmbda = check_probability(1.0 if lmbda is None else lmbda, "lmbda", allow_one=True)
    return beta, lmbda


def token_loss(student, teacher_model, input_ids: Tensor, attention_mask: Tensor, beta: float, temperature: float) -> Tensor:
    """generalized_jsd between student and teacher at every next-token position of a batch, padding masked (-100)."""
    with torch.no_grad():
        teacher_logits = teacher_model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    student_logits = student(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    return generalized_jsd(student_logits, teacher_logits, lm_labels(input_ids, attention_mask), beta=beta, temperature=temperature)


_TEACHER_SAMPLES: dict[tuple, list[str]] = {}  # (teacher folder, seed, n, temperature) → the teacher's own queries


def teacher_samples(teacher: LMTeacher, n: int, seed: int, temperature: float = 1.0) -> list[str]:
    """`n` queries the teacher sampled itself (the data of sequence-level KD), drawn once per seed and kept."""
    key = (str(teacher.path), seed, n, temperature)
    if key not in _TEACHER_SAMPLES:
        _TEACHER_SAMPLES[key] = sample_queries(teacher.model, teacher.tokenizer, n=n, seed=seed, temperature=temperature)
    return _TEACHER_SAMPLES[key]


def train_lm_arm(arm: str, teacher: LMTeacher, steps: int, seed: int = 0, temperature: float = 1.0,
                 beta: float | None = None, lmbda: float | None = None, batch_size: int = 32, lr: float = 3e-3,
                 warmup_fraction: float = 0.5, progress: bool = False, layers: int = 2, width: int = 88,
                 heads: int = 2) -> LMRun:
    """Train a fresh student by one of the five arms (ARMS) for `steps` batches and return it (notebook 11).

    `temperature` is the loss's T (generalized_jsd); samples are always drawn at T = 1. `beta` defaults to 0
    (forward_kl), 1 (reverse_kl, on_policy); `lmbda` (on_policy only, default 1) is the probability that a step
    of the on-policy phase trains on the student's own samples — a fraction of the data, not a loss weight;
    `warmup_fraction` (on_policy only) is the share of `steps` spent on forward KL on the text first.
    Every setting is checked before any work.
    """
    beta, lmbda = check_lm_arm(arm, steps, temperature, beta, lmbda, batch_size, lr, warmup_fraction)
    tokenizer = teacher.tokenizer
    student = lm_student(tokenizer, seed=seed, layers=layers, width=width, heads=heads)
    start = time.perf_counter()
    if arm == "sequence_kd":
        texts = teacher_samples(teacher, min(len(teacher.texts["train"]), steps * batch_size), seed)
    else:
        texts = teacher.texts["train"]
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.01)
    scheduler = warmup_cosine(optimizer, steps, warmup_steps=max(1, steps // 20))
    on_policy_from = round(warmup_fraction * steps) if arm == "on_policy" else steps
    coin = random.Random(seed)  # GKD's per-step draw: on-policy with probability λ
    history = []
    bar = tqdm(lm_batches(tokenizer, texts, batch_size, steps, seed), total=steps, desc=arm, disable=not progress, leave=False)
    student.train()
    with torch.enable_grad():  # training works even when called inside torch.no_grad()
        for step, (input_ids, attention_mask) in enumerate(bar):
            on_policy = step >= on_policy_from and coin.random() < lmbda
            if on_policy:
                input_ids, attention_mask = _sample_ids(student, tokenizer, batch_size, seed * 1_000_003 + step)
                student.train()
            if arm in ("ce", "sequence_kd"):
                loss = ce_loss(student, input_ids, attention_mask)
            else:
                step_beta = 0.0 if arm == "on_policy" and step < on_policy_from else beta  # on_policy's warm-up: forward KL
                loss = token_loss(student, teacher.model, input_ids, attention_mask, step_beta, temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            history.append({"step": step + 1, "loss": loss.item(), **({"on_policy": on_policy} if arm == "on_policy" else {})})
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    student.eval()
    settings = {"steps": steps, "seed": seed, "temperature": temperature, "beta": beta,
                "lmbda": lmbda if arm == "on_policy" else None, "batch_size": batch_size, "lr": lr,
                "warmup_fraction": warmup_fraction if arm == "on_policy" else None,
                "layers": layers, "width": width, "heads": heads}
    return LMRun(arm, student, history, time.perf_counter() - start, settings)


# --- metrics ---


def test_perplexity(model, teacher_or_tokenizer, texts: list[str] | None = None) -> float:
    """Perplexity on the test queries, teacher-forced with padding masked: exp of the mean per-token NLL (notebook 11).

    Pass the LMTeacher (its tokenizer and test queries are used) or a tokenizer and `texts`.
    """
    if isinstance(teacher_or_tokenizer, LMTeacher):
        tokenizer, texts = teacher_or_tokenizer.tokenizer, teacher_or_tokenizer.texts["test"] if texts is None else texts
    else:
        tokenizer = teacher_or_tokenizer
        if texts is None:
            raise ValueError("texts is needed with a tokenizer; or pass the LMTeacher to use its test queries")
    return perplexity(model, tokenizer, list(texts))


test_perplexity.__test__ = False  # a metric, not a pytest test, whatever its name


@torch.no_grad()
def _sample_ids(model, tokenizer, n: int, seed: int, temperature: float = 1.0, max_new_tokens: int = 32) -> tuple[Tensor, Tensor]:
    """`n` sequences sampled from <bos> (ids and mask, the mask ending at each sequence's first <eos>)."""
    from transformers import GenerationConfig

    was_training = model.training
    model.eval()
    config = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_length=1 + max_new_tokens,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                              bos_token_id=tokenizer.bos_token_id)
    start = torch.full((n, 1), tokenizer.bos_token_id, dtype=torch.long)
    with torch.random.fork_rng(), _quiet_padding_warning():  # the seed decides the samples; the caller's RNG is left alone
        torch.manual_seed(seed)
        ids = model.generate(input_ids=start, attention_mask=torch.ones_like(start), generation_config=config)
    model.train(was_training)
    is_eos = ids == tokenizer.eos_token_id
    is_eos[:, 0] = False
    # keep every position up to and including the first <eos>; generate pads the rest
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
    mask = (~after_eos).long()
    return ids.masked_fill(after_eos, tokenizer.pad_token_id), mask


class _DropPaddingWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "passing in an `attention_mask`" not in record.getMessage()


@contextmanager
def _quiet_padding_warning():
    """generate feeds <pad> to rows that already ended, without a mask; those positions are cut off, so the
    warning transformers gives about it would only confuse a learner."""
    logger, quiet = logging.getLogger("transformers.modeling_utils"), _DropPaddingWarning()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def sample_queries(model, tokenizer, n: int = 200, seed: int = 0, temperature: float = 1.0,
                   max_new_tokens: int = 32, batch_size: int = 256) -> list[str]:
    """Let a model write `n` queries from scratch (ancestral sampling at a temperature), the same ones for a seed (notebook 11)."""
    check_count(n, "n")
    check_count(seed, "seed", minimum=0)
    check_temperature(temperature)
    check_count(max_new_tokens, "max_new_tokens")
    limit = getattr(model.config, "n_positions", None)
    if limit is not None and max_new_tokens + 1 > limit:
        raise ValueError(f"max_new_tokens must be ≤ {limit - 1} (the model has {limit} positions), got {max_new_tokens}")
    texts = []
    for index, start in enumerate(range(0, n, batch_size)):
        ids, _ = _sample_ids(model, tokenizer, min(batch_size, n - start), seed * 1_000_003 + index, temperature, max_new_tokens)
        texts += tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [text.strip() for text in texts]


@torch.no_grad()
def teacher_nll_of_samples(teacher: LMTeacher, samples: list[str]) -> float:
    """The teacher's mean per-token NLL of queries someone else wrote: low means teacher-like text (notebook 11)."""
    if isinstance(samples, str) or not len(samples):
        raise ValueError("samples must be a non-empty list of strings (e.g. from sample_queries)")
    total, count = 0.0, 0
    for start in range(0, len(samples), 256):
        input_ids, attention_mask = encode_queries(teacher.tokenizer, list(samples[start:start + 256]))
        nll, tokens = sequence_nll(teacher.model, input_ids, attention_mask)
        total, count = total + nll.sum().item(), count + int(tokens.sum())
    return total / count


def distinct_n(samples: list[str], n: int = 2) -> float:
    """Diversity of samples: distinct word n-grams over all word n-grams across the samples (Li et al. 2016) (notebook 11)."""
    check_count(n, "n")
    grams = Counter()
    for text in samples:
        words = text.split()
        grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


@torch.no_grad()
def next_token_logits(model, tokenizer, prefix: str) -> Tensor:
    """The model's logits for the token after `prefix` (bos + the prefix's tokens), in eval mode and without a graph."""
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a string, got {type(prefix).__name__}")
    ids = [tokenizer.bos_token_id] + tokenizer(prefix, add_special_tokens=False)["input_ids"]
    limit = getattr(model.config, "n_positions", len(ids))
    if len(ids) > limit:
        raise ValueError(f"prefix is {len(ids)} tokens long; the model reads at most {limit}")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    model.train(was_training)
    return logits


def top_next_tokens(logits: Tensor, tokenizer, temperature: float = 1.0, top: int = 10):
    """The `top` most likely tokens of next-token logits at a temperature, as a table of token and probability."""
    import pandas as pd

    temperature = check_temperature(temperature)
    check_count(top, "top")
    probabilities = torch.softmax(logits.double() / temperature, dim=-1)
    values, indices = probabilities.topk(min(top, len(probabilities)))
    tokens = [tokenizer.decode([int(i)]) for i in indices]
    return pd.DataFrame({"token": tokens, "probability": values.tolist()})


def next_token_distribution(model, tokenizer, prefix: str, temperature: float = 1.0, top: int = 10):
    """The model's most likely next tokens after `prefix` (e.g. "I lost my") at a temperature, as a table (notebook 11)."""
    check_temperature(temperature)
    check_count(top, "top")
    return top_next_tokens(next_token_logits(model, tokenizer, prefix), tokenizer, temperature, top)


# --- the whole comparison: every arm, every seed, one JSON (python -m kdlab distill-lm, benchmarks/lm_distillation.py) ---

METRICS = ("test_perplexity", "teacher_nll_of_samples", "distinct_2")


def check_arms_and_seeds(arms, seeds) -> tuple[list[str], list[int]]:
    """The arms (known, no repeats) and seeds (different integers ≥ 0) of a comparison, checked before any work."""
    arms, seeds = list(arms), list(seeds)
    unknown = [arm for arm in arms if arm not in ARMS]
    if not arms or unknown or len(set(arms)) != len(arms):
        raise ValueError(f"arms must be one or more different arms of {', '.join(ARMS)}, got {arms}")
    for seed in seeds:
        check_count(seed, "seed", minimum=0)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be one or more different integers ≥ 0, got {seeds}")
    return arms, [int(seed) for seed in seeds]


def compare_lm_arms(teacher: LMTeacher, arms=ARMS, seeds=(0,), steps: int = 300, samples: int = 200,
                    progress: bool = False, **train_settings) -> dict:
    """Train every arm for every seed at one student size and step budget; perplexity, teacher-NLL of samples, diversity.

    Returns the JSON of DESIGN.md: {"teacher", "arms": {arm: mean, std and per-seed values}, "settings", "timings_s"}.
    Each arm's samples are `samples` queries of its own, drawn at T = 1 with the run's seed.
    """
    arms, seeds = check_arms_and_seeds(arms, seeds)
    check_count(samples, "samples")
    for arm in arms:  # every setting checked for every arm before the first step
        check_lm_arm(arm, steps, train_settings.get("temperature", 1.0),
                     train_settings.get("beta") if arm in DEFAULT_BETA else None,
                     train_settings.get("lmbda") if arm == "on_policy" else None,
                     train_settings.get("batch_size", 32), train_settings.get("lr", 3e-3),
                     train_settings.get("warmup_fraction", 0.5))
    timings: dict[str, float] = {}
    start = time.perf_counter()
    teacher_texts = sample_queries(teacher.model, teacher.tokenizer, n=samples, seed=0)
    teacher_entry = {
        "params": teacher.params,  # measured when it was built, by the same test_perplexity
        "test_perplexity": teacher.meta.get("test_perplexity") or test_perplexity(teacher.model, teacher),
        "teacher_nll_of_samples": teacher_nll_of_samples(teacher, teacher_texts), "distinct_2": distinct_n(teacher_texts, 2),
        "train_seconds": teacher.meta.get("train_seconds"), "steps": teacher.meta.get("steps"),
        "samples": teacher_texts[:8], "settings": teacher.meta.get("settings"),
    }
    timings["teacher_metrics"] = time.perf_counter() - start
    results = {}
    for arm in arms:
        runs = []
        for seed in seeds:
            settings = dict(train_settings)
            if arm not in DEFAULT_BETA:
                settings.pop("beta", None)
            if arm != "on_policy":
                settings.pop("lmbda", None)
                settings.pop("warmup_fraction", None)
            run = train_lm_arm(arm, teacher, steps, seed=seed, progress=progress, **settings)
            start = time.perf_counter()
            texts = sample_queries(run.model, teacher.tokenizer, n=samples, seed=seed)
            runs.append({
                "seed": seed, "test_perplexity": test_perplexity(run.model, teacher),
                "teacher_nll_of_samples": teacher_nll_of_samples(teacher, texts), "distinct_2": distinct_n(texts, 2),
                "train_seconds": run.seconds, "final_loss": statistics.fmean(h["loss"] for h in run.history[-10:]),
                "samples": texts[:8],
            })
            timings[f"{arm}_seed{seed}"] = run.seconds + time.perf_counter() - start
        entry = arm_entry(runs, run.params, teacher.params, run.settings | {"seed": None})
        results[arm] = entry
    return {"teacher": teacher_entry, "arms": results,
            "settings": {"steps": steps, "seeds": seeds, "samples": samples, "arms": arms, **train_settings,
                         "student": {k: run.settings[k] for k in ("layers", "width", "heads")},
                         "teacher_path": str(teacher.path), "torch_threads": torch.get_num_threads()},
            "timings_s": timings}


def arm_entry(runs: list[dict], params: int, teacher_params: int, settings: dict) -> dict:
    """One arm's JSON entry: each metric's mean, std and per-seed values, and every seed's run beside them."""
    entry = {"params": params, "fraction_of_teacher": params / teacher_params, "seeds": [r["seed"] for r in runs]}
    for metric in METRICS:
        values = [r[metric] for r in runs]
        entry[metric] = statistics.fmean(values)
        entry[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        entry[f"{metric}_per_seed"] = values
    entry.update({"train_seconds": statistics.fmean(r["train_seconds"] for r in runs), "samples": runs[0]["samples"],
                  "settings": settings, "runs": runs})
    return entry


def merge_lm_results(parts: list[dict]) -> dict:
    """Several comparisons of the same arms and settings, one seed set each (run in parallel), as one comparison."""
    if not parts:
        raise ValueError("nothing to merge")
    merged = {"teacher": parts[0]["teacher"], "arms": {}, "settings": dict(parts[0]["settings"]), "timings_s": {}}
    merged["settings"]["seeds"] = [seed for part in parts for seed in part["settings"]["seeds"]]
    for arm, first in parts[0]["arms"].items():
        runs = [run for part in parts for run in part["arms"][arm]["runs"]]
        merged["arms"][arm] = arm_entry(runs, first["params"], parts[0]["teacher"]["params"], first["settings"])
    for part in parts:
        merged["timings_s"].update(part["timings_s"])
    return merged


def format_lm_results(results: dict) -> str:
    """A plain-text table of a comparison: perplexity, teacher-NLL of own samples, distinct-2 (mean ± std over seeds)."""
    def cell(entry, metric, digits):
        std = entry.get(f"{metric}_std", 0.0)
        return f"{entry[metric]:.{digits}f}" + (f" ± {std:.{digits}f}" if len(entry.get(f"{metric}_per_seed", [])) > 1 else "")

    lines = [f"{'model':<12} {'params':>9} {'test ppl':>15} {'teacher NLL of samples':>23} {'distinct-2':>15} {'train s':>8}"]
    teacher = results["teacher"]
    lines.append(f"{'teacher':<12} {teacher['params']:>9,} {cell(teacher, 'test_perplexity', 2):>15} "
                 f"{cell(teacher, 'teacher_nll_of_samples', 3):>23} {cell(teacher, 'distinct_2', 3):>15} "
                 f"{teacher['train_seconds'] or 0:>8.0f}")
    for arm, entry in results["arms"].items():
        lines.append(f"{arm:<12} {entry['params']:>9,} {cell(entry, 'test_perplexity', 2):>15} "
                     f"{cell(entry, 'teacher_nll_of_samples', 3):>23} {cell(entry, 'distinct_2', 3):>15} {entry['train_seconds']:>8.0f}")
    settings = results["settings"]
    lines.append(f"student seeds: {' '.join(map(str, settings['seeds']))}, {settings['steps']} steps each"
                 + (" (mean ± std over seeds)" if len(settings["seeds"]) > 1 else ""))
    return "\n".join(lines)


__all__ = ["ARMS", "LMRun", "compare_lm_arms", "format_lm_results", "merge_lm_results", "distinct_n", "lm_student", "next_token_distribution", "sample_queries",
           "teacher_nll_of_samples", "test_perplexity", "train_lm_arm"]
