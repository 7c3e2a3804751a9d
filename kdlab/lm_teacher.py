"""The language-model teacher: a small GPT-2 trained from scratch on the Banking77 queries (notebook 11).

It stands in for a large language model. Its tokenizer is a byte-level BPE of about 1,500 tokens built with
`tokenizers` on the training queries, so the full next-token distribution over the vocabulary is cheap to
compute, show and distil. Model and tokenizer are ordinary Hugging Face objects (`GPT2LMHeadModel`,
`PreTrainedTokenizerFast` with a pad token and a chat template), saved with `save_pretrained`, so every
Hugging Face tool — `generate`, TRL's trainers — works on them as on a hub model.

Built once (about 4-5 min on 2 cores), then cached like the teacher cache: a folder under the kdlab cache
root named by a key that hashes the data's content and every setting, written under a temporary name and
moved into place atomically, with a meta.json (parameters, steps, training time, test perplexity).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .cache import check_cache_root
from .checks import check_count, check_positive_number, check_probability
from .threads import model_building, policy_threads, threads
from .data import DEFAULT_DATA_DIR, DataLeakageWarning, SPLITS, columns, load_splits, splits_fingerprint

LM_CACHE_FORMAT = 1  # bump when the stored layout, the tokenizer recipe or the training recipe changes
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
# A minimal chat template so TRL's trainers accept the tokenizer: the conversation's turns one after another,
# the assistant's turn ended by <eos>; the model only ever saw plain queries, so a "prompt" is the start of one.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %} {% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class LMSettings:
    """How the language-model teacher and its tokenizer are built; every field is part of the cache key."""

    vocab_size: int = 1500
    layers: int = 4
    width: int = 256
    heads: int = 4
    max_length: int = 64  # tokens per query with <bos> and <eos>: 99% of Banking77's train queries fit (mean 17)
    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 50
    dropout: float = 0.1
    seed: int = 0

    def __post_init__(self):
        for name in ("vocab_size", "layers", "width", "heads", "max_length", "steps", "batch_size"):
            check_count(getattr(self, name), name)
        check_count(self.warmup_steps, "warmup_steps", minimum=0)
        check_count(self.seed, "seed", minimum=0)
        check_positive_number(self.lr, "lr")
        check_probability(self.dropout, "dropout")
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be a multiple of heads ({self.heads})")
        if self.vocab_size < 259:
            raise ValueError(f"vocab_size must be ≥ 259 (256 bytes + {PAD}, {BOS}, {EOS}), got {self.vocab_size}")


@dataclass
class LMTeacher:
    """The cached language-model teacher: model (eval mode, no gradients), tokenizer, the queries, where and how it was built."""

    model: "torch.nn.Module"
    tokenizer: object
    texts: dict[str, list[str]]
    path: Path
    meta: dict = field(default_factory=dict)

    @property
    def params(self) -> int:
        """The teacher's parameter count (the size a student is compared with)."""
        return sum(p.numel() for p in self.model.parameters())


