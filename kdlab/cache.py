"""The teacher cache: teacher logits computed once, stored by example id, reloaded in a second."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from datasets import DatasetDict
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file
from torch import Tensor

from .data import DEFAULT_DATA_DIR, REPO_ROOT, SPLITS, columns, label_names, load_splits, splits_fingerprint
from .teacher import Teacher, embed, fine_tune, load_encoder, resolve_teacher, teacher_fingerprint, train_head
from .tokens import MAX_LENGTH, Tokens, tokenize, vocab_fingerprint

CACHE_FORMAT = 2  # bump when the stored layout changes, so old files are rebuilt rather than misread
# 2: per-tensor sha256 in the metadata (CHECKSUMS), verified on every load; key hashes tokenizer+config and data content
CHECKSUMS = "kdlab.sha256"


@dataclass(frozen=True)
class TeacherSettings:
    """How the teacher is trained; part of the cache key, since other settings give other logits."""

    head_epochs: int = 60
    head_lr: float = 3e-3
    finetune_epochs: int = 0
    max_length: int = MAX_LENGTH
    seed: int = 0


@dataclass
class TeacherCache:
    """Everything later lessons need from the teacher, per split, aligned by example id."""

    key: str
    path: Path
    logits: dict[str, Tensor]
    features: dict[str, Tensor]
    ids: dict[str, Tensor]
    labels: dict[str, Tensor]
    tokens: dict[str, Tokens]
    label_names: list[str]
    meta: dict = field(default_factory=dict)
    head: dict = field(default_factory=dict)  # "weight", "bias" of the teacher's head, checked with the rest
    _positions: dict = field(default_factory=dict, init=False, repr=False)  # split → (ids tensor, id-to-row index)

    def logits_for(self, split: str, example_ids: Tensor) -> Tensor:
        """Teacher logits for the given example ids, whatever order or subset they come in."""
        return self.logits[split][self._rows(split, example_ids)]

    def features_for(self, split: str, example_ids: Tensor) -> Tensor:
        """The teacher's mean-pooled sentence vectors for these ids: targets of a hidden-state loss."""
        return self.features[split][self._rows(split, example_ids)]

    def _rows(self, split: str, example_ids: Tensor) -> Tensor:
        """Row of each example id in this split's tensors; refuses ids the cache has never seen."""
        position = self._position(split)
        example_ids = torch.as_tensor(example_ids, dtype=torch.long)
        if len(example_ids) and (example_ids.min() < 0 or example_ids.max() >= len(position)):
            raise ValueError(f"example ids not in the teacher cache for split '{split}'; rebuild the cache")
        rows = position[example_ids]
        if (rows < 0).any():
            raise ValueError(f"example ids not in the teacher cache for split '{split}'; rebuild the cache")
        return rows

    def _position(self, split: str) -> Tensor:
        """Row of each example id (−1 where absent); built on first use, since training asks every batch."""
        ids = self.ids[split]
        built_for, position = self._positions.get(split, (None, None))
        if built_for is not ids:  # first use, or the ids tensor was replaced
            position = torch.full((int(ids.max()) + 1,), -1, dtype=torch.long)
            position[ids] = torch.arange(len(ids))
            self._positions[split] = (ids, position)
        return position

    def accuracy(self, split: str) -> float:
        """Teacher accuracy on a split, straight from the cached logits."""
        return (self.logits[split].argmax(dim=1) == self.labels[split]).float().mean().item()


class CacheDamaged(ValueError):
    """A cache file that cannot be read or whose tensors no longer match their stored sha256: rebuild it."""


def cache_root() -> Path:
    """Where caches live: $KDLAB_CACHE if set, else .cache/kdlab inside the repository (git-ignored).

    An empty KDLAB_CACHE is an error, not "the current directory": caches would land wherever you happen to be.
    """
    value = os.environ.get("KDLAB_CACHE")
    if value is None:
        return REPO_ROOT / ".cache" / "kdlab"
    if not value.strip():
        raise ValueError(
            f"KDLAB_CACHE is set but empty; set it to a folder for the teacher cache (created if missing), or "
            f"unset it (`unset KDLAB_CACHE`) to use the default {REPO_ROOT / '.cache' / 'kdlab'}"
        )
    return Path(value).expanduser()


