"""Several teachers from one encoder, and a transfer set they label: the teacher panel (notebook 12).

One pass of the frozen encoder gives a mean-pooled sentence vector at every layer. Heads on those vectors make
a panel of teachers without another minute of fine-tuning:

- `default`: the cached teacher (a linear head on the last layer, notebook 01);
- `weak`: a linear head on the middle layer (3 of MiniLM's 6) — the teacher cut to half its depth, for
  "choosing the teacher";
- `ensemble`: seven heads — linear ones on the last three layers and four two-layer heads (MLPs, different
  seeds) on the last one — and a nearest-neighbour vote over the training queries, which errs differently from
  any head. Their class probabilities are averaged, the heads together weighing 3/4 and the vote 1/4 (the best
  on dev among 0.1–0.5 in a one-off comparison when the panel was designed). Hinton et al. distilled an ensemble.

The same pass scores an augmented transfer set (`kdlab.augment`: every training query garbled `copies` times),
so each teacher has soft targets on queries nobody labelled. Everything is written once to one safetensors file
keyed by the teacher cache's key and the panel settings; `load_teacher_panel` reads it in about a second.
`TeacherPanel.transfer(...)` hands any teacher, with or without the augmented rows, to `train_student` as an
ordinary `TeacherCache`, so the one training loop serves them all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from .augment import augment_tokens, concat_tokens
from .cache import CHECKSUMS, CacheDamaged, TeacherCache, _checksums, atomic_file, check_cache_root, teacher_head, tensor_sha256
from .checks import check_count, check_probability
from .teacher import fit_head, load_encoder, mean_pool
from .threads import policy_threads, threads
from .tokens import Tokens

PANEL_FORMAT = 1
TEACHERS = ("weak", "default", "ensemble")
SPLITS_SCORED = ("train", "dev", "test", "augmented")


@dataclass(frozen=True)
class PanelSettings:
    """What the panel is built from; part of its file's key."""

    copies: int = 2  # augmented queries per training query
    probability: float = 0.15  # share of word pieces each augmented copy masks, drops or swaps
    weak_layer: int | None = None  # the layer the weak teacher reads; None = half the encoder's depth (3 of 6)
    mlp_members: int = 4  # two-layer heads on the last layer, one seed each
    neighbours: int = 10  # training queries in the nearest-neighbour vote
    vote_weight: float = 0.25  # the vote's share of the ensemble's probabilities (the heads share the rest)
    seed: int = 0

    def check(self) -> "PanelSettings":
        """Refuse settings that cannot make a panel, before the encoder runs."""
        check_count(self.copies, "copies", hint="augmented queries per training query, e.g. 2")
        if check_probability(self.probability, "probability") == 0:
            raise ValueError("probability must be > 0: with 0 every augmented query would equal its source")
        if self.weak_layer is not None:
            check_count(self.weak_layer, "weak_layer", hint="an encoder layer, 1 = the first")
        check_count(self.mlp_members, "mlp_members", minimum=0)
        check_count(self.neighbours, "neighbours")
        check_probability(self.vote_weight, "vote_weight")
        check_count(self.seed, "seed", minimum=0)
        return self