def lm_settings(**settings) -> LMSettings:
    """LMSettings from keyword arguments, refusing unknown names with the list of known ones."""
    known = {f.name for f in fields(LMSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown language-model teacher setting(s) {unknown}; known: {sorted(known)}")
    return LMSettings(**settings)


def lm_cache_key(splits, settings: LMSettings) -> str:
    """Hash of the data's content and every setting: change one and the teacher is rebuilt under another name."""
    payload = json.dumps(
        {"format": LM_CACHE_FORMAT, "data": splits_fingerprint(splits), "settings": asdict(settings),
         "chat_template": CHAT_TEMPLATE},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def load_lm_teacher(progress: bool = True, cache_dir: str | Path | None = None, data: str | Path = DEFAULT_DATA_DIR,
                    rebuild: bool = False, **settings) -> LMTeacher:
    """Load the small GPT-2 teacher trained on the Banking77 queries, training and caching it on first use (notebook 11).

    `cache_dir` defaults to the kdlab cache root (KDLAB_CACHE or .cache/kdlab); `settings` are LMSettings
    fields (e.g. steps=20 for a quick test teacher). A damaged or stale folder is rebuilt, never used.
    """
    settings = lm_settings(**settings)
    root = check_cache_root(cache_dir)
    with warnings.catch_warnings():  # a test query equal to a train query matters for accuracy, not here
        warnings.simplefilter("ignore", DataLeakageWarning)
        splits = load_splits(data)
    texts = {split: list(columns(splits[split])["text"]) for split in SPLITS}
    key = lm_cache_key(splits, settings)
    path = root / f"lm-teacher-{key}"
    if path.is_dir() and not rebuild:
        try:
            return _read(path, key, texts)
        except (OSError, ValueError, KeyError) as problem:
            print(f"Language-model teacher {path.name} cannot be used ({type(problem).__name__}: {problem}); rebuilding it.")
    else:
        print(f"No language-model teacher for these settings and data yet; training it ({settings.steps} steps, "
              "about 4-5 min on 2 cores for the default settings).")
    return _build(path, key, texts, settings, progress, str(data))


def build_tokenizer(texts: list[str], vocab_size: int = 1500):
    """A byte-level BPE tokenizer trained on these texts, as a transformers tokenizer with pad/bos/eos and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    # tokenizer(text) gives <bos> text <eos>: a query is a whole sequence, from its first token to its end
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, core.token_to_id(BOS)), (EOS, core.token_to_id(EOS))]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS)
    tokenizer.padding_side = "right"
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def encode_queries(tokenizer, texts: list[str], max_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Token ids (<bos> query <eos>, right-padded to the longest) and attention mask of a list of queries (notebook 11)."""
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, got one string; wrap it: [text]")
    if not len(texts):
        raise ValueError("texts is empty: pass at least one query")
    max_length = max_length or tokenizer.model_max_length
    bounded = max_length < 1_000_000  # a tokenizer without a model behind it says 10**30: no truncation then
    encoded = tokenizer(list(texts), padding=True, truncation=bounded, max_length=max_length if bounded else None,
                        return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def lm_labels(input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """The next-token targets of each position (ids shifted left), -100 where the target is padding or past the end."""
    labels = input_ids[:, 1:].clone()
    labels[attention_mask[:, 1:] == 0] = -100
    return labels


def lm_batches(tokenizer, texts: list[str], batch_size: int, steps: int, seed: int, max_length: int | None = None):
    """`steps` batches of (input_ids, attention_mask), shuffled epoch after epoch by a seeded generator.

    Queries of similar length share a batch (sorted within pools of 50 batches, then the batches shuffled), so a
    batch is padded to about its own length rather than to the longest query: half the tokens, half the time.
    """
    generator = torch.Generator().manual_seed(seed)
    lengths = encode_queries(tokenizer, texts, max_length)[1].sum(dim=1).tolist()
    pool = 50 * batch_size
    queue: list[list[int]] = []
    for _ in range(steps):
        if not queue:
            order = torch.randperm(len(texts), generator=generator).tolist()
            for start in range(0, len(order), pool):
                part = sorted(order[start:start + pool], key=lengths.__getitem__)
                queue += [part[i:i + batch_size] for i in range(0, len(part), batch_size) if len(part[i:i + batch_size]) == batch_size]
            queue = [queue[i] for i in torch.randperm(len(queue), generator=generator).tolist()]
        rows = queue.pop()
        yield encode_queries(tokenizer, [texts[i] for i in rows], max_length)


def sequence_nll(model, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Summed next-token NLL of each sequence and its number of predicted tokens (padding not counted)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    labels = lm_labels(input_ids, attention_mask)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    return nll.sum(dim=1), (labels != -100).sum(dim=1)


def ce_loss(model, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean next-token cross-entropy per predicted token (padding not counted): the teacher's loss and the CE arms'."""
    nll, tokens = sequence_nll(model, input_ids, attention_mask)
    return nll.sum() / tokens.sum()


def warmup_cosine(optimizer, steps: int, warmup_steps: int):
    """The learning-rate schedule of every language model here: linear warm-up, then cosine decay to 0 at `steps`."""

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, steps - warmup_steps)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], batch_size: int = 256) -> float:
    """exp of the mean per-token NLL of the texts, teacher-forced, padding masked (every token weighs the same)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        input_ids, attention_mask = encode_queries(tokenizer, texts[start:start + batch_size])
        nll, tokens = sequence_nll(model, input_ids, attention_mask)
        total, count = total + nll.sum().item(), count + int(tokens.sum())
    model.train(was_training)
    return math.exp(total / count)


def lm_config(tokenizer, layers: int, width: int, heads: int, max_length: int, dropout: float = 0.0):
    """A GPT-2 configuration for this tokenizer (its vocabulary and special tokens), the teacher's or a student's."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=len(tokenizer), n_positions=max_length, n_embd=width, n_layer=layers, n_head=heads,
        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def train_language_model(model, tokenizer, texts: list[str], steps: int, batch_size: int, lr: float, seed: int,
                         warmup_steps: int = 50, progress: bool = True, desc: str = "training") -> list[dict]:
    """Next-token cross-entropy on the texts with AdamW, linear warm-up then cosine decay; returns the loss per step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    scheduler = warmup_cosine(optimizer, steps, warmup_steps)
    model.train()
    history = []
    bar = tqdm(lm_batches(tokenizer, texts, batch_size, steps, seed), total=steps, desc=desc, disable=not progress, leave=False)
    for step, (input_ids, attention_mask) in enumerate(bar):
        loss = ce_loss(model, input_ids, attention_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        history.append({"step": step + 1, "loss": loss.item()})
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return history


def new_gpt2(config):
    """A freshly initialised GPT-2 with its output layer tied to its embedding, built under kdlab.threads.model_building."""
    from transformers import GPT2LMHeadModel

    with model_building():
        return GPT2LMHeadModel(config)


def _build(path: Path, key: str, texts: dict[str, list[str]], settings: LMSettings, progress: bool, data: str) -> LMTeacher:
    """Build tokenizer and teacher, save both with save_pretrained in a temporary folder, then move it into place."""
    start = time.perf_counter()
    tokenizer = build_tokenizer(texts["train"], settings.vocab_size)
    tokenizer.model_max_length = settings.max_length
    torch.manual_seed(settings.seed)
    model = new_gpt2(lm_config(tokenizer, settings.layers, settings.width, settings.heads, settings.max_length,
                               settings.dropout))
    # kdlab's thread policy (OMP_NUM_THREADS, else 1): on a busy 2-core machine 2 threads cost 3.6 CPU-s per step
    # against 0.33 s for one (measured), because each thread waits for the other at every operation.
    with threads(policy_threads()[0]):
        history = train_language_model(model, tokenizer, texts["train"], settings.steps, settings.batch_size,
                                       settings.lr, settings.seed, settings.warmup_steps, progress, desc="LM teacher")
        train_seconds = time.perf_counter() - start
        # generation defaults that fit the model: no room beyond its positions; pad is pad
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        meta = {
            "key": key, "format": LM_CACHE_FORMAT, "data": data, "settings": asdict(settings),
            "params": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer),
            "steps": settings.steps, "train_seconds": train_seconds, "torch_threads": torch.get_num_threads(),
            "final_train_loss": sum(h["loss"] for h in history[-20:]) / len(history[-20:]),
            "test_perplexity": perplexity(model, tokenizer, texts["test"]),
            "dev_perplexity": perplexity(model, tokenizer, texts["dev"]),
        }
    partial = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-", suffix=".partial"))
    try:
        model.save_pretrained(partial / "model")
        tokenizer.save_pretrained(partial / "tokenizer")
        (partial / "meta.json").write_text(json.dumps(meta, indent=2))
        os.chmod(partial, 0o755)  # mkdtemp makes it private; a shared cache folder should stay readable
        if path.exists():  # a stale or damaged folder (or one another run just finished): replace it
            shutil.rmtree(path, ignore_errors=True)
        try:
            os.replace(partial, path)
        except OSError:  # another run moved its (identical) folder into place first
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return _read(path, key, texts)


def _read(path: Path, key: str, texts: dict[str, list[str]]) -> LMTeacher:
    """Load a cached teacher folder, refusing one built for another key."""
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    meta = json.loads((path / "meta.json").read_text())
    if meta.get("key") != key or meta.get("format") != LM_CACHE_FORMAT:
        raise ValueError(f"meta.json says key {meta.get('key')} format {meta.get('format')}, expected {key} format {LM_CACHE_FORMAT}")
    with model_building():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(path / "tokenizer")
        model = GPT2LMHeadModel.from_pretrained(path / "model")
    model.eval()
    model.requires_grad_(False)  # a fixed target: nothing may train it by accident
    return LMTeacher(model, tokenizer, texts, path, meta)


__all__ = ["LMSettings", "LMTeacher", "encode_queries", "lm_batches", "lm_labels", "load_lm_teacher", "perplexity"]