def check_cache_root(root: str | Path | None = None) -> Path:
    """The cache folder, created if missing and proven writable; a ValueError naming KDLAB_CACHE otherwise.

    Call it before any work (the CLI does, before training): a bad KDLAB_CACHE should stop a run in its first
    second, not after minutes of teacher passes. `root` (an explicit folder) is checked the same way.
    """
    if root is not None:
        path, name = Path(root).expanduser(), f"cache folder {root}"
        fix = "pass a folder you can write to"
    else:
        path = cache_root()
        from_env = os.environ.get("KDLAB_CACHE") is not None
        name = f"KDLAB_CACHE={os.environ['KDLAB_CACHE']}" if from_env else f"the default cache folder {path}"
        fix = ("set KDLAB_CACHE to a folder you can write to (e.g. ~/.cache/kdlab; it is created if missing), "
               "or unset it") if from_env else "set KDLAB_CACHE to a folder you can write to (e.g. ~/.cache/kdlab)"
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} is a file, not a folder: {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{name} cannot be created ({error.strerror or error}): {fix}") from None
    try:
        handle, probe = tempfile.mkstemp(dir=path, prefix=".kdlab-write-check-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"{name} is not writable ({error.strerror or error}): {fix}") from None
    return path


def cache_key(teacher_fingerprint: str, data_fp: str, settings: TeacherSettings) -> str:
    """Hash of teacher, data and settings: change any one and you get a different cache."""
    payload = json.dumps(
        {"format": CACHE_FORMAT, "teacher": teacher_fingerprint, "data": data_fp, "settings": asdict(settings)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def teacher_cache_key(teacher: str | Path | None, splits: DatasetDict, settings: TeacherSettings,
                      encoder=None, tokenizer=None) -> str:
    """The cache key of this teacher (weights, tokenizer, config) on these splits' content with these settings."""
    return cache_key(teacher_fingerprint(teacher, encoder, tokenizer), splits_fingerprint(splits), settings)


def load_teacher_cache(
    data: str | Path = DEFAULT_DATA_DIR,
    teacher: str | Path | None = None,
    settings: TeacherSettings = TeacherSettings(),
    root: str | Path | None = None,
    splits: DatasetDict | None = None,
    progress: bool = True,
    rebuild: bool = False,
) -> TeacherCache:
    """Load the teacher cache for this teacher+data+settings, building (or rebuilding) it when needed.

    `splits`, when given, is the data: the key hashes its content (`data` only names it in the metadata).
    """
    root = check_cache_root(root)
    splits = splits if splits is not None else load_splits(data)
    key = teacher_cache_key(teacher, splits, settings)  # the teacher's files are hashed here, once
    path = root / f"teacher-{key}.safetensors"
    if path.exists() and not rebuild:
        try:
            return _read(path, key, splits)
        except CacheDamaged as problem:
            print(f"Teacher cache {path.name} is damaged ({problem}); rebuilding it.")
        except ValueError as problem:
            print(f"Teacher cache {path.name} is stale or misaligned ({problem}); rebuilding it.")
    elif not path.exists():
        others = sorted(root.glob("teacher-*.safetensors"))
        note = f" ({len(others)} cache(s) for another teacher, other data or other settings left untouched)" if others else ""
        print(f"No teacher cache for this teacher, data and settings yet{note}; building it (about 1-2 min on a laptop CPU).")
    return build_teacher_cache(data, teacher, settings, root, splits, progress, key=key)


def build_teacher_cache(
    data: str | Path = DEFAULT_DATA_DIR,
    teacher: str | Path | None = None,
    settings: TeacherSettings = TeacherSettings(),
    root: str | Path | None = None,
    splits: DatasetDict | None = None,
    progress: bool = True,
    *,
    key: str | None = None,
) -> TeacherCache:
    """Train the teacher head (optionally fine-tune) and store logits, features and token ids for every split.

    `key` is the cache key when the caller has it already (load_teacher_cache), so the teacher is hashed once.
    Written under a unique temporary name and moved into place atomically: runs building the same cache at
    once never collide, and a crash never leaves a half file under the real name.
    """
    root = check_cache_root(root)
    splits = splits if splits is not None else load_splits(data)
    timings = {}
    start = time.perf_counter()
    encoder, tokenizer = load_encoder(teacher)
    names = label_names(splits)
    torch.manual_seed(settings.seed)
    model = Teacher(encoder, len(names))
    if key is None:
        key = teacher_cache_key(teacher, splits, settings, encoder, tokenizer)
    table = {s: columns(splits[s]) for s in SPLITS}
    tokens = {s: tokenize(tokenizer, table[s]["text"], settings.max_length) for s in SPLITS}
    labels = {s: torch.tensor(table[s]["label"], dtype=torch.long) for s in SPLITS}
    timings["load_and_tokenize"] = time.perf_counter() - start
    if settings.finetune_epochs > 0:
        start = time.perf_counter()
        fine_tune(model, tokens["train"], labels["train"], epochs=settings.finetune_epochs, seed=settings.seed, progress=progress)
        timings["fine_tune"] = time.perf_counter() - start
    start = time.perf_counter()
    features = {s: embed(model, tokens[s], progress=progress, desc=f"teacher on {s}") for s in SPLITS}
    timings["embed"] = time.perf_counter() - start
    start = time.perf_counter()
    if settings.finetune_epochs == 0:
        train_head(model, features["train"], labels["train"], epochs=settings.head_epochs, lr=settings.head_lr, seed=settings.seed)
    with torch.no_grad():
        logits = {s: model.head(features[s]) for s in SPLITS}
    timings["head"] = time.perf_counter() - start
    for split, values in logits.items():
        if not torch.isfinite(values).all():
            raise ValueError(f"teacher produced NaN/inf logits on {split}; check the teacher weights and settings")
    ids = {s: torch.tensor(table[s]["id"], dtype=torch.long) for s in SPLITS}
    meta = {
        "key": key,
        "format": CACHE_FORMAT,
        "teacher": str(resolve_teacher(teacher)),
        "data": str(data),
        "settings": asdict(settings),
        "label_names": names,
        "vocab": vocab_fingerprint(tokenizer),
        "timings_s": timings,
        "accuracy": {s: (logits[s].argmax(1) == labels[s]).float().mean().item() for s in SPLITS},
        "teacher_params": sum(p.numel() for p in model.parameters()),
    }
    tensors = {}
    for s in SPLITS:
        tensors.update({
            f"{s}.logits": logits[s].contiguous(), f"{s}.features": features[s].contiguous(),
            f"{s}.ids": ids[s], f"{s}.labels": labels[s],
            f"{s}.input_ids": tokens[s].input_ids.to(torch.int32), f"{s}.attention_mask": tokens[s].attention_mask.to(torch.int8),
        })
    tensors["head.weight"] = model.head.weight.detach().contiguous()
    tensors["head.bias"] = model.head.bias.detach().contiguous()
    path = root / f"teacher-{key}.safetensors"
    _write(tensors, meta, path)
    return _read(path, key, splits)


def tensor_sha256(tensor: Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes: any changed value, id or shape changes it."""
    tensor = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
    return digest.hexdigest()


def _checksums(tensors: dict[str, Tensor]) -> str:
    """The metadata entry that lets a later load prove each tensor unchanged."""
    return json.dumps({name: tensor_sha256(tensor) for name, tensor in sorted(tensors.items())})


@contextmanager
def atomic_file(path: Path, suffix: str = ".partial"):
    """A unique temporary file next to `path` to write into, moved over `path` atomically when the block succeeds.

    Every file kdlab keeps in its cache is written this way, so a crash leaves no half-written file and two runs
    writing the same file at once both succeed (os.replace is atomic). `suffix` is the temporary name's ending,
    for writers that insist on one (ExecuTorch's .pte).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        yield partial
        os.chmod(partial, 0o644)  # mkstemp makes it private; a shared cache folder should stay readable
        try:
            os.replace(partial, path)
        except PermissionError:  # Windows: another run has the finished file open; its content is the same
            if not path.exists():
                raise
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _write(tensors: dict[str, Tensor], meta: dict, path: Path) -> None:
    """Save with per-tensor checksums under a unique temporary name, then move it into place atomically."""
    with atomic_file(path) as partial:
        save_file(tensors, partial, metadata={"kdlab": json.dumps(meta), CHECKSUMS: _checksums(tensors)})


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160] if text else ''}"


def _read(path: Path, key: str, splits: DatasetDict) -> TeacherCache:
    """Read a cache file and check it is intact and matches the dataset row by row.

    CacheDamaged when the file is unreadable or a tensor's checksum differs; ValueError when it is intact but
    stale (another key or format) or misaligned with the data.
    """
    try:
        # One read into memory, not a memory map: a file rewritten in place later cannot crash this process
        # (SIGBUS), and the checksums are taken over exactly the bytes that are used.
        raw = path.read_bytes()
        header_length = int.from_bytes(raw[:8], "little")
        metadata = json.loads(raw[8:8 + header_length]).get("__metadata__") or {}
        meta = json.loads(metadata["kdlab"])
    except Exception as error:  # noqa: BLE001 - a truncated or overwritten file raises many types
        raise CacheDamaged(f"unreadable: {_one_line(error)}") from None
    if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"it was written for key {meta.get('key')} (format {meta.get('format')}), expected {key} (format {CACHE_FORMAT})")
    try:
        expected = json.loads(metadata[CHECKSUMS])
        stored = load_bytes(raw)
    except Exception as error:  # noqa: BLE001 - SafetensorError for a truncated file, KeyError, ...
        raise CacheDamaged(f"unreadable: {_one_line(error)}") from None
    del raw
    if set(stored) != set(expected):
        raise CacheDamaged(f"its tensors {sorted(set(stored) ^ set(expected))[:3]} are missing or unexpected")
    for name in sorted(stored):
        if tensor_sha256(stored[name]) != expected[name]:
            raise CacheDamaged(f"the checksum of {name} does not match: the file changed after it was written")
    names = label_names(splits)
    if meta["label_names"] != names:
        raise ValueError("its class names differ from the data's")
    out = {name: {} for name in ("logits", "features", "ids", "labels", "tokens")}
    for s in SPLITS:
        table = columns(splits[s])
        ids = torch.tensor(table["id"], dtype=torch.long)
        labels = torch.tensor(table["label"], dtype=torch.long)
        if not torch.equal(stored[f"{s}.ids"], ids) or not torch.equal(stored[f"{s}.labels"], labels):
            raise ValueError(f"its {s} ids or labels do not line up with the data")
        if stored[f"{s}.logits"].shape != (len(ids), len(names)):
            raise ValueError(f"its {s} logits have shape {tuple(stored[f'{s}.logits'].shape)}")
        if not torch.isfinite(stored[f"{s}.logits"]).all():
            raise ValueError(f"its {s} logits contain NaN or inf")
        out["logits"][s] = stored[f"{s}.logits"]
        out["features"][s] = stored[f"{s}.features"]
        out["ids"][s] = ids
        out["labels"][s] = labels
        out["tokens"][s] = Tokens(stored[f"{s}.input_ids"].long(), stored[f"{s}.attention_mask"].long())
    head = {"weight": stored["head.weight"], "bias": stored["head.bias"]}
    return TeacherCache(key=key, path=path, label_names=names, meta=meta, head=head, **out)


def teacher_from_cache(cache: TeacherCache, teacher: str | Path | None = None) -> Teacher:
    """Rebuild the full teacher (encoder + cached head) to score new texts or measure its speed."""
    encoder, _ = load_encoder(teacher)
    model = Teacher(encoder, len(cache.label_names))
    model.head = teacher_head(cache)
    return model.eval()


def teacher_head(cache: TeacherCache) -> torch.nn.Linear:
    """The teacher's trained classification head (features → class logits), read from the cache file."""
    if cache.head:  # read and checksummed with the rest of the file
        weight, bias = cache.head["weight"], cache.head["bias"]
    else:
        from safetensors import safe_open

        with safe_open(str(cache.path), framework="pt") as handle:  # reads these two tensors, not the whole file
            weight, bias = handle.get_tensor("head.weight"), handle.get_tensor("head.bias")
    if weight.shape[0] != len(cache.label_names):
        raise ValueError(f"the cached head has {weight.shape[0]} classes, the cache {len(cache.label_names)}; rebuild the cache")
    # Built on the meta device and then given memory: no random init, so torch's random stream is left untouched.
    head = torch.nn.Linear(weight.shape[1], weight.shape[0], device="meta").to_empty(device="cpu")
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return head
