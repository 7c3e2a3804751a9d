"""Loading the running example (Banking77) or any folder of train/dev/test files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "banking77"
SPLITS = ("train", "dev", "test")
# sha256 of the vendored files (see data/banking77/README.md): a changed file is caught, not used.
BANKING77_SHA256 = {
    "train.tsv": "ed07418e59a34b76baad3dc697f3ede12139cd8f56e7a746fb38ab78d2b4d196",
    "dev.tsv": "b808b9f0b01574ca30d233fa690f43b8c44899a0ce1a737be66b06e1132802a7",
    "test.tsv": "684f0b9df082f50ae78243fd56b99d5c8f7debbbfb7086d6df9c5d08ced7d574",
}


def file_sha256(path: str | Path) -> str:
    """Hash a file so caches and data checks can tell when its bytes changed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split_files(folder: str | Path) -> dict[str, Path]:
    """Find the train/dev/test file (.tsv or .csv) of a data folder, or say which is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"data folder {folder} does not exist; pass a folder holding train, dev and test "
            f".tsv or .csv files with columns 'text' and 'label' (default: {DEFAULT_DATA_DIR})"
        )
    found = {}
    for split in SPLITS:
        candidates = [folder / f"{split}.tsv", folder / f"{split}.csv"]
        existing = [path for path in candidates if path.is_file()]
        if not existing:
            raise FileNotFoundError(
                f"data folder {folder} has no '{split}' split: add {split}.tsv or {split}.csv "
                "with columns 'text' and 'label'"
            )
        found[split] = existing[0]
    return found


def data_fingerprint(folder: str | Path) -> str:
    """One hash over the split files, so a teacher cache knows which data it was built from."""
    files = split_files(folder)
    return hashlib.sha256("".join(file_sha256(files[s]) for s in SPLITS).encode()).hexdigest()


def _read_split(path: Path) -> pd.DataFrame:
    """Read one split file and check it has usable text and label columns."""
    frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype={"label": str})
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"{path} lacks column(s) {sorted(missing)}; found {list(frame.columns)}. "
            "Each split needs a 'text' column and a 'label' column (the class name)."
        )
    if len(frame) == 0:
        raise ValueError(f"{path} has no rows; every split needs at least one labelled example")
    bad = frame["text"].isna() | frame["label"].isna()
    if bad.any():
        rows = (np.flatnonzero(bad.to_numpy())[:5] + 2).tolist()  # +2: header line, 1-based
        raise ValueError(f"{path} has empty text or label on line(s) {rows}; fill or remove them")
    return frame[["text", "label"]].astype(str)


def load_splits(source: str | Path = DEFAULT_DATA_DIR) -> DatasetDict:
    """Load train/dev/test with class names and a stable per-split `id` used to align teacher logits."""
    if isinstance(source, str) and not Path(source).exists() and "/" in source and not source.startswith((".", "/")):
        return _load_hub_dataset(source)
    folder = Path(source)
    files = split_files(folder)
    if folder.resolve() == DEFAULT_DATA_DIR.resolve():
        for name, expected in BANKING77_SHA256.items():
            if file_sha256(folder / name) != expected:
                raise ValueError(
                    f"{folder / name} does not match the vendored Banking77 sha256 {expected[:12]}…; "
                    "restore it with `git checkout data/banking77`"
                )
    frames = {split: _read_split(files[split]) for split in SPLITS}
    names = sorted(frames["train"]["label"].unique())
    for split in ("dev", "test"):
        unseen = sorted(set(frames[split]["label"]) - set(names))
        if unseen:
            raise ValueError(
                f"{split} has label(s) never seen in train: {unseen[:5]}; a classifier cannot "
                "learn them — add train examples for them or drop those rows"
            )
    features = Features({"id": Value("int64"), "text": Value("string"), "label": ClassLabel(names=names)})
    return DatasetDict({
        split: Dataset.from_dict(
            {"id": list(range(len(frame))), "text": frame["text"].tolist(),
             "label": frame["label"].map({n: i for i, n in enumerate(names)}).tolist()},
            features=features,
        )
        for split, frame in frames.items()
    })


def _load_hub_dataset(name: str) -> DatasetDict:
    """Load a hub dataset (online users) and give it the same shape as a local folder."""
    import datasets

    try:
        raw = datasets.load_dataset(name)
    except Exception as error:  # the hub client raises many types when offline
        raise FileNotFoundError(
            f"could not load dataset '{name}' from the Hugging Face hub ({type(error).__name__}: "
            f"{error}). Offline? Save it as a folder of train/dev/test .tsv files with columns "
            "'text' and 'label' and pass that folder instead."
        ) from error
    if "dev" not in raw and "validation" in raw:
        raw["dev"] = raw.pop("validation")
    if "dev" not in raw and "train" in raw:
        parts = raw["train"].train_test_split(test_size=0.1, seed=0)
        raw["train"], raw["dev"] = parts["train"], parts["test"]
    missing = [s for s in SPLITS if s not in raw]
    if missing:
        raise ValueError(f"hub dataset '{name}' lacks split(s) {missing}; it needs train and test")
    out = {}
    for split in SPLITS:
        part = raw[split]
        if not {"text", "label"} <= set(part.column_names):
            raise ValueError(f"hub dataset '{name}' split {split} needs columns 'text' and 'label', has {part.column_names}")
        part = part.select_columns(["text", "label"])
        out[split] = part.add_column("id", list(range(len(part))))
    if not isinstance(out["train"].features["label"], ClassLabel):
        raise ValueError(f"hub dataset '{name}' has no ClassLabel names; save it as a local folder instead")
    return DatasetDict(out)


def label_names(splits: DatasetDict) -> list[str]:
    """Class names in label-index order, so plots can say 'card_arrival' instead of 11."""
    return list(splits["train"].features["label"].names)


def low_label_split(train: Dataset, labels_per_class: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Keep K labelled examples per class; the rest becomes an unlabelled transfer set for the teacher."""
    if not isinstance(labels_per_class, int) or labels_per_class < 1:
        raise ValueError(f"labels_per_class must be an integer ≥ 1, got {labels_per_class!r}")
    labels = np.asarray(train["label"])
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        keep.extend(rng.permutation(members)[:labels_per_class].tolist())
    keep_set = set(keep)
    rest = [i for i in range(len(train)) if i not in keep_set]
    return train.select(sorted(keep)), train.select(rest)
