"""Hinton's omit-a-class experiment: can a student learn an intent it never saw, from soft targets alone?

In the paper (section 3, https://arxiv.org/abs/1503.02531) a student trained on MNIST without a single 3
still recognised most 3s, because the teacher's soft targets on 5s and 8s carry "a bit of 3"; raising
the bias of the unseen class then fixed most of the remaining errors. These helpers make the transfer
set without the class and find that bias shift on the dev set.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor, nn

from .training import predict_logits
from .tuning import train_run


def rows_without_class(cache, class_index: int) -> Tensor:
    """Train rows whose label is not `class_index`: the transfer set with every example of it removed."""
    labels = cache.labels["train"]
    _check_class(class_index, len(cache.label_names))
    return torch.nonzero(labels != class_index).flatten()


def shift_class_logit(logits: Tensor, class_index: int, shift: float) -> Tensor:
    """Add `shift` to one class's logit (what raising that class's output bias does), leaving the rest."""
    _check_class(class_index, logits.shape[1])
    shifted = logits.clone()
    shifted[:, class_index] += shift
    return shifted


def bias_shift_scan(logits: Tensor, labels: Tensor, class_index: int, shifts) -> pd.DataFrame:
    """Accuracy, the class's recall and its precision for each candidate bias shift (choose on dev, not test)."""
    rows = []
    is_class = labels == class_index
    if not is_class.any():
        raise ValueError(f"no examples of class {class_index} in these labels: scan on a split that has it")
    for shift in shifts:
        predicted = shift_class_logit(logits, class_index, float(shift)).argmax(dim=1)
        called = predicted == class_index
        rows.append({
            "shift": float(shift),
            "accuracy": (predicted == labels).float().mean().item(),
            "class_recall": (called & is_class).sum().item() / is_class.sum().item(),
            "class_precision": (called & is_class).sum().item() / max(called.sum().item(), 1),
        })
    return pd.DataFrame(rows)


def best_bias_shift(scan: pd.DataFrame) -> float:
    """The shift with the highest overall accuracy (the smallest such shift on ties)."""
    best = scan[scan["accuracy"] == scan["accuracy"].max()]
    return float(best["shift"].min())


def output_layer(model: nn.Module) -> nn.Linear:
    """The last Linear layer: its bias is where a class's prior lives."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear layer whose bias could be shifted")
    return linears[-1]


def raise_class_bias(model: nn.Module, class_index: int, shift: float) -> None:
    """Bake the chosen shift into the student's output bias, so the deployed model needs no post-processing."""
    layer = output_layer(model)
    _check_class(class_index, layer.out_features)
    with torch.no_grad():
        layer.bias[class_index] += shift


def _check_class(class_index: int, num_classes: int) -> None:
    if not isinstance(class_index, int) or not 0 <= class_index < num_classes:
        raise ValueError(f"class_index must be an integer in [0, {num_classes - 1}], got {class_index!r}")



def omit_class_experiment(cache, tokenizer, class_index: int, *, seed: int = 0, temperature: float = 4.0,
                          lam: float = 0.5, shifts=None, kind: str = "bag", **train_options) -> dict:
    """Train a CE-only and a KD student without any example of one class; choose its bias shift on dev, report on test.

    Returns, per student ("CE only", "KD"): the model, its dev logits, its dev recall of the omitted class as
    trained, the bias-shift scan on dev and the shift the dev set chose — and `test`, the test split scored once
    as trained and once at that dev-chosen shift (the dev queries chose the shift, so they cannot also report it).
    """
    rows = rows_without_class(cache, class_index)
    shifts = [0.5 * i for i in range(21)] if shifts is None else list(shifts)
    dev_labels = cache.labels["dev"]
    result = {"class_index": class_index, "class_name": cache.label_names[class_index],
              "train_rows": len(rows), "removed_rows": len(cache.labels["train"]) - len(rows)}
    for method, run_lam in (("CE only", 1.0), ("KD", lam)):
        run = train_run(cache, tokenizer, kind=kind, seed=seed, temperature=temperature, lam=run_lam, rows=rows,
                        **train_options)
        logits = predict_logits(run.model, cache.tokens["dev"])
        as_trained = bias_shift_scan(logits, dev_labels, class_index, [0.0]).iloc[0]
        scan = bias_shift_scan(logits, dev_labels, class_index, shifts)
        best = best_bias_shift(scan)
        test = bias_shift_scan(predict_logits(run.model, cache.tokens["test"]), cache.labels["test"], class_index,
                               sorted({0.0, best}))
        result[method] = {"model": run.model, "dev_logits": logits, "scan": scan, "best_shift": best,
                          "dev_accuracy": run.dev_accuracy, "recall_as_trained": float(as_trained["class_recall"]),
                          "test": test.set_index("shift").loc[[0.0, best]].reset_index()}
    return result