@dataclass
class TeacherPanel:
    """Logits of each teacher on every split and on the augmented queries, plus those queries themselves."""

    cache: TeacherCache
    logits: dict[str, dict[str, Tensor]]  # teacher → split (train, dev, test, augmented) → logits
    augmented: Tokens  # the augmented queries
    source: Tensor  # for each augmented query, the train row it was made from
    augmented_features: Tensor  # the last layer's pooled vector of each augmented query (feature distillation)
    path: Path
    meta: dict

    def accuracy(self, teacher: str, split: str = "test") -> float:
        """A teacher's accuracy on a labelled split."""
        return (self.logits[_known(teacher)][split].argmax(1) == self.cache.labels[split]).float().mean().item()

    def transfer(self, teacher: str = "default", augmented: bool = False) -> tuple[TeacherCache, Tensor]:
        """A TeacherCache whose soft targets are `teacher`'s, and the `labelled` flags for train_student.

        With `augmented=True` its train split is the real rows followed by the augmented ones; those carry no
        label (`labelled` is False), so only the KD term learns from them — the teacher's view of a new query.
        """
        logits = self.logits[_known(teacher)]
        cache = self.cache
        if not augmented:
            derived = dataclasses.replace(cache, logits={s: logits[s] for s in ("train", "dev", "test")})
            return derived, torch.ones(len(cache.ids["train"]), dtype=torch.bool)
        real = len(cache.ids["train"])
        new_ids = int(cache.ids["train"].max()) + 1 + torch.arange(len(self.source))
        train = {
            "ids": torch.cat([cache.ids["train"], new_ids]),
            "labels": torch.cat([cache.labels["train"], cache.labels["train"][self.source]]),  # the source's, unused
            "logits": torch.cat([logits["train"], logits["augmented"]]),
            "features": torch.cat([cache.features["train"], self.augmented_features]),
            "tokens": concat_tokens(cache.tokens["train"], self.augmented),
        }
        fields = {name: {**getattr(cache, name), "train": train[name]} for name in train}
        fields["logits"] = {**fields["logits"], "dev": logits["dev"], "test": logits["test"]}
        derived = dataclasses.replace(cache, **fields)
        labelled = torch.cat([torch.ones(real, dtype=torch.bool), torch.zeros(len(self.source), dtype=torch.bool)])
        return derived, labelled


def student_as_teacher(cache: TeacherCache, student: nn.Module) -> TeacherCache:
    """The cache with a trained student's logits as the soft targets: born-again self-distillation (notebook 12)."""
    from .training import predict_logits

    logits = {split: predict_logits(student, cache.tokens[split]) for split in cache.logits}
    return dataclasses.replace(cache, logits=logits)


def panel_key(cache: TeacherCache, settings: PanelSettings) -> str:
    """The panel file's key: the teacher cache it extends (teacher, data, head settings) and its own settings."""
    text = json.dumps({"cache": cache.key, "settings": asdict(settings), "format": PANEL_FORMAT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load_teacher_panel(cache: TeacherCache, settings: PanelSettings = PanelSettings(), teacher: str | Path | None = None,
                       root: str | Path | None = None, progress: bool = True) -> TeacherPanel:
    """Read the panel for this teacher cache, or build it (about 5 min on one thread: one encoder pass, 7 heads)."""
    settings = settings.check()
    root = check_cache_root(root)
    key = panel_key(cache, settings)
    path = root / f"panel-{key}.safetensors"
    if path.exists():
        try:
            return _read(path, cache, key)
        except (ValueError, KeyError, OSError) as error:
            print(f"rebuilding the teacher panel: {path.name} is unusable ({error})")
    # kdlab's thread policy (OMP_NUM_THREADS, else 1), as for the language-model teacher: on a busy 2-core machine
    # two threads that wait for each other at every operation made this build several times slower.
    with threads(policy_threads()[0]):
        return _build(path, cache, key, settings, teacher, progress)


def layer_features(encoder: nn.Module, tokens: Tokens, layers: list[int], batch_size: int = 128,
                   progress: bool = True, desc: str = "layers") -> dict[int, Tensor]:
    """Mean-pooled vectors of the chosen encoder layers (0 = embeddings) for every row, in one pass."""
    encoder.eval()
    order = torch.argsort(tokens.attention_mask.sum(dim=1))  # similar lengths together: less padding
    width = encoder.config.hidden_size
    out = {layer: torch.empty(len(tokens), width) for layer in layers}
    with torch.inference_mode():
        for start in tqdm(range(0, len(tokens), batch_size), desc=desc, disable=not progress, leave=False):
            rows = order[start:start + batch_size]
            batch = tokens.select(rows)
            states = encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                             output_hidden_states=True).hidden_states
            for layer in layers:
                out[layer][rows] = mean_pool(states[layer], batch.attention_mask).float()
    return out


def train_probe(features: Tensor, labels: Tensor, num_labels: int, hidden: int = 0, seed: int = 0,
                epochs: int = 60, lr: float = 3e-3) -> nn.Module:
    """A head on frozen features: linear (hidden=0, like the cached teacher's) or one hidden GELU layer."""
    torch.manual_seed(seed)
    width = features.shape[1]
    head = nn.Linear(width, num_labels) if hidden == 0 else nn.Sequential(
        nn.Dropout(0.1), nn.Linear(width, hidden), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden, num_labels))
    head.train()  # the MLP's dropout on while it fits
    fit_head(head, features, labels, epochs=epochs, lr=lr, seed=seed)
    return head.eval()


