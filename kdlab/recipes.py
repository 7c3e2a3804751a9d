"""Named ways to teach a student: which teacher, which transfer set, which extra loss (notebook 12).

A recipe changes what the KD student learns from, never the loop: it picks a teacher from the panel
(`kdlab.ensemble`), optionally adds the teacher-labelled augmented queries, optionally adds the feature loss
(a learned projection onto the teacher's sentence vector), or first trains a same-size student to be the
teacher (born-again). `python -m kdlab distill --recipe NAME` and benchmarks/kd_quality.py --section beyond run
them; `best` is the combination that scored highest on **dev** in that benchmark (test only reports it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .cache import TeacherCache
from .training import History, train_student


@dataclass(frozen=True)
class Recipe:
    """One way to teach the KD student, as `teach` takes it (notebook 12); every field off is plain KD."""

    teacher: str = "default"  # a TeacherPanel teacher: weak, default or ensemble
    augmented: bool = False  # add the teacher-labelled augmented queries (KD term only)
    hidden_weight: float = 0.0  # weight of the feature loss, 1 − cos(projected student vector, teacher vector)
    born_again: bool = False  # first train a same-size student on this recipe, then use it as the teacher
    summary: str = ""

    @property
    def needs_panel(self) -> bool:
        """Whether the recipe reads the teacher panel (built once, about 5 min on one thread)."""
        return self.teacher != "default" or self.augmented


RECIPES = {
    "default": Recipe(summary="plain KD from the cached teacher (notebook 05)"),
    "weak-teacher": Recipe(teacher="weak", summary="KD from a head on layer 3 of 6: a weaker teacher"),
    "ensemble": Recipe(teacher="ensemble", summary="KD from the ensemble teacher (7 heads + a neighbour vote)"),
    "features": Recipe(hidden_weight=1.0, summary="KD + the feature loss through a learned projection (FitNets), weight 1"),
    "augmented": Recipe(augmented=True, summary="KD on train + 2 teacher-labelled garbled copies of each query"),
    "born-again": Recipe(born_again=True, summary="KD from a trained student of the same size (born-again)"),
    "ensemble+augmented": Recipe(teacher="ensemble", augmented=True, summary="the ensemble teacher on the augmented set"),
    "augmented+features": Recipe(augmented=True, hidden_weight=1.0, summary="the augmented set + the feature loss"),
    "ensemble+augmented+features": Recipe(teacher="ensemble", augmented=True, hidden_weight=1.0,
                                          summary="the ensemble teacher on the augmented set + the feature loss"),
}
# The highest dev accuracy in benchmarks/results/beyond.json (3 seeds); kept in step by tests/test_recipes.py.
BEST = "ensemble+augmented+features"
RECIPES["best"] = RECIPES[BEST]


def recipe(name: str) -> Recipe:
    """The recipe of this name, or a ValueError listing the names there are."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def teach(student: nn.Module, cache: TeacherCache, chosen: Recipe, *, panel=None, labelled: torch.Tensor | None = None,
          seed: int = 0, make_student=None, **training) -> History:
    """Train `student` by the recipe with train_student's own options; returns its history (notebook 12).

    `labelled` flags the real train rows that may use their label (default: all); the augmented rows never do.
    `make_student(seed)` builds the born-again recipe's first student, of the same kind and size.
    """
    if chosen.needs_panel and panel is None:
        raise ValueError("this recipe needs the teacher panel: pass panel=kdlab.load_teacher_panel(cache)")
    taught, panel_labelled = (cache, None) if not chosen.needs_panel else panel.transfer(chosen.teacher, chosen.augmented)
    real = len(cache.ids["train"])
    flags = torch.ones(real, dtype=torch.bool) if labelled is None else torch.as_tensor(labelled, dtype=torch.bool)
    if flags.shape != (real,):
        raise ValueError(f"labelled must have one flag per real train row ({real}), got {tuple(flags.shape)}")
    if panel_labelled is not None and len(panel_labelled) > real:  # the augmented rows: never labelled
        flags = torch.cat([flags, panel_labelled[real:]])
    options = {**training, "hidden_weight": chosen.hidden_weight or training.get("hidden_weight", 0.0)}
    if chosen.born_again:
        if make_student is None:
            raise ValueError("the born-again recipe needs make_student(seed) to build its first, same-size student")
        from .ensemble import student_as_teacher

        first = make_student(seed + 1000)  # its own seed: the two students start differently
        train_student(first, taught, seed=seed + 1000, labelled=flags, **options)
        taught = student_as_teacher(taught, first)
    return train_student(student, taught, seed=seed, labelled=flags, **options)


__all__ = ["BEST", "RECIPES", "Recipe", "recipe", "teach"]