def average_probabilities(member_logits: list[Tensor], weights: list[float] | None = None) -> Tensor:
    """The ensemble's logits: the log of the members' (weighted) mean class probabilities, not the mean of their logits (notebook 12)."""
    if not member_logits:
        raise ValueError("an ensemble needs at least one member")
    weights = torch.full((len(member_logits),), 1.0 / len(member_logits)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if weights.shape != (len(member_logits),) or (weights < 0).any() or abs(float(weights.sum()) - 1.0) > 1e-6:
        raise ValueError(f"weights must be {len(member_logits)} non-negative numbers summing to 1, got {weights.tolist()}")
    probabilities = torch.stack([m.float().softmax(dim=1) for m in member_logits])
    return (weights[:, None, None] * probabilities).sum(dim=0).clamp_min(1e-12).log()


def neighbour_vote(train_vectors: Tensor, train_labels: Tensor, queries: Tensor, num_labels: int, k: int = 10,
                   sharpness: float = 20.0, leave_self_out: bool = False) -> Tensor:
    """Class log-probabilities from the k most cosine-similar training queries, closer ones weighing more (notebook 12).

    Each neighbour's weight is softmax(sharpness · cosine) over the k; `leave_self_out` drops each query's own row
    (scoring the training queries themselves, whose nearest neighbour would otherwise be their own label).
    A floor of 1e-4 keeps every class possible, so the log is finite.
    """
    k = check_count(k, "k", hint="neighbours per query, e.g. 10")
    if k + int(leave_self_out) > len(train_vectors):
        raise ValueError(f"k={k} neighbours but only {len(train_vectors)} training vectors")
    keys = nn.functional.normalize(train_vectors.float(), dim=1)
    out = torch.empty(len(queries), num_labels)
    for start in range(0, len(queries), 2048):  # 2,048 × 9,003 similarities at a time: about 74 MB
        chunk = nn.functional.normalize(queries[start:start + 2048].float(), dim=1)
        similarity = chunk @ keys.T
        if leave_self_out:
            rows = torch.arange(start, start + len(chunk))
            similarity[torch.arange(len(chunk)), rows] = -2.0  # below any cosine
        top, index = similarity.topk(k, dim=1)
        weights = (sharpness * top).softmax(dim=1)
        probabilities = torch.zeros(len(chunk), num_labels).scatter_add_(1, train_labels[index], weights)
        out[start:start + len(chunk)] = probabilities.clamp_min(1e-4).log()
    return out


def _build(path: Path, cache: TeacherCache, key: str, settings: PanelSettings, teacher, progress: bool) -> TeacherPanel:
    """One encoder pass over every split and the augmented queries; the heads; one file."""
    timings, start = {}, time.perf_counter()
    encoder, tokenizer = load_encoder(teacher)
    last = encoder.config.num_hidden_layers
    if last < 2:
        raise ValueError(f"the teacher panel needs an encoder of at least 2 layers (a weak teacher below the last); this one has {last}")
    if settings.weak_layer is None:
        settings = dataclasses.replace(settings, weak_layer=max(1, last // 2))
    if not 1 <= settings.weak_layer < last:
        raise ValueError(f"weak_layer must be between 1 and {last - 1} for this {last}-layer teacher, got {settings.weak_layer}")
    if tokenizer.mask_token_id is None:
        raise ValueError("the teacher's tokenizer has no mask token, which the 'mask' augmentation needs")
    ensemble_layers = sorted({max(1, last - 2), max(1, last - 1), last})
    layers = sorted({settings.weak_layer, *ensemble_layers})
    augmented, source, edits = augment_tokens(cache.tokens["train"], settings.copies, tokenizer.mask_token_id,
                                              seed=settings.seed, probability=settings.probability,
                                              pad_id=tokenizer.pad_token_id or 0)
    tokens = {**cache.tokens, "augmented": augmented}
    features = {s: layer_features(encoder, tokens[s], layers, progress=progress, desc=f"teacher layers on {s}")
                for s in SPLITS_SCORED}
    timings["encoder"] = time.perf_counter() - start
    if not torch.allclose(features["test"][last], cache.features["test"], atol=1e-4):
        raise ValueError("the encoder's last layer does not reproduce the cached features: is this the cache's teacher?")
    start = time.perf_counter()
    labels, classes = cache.labels["train"], len(cache.label_names)
    heads = {"weak": (settings.weak_layer, train_probe(features["train"][settings.weak_layer], labels, classes, seed=settings.seed)),
             "default": (last, teacher_head(cache))}
    members = [(layer, train_probe(features["train"][layer], labels, classes, seed=settings.seed)) for layer in ensemble_layers if layer != last]
    members.append(heads["default"])
    members += [(last, train_probe(features["train"][last], labels, classes, hidden=512, seed=settings.seed + i, epochs=40))
                for i in range(settings.mlp_members)]
    timings["heads"] = time.perf_counter() - start
    tensors = {}
    with torch.no_grad():
        for split in SPLITS_SCORED:
            for name, (layer, head) in heads.items():
                tensors[f"{name}.{split}"] = head(features[split][layer]).contiguous()
            from_heads = average_probabilities([h(features[split][layer]) for layer, h in members])
            vote = neighbour_vote(features["train"][last], labels, features[split][last], classes, k=settings.neighbours,
                                  leave_self_out=split == "train")
            tensors[f"ensemble.{split}"] = average_probabilities(
                [from_heads, vote], [1 - settings.vote_weight, settings.vote_weight]).contiguous()
    tensors.update({"augmented.input_ids": augmented.input_ids.to(torch.int32), "augmented.attention_mask": augmented.attention_mask.to(torch.int8),
                    "augmented.source": source, "augmented.features": features["augmented"][last].contiguous()})
    meta = {"key": key, "format": PANEL_FORMAT, "cache": cache.key, "settings": asdict(settings), "timings_s": timings,
            "torch_threads": torch.get_num_threads(),
            "members": [f"layer {layer} {'linear' if isinstance(h, nn.Linear) else 'MLP'}" for layer, h in members]
            + [f"layer {last} {settings.neighbours}-nearest-neighbour vote (weight {settings.vote_weight:g})"],
            "edits": {how: edits.count(how) for how in sorted(set(edits))}}
    with atomic_file(path) as partial:
        save_file(tensors, partial, metadata={"kdlab": json.dumps(meta), CHECKSUMS: _checksums(tensors)})
    return _read(path, cache, key)


def _read(path: Path, cache: TeacherCache, key: str) -> TeacherPanel:
    """Load a panel file, refusing a damaged one or one written for another teacher cache or settings."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        meta, expected = json.loads(metadata["kdlab"]), json.loads(metadata[CHECKSUMS])
        stored = load_file(str(path))
    except Exception as error:  # noqa: BLE001 - a truncated or overwritten file raises many types
        raise CacheDamaged(f"unreadable ({type(error).__name__})") from None
    if meta.get("key") != key or meta.get("format") != PANEL_FORMAT:
        raise ValueError(f"it was written for key {meta.get('key')}, expected {key}")
    if set(stored) != set(expected) or any(tensor_sha256(stored[name]) != expected[name] for name in stored):
        raise CacheDamaged("a tensor's checksum does not match: the file changed after it was written")
    logits = {name: {split: stored[f"{name}.{split}"] for split in SPLITS_SCORED} for name in TEACHERS}
    for split in ("train", "dev", "test"):
        if any(len(logits[name][split]) != len(cache.ids[split]) for name in TEACHERS):
            raise ValueError(f"its {split} logits do not line up with the teacher cache")
    augmented = Tokens(stored["augmented.input_ids"].long(), stored["augmented.attention_mask"].long())
    return TeacherPanel(cache, logits, augmented, stored["augmented.source"], stored["augmented.features"], path, meta)


def _known(teacher: str) -> str:
    if teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}; choose one of {', '.join(TEACHERS)}")
    return teacher


__all__ = ["PanelSettings", "TEACHERS", "TeacherPanel", "average_probabilities", "layer_features", "load_teacher_panel",
           "neighbour_vote", "panel_key", "student_as_teacher", "train_probe"]
