"""kdlab: knowledge distillation, taught with notebooks (Hinton et al. 2015, https://arxiv.org/abs/1503.02531)."""

import logging as _logging

# With the optional edge extra (requirements-edge.txt: ExecuTorch and its torchao), transformers imports torchao on
# every model load, and torchao logs at WARNING that its CUDA-only libraries do not load on a CPU torch and that torch
# registers two of its enums differently: advice a learner cannot act on. Errors still show.
for _name in ("torchao", "torch.utils._pytree"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)

from .cache import TeacherCache, TeacherSettings, cache_root, load_teacher_cache, teacher_from_cache, teacher_head
from .checker import Finding, check_distillation_loss, format_findings
from .conventions import convert_recipe
from .data import DEFAULT_DATA_DIR, label_names, load_splits, low_label_split
from .ensemble import PanelSettings, TeacherPanel, load_teacher_panel, student_as_teacher
from .lm_distill import ARMS, LMRun, distinct_n, lm_student, next_token_distribution, sample_queries, teacher_nll_of_samples, test_perplexity, train_lm_arm
from .lm_teacher import LMSettings, LMTeacher, encode_queries, load_lm_teacher
from .recipes import RECIPES, Recipe, teach
from .language import current_language, set_language
from .losses import KDTerms, distillation_loss, distillation_terms, generalized_jsd, soft_targets
from . import threads
from .students import STUDENT_KINDS, build_student, check_same_tokenizer, count_parameters, student_start
from .threads import use_policy_threads
from .teacher import Teacher, load_encoder, mean_pool, packaged_teacher_path
from .tokens import Tokens, tokenize
from .training import STUDENT_DEFAULTS, History, evaluate, predict_logits, set_seed, throughput, train_student

__all__ = [
    "ARMS", "LMRun", "LMSettings", "LMTeacher", "distinct_n", "encode_queries", "lm_student", "load_lm_teacher",
    "next_token_distribution", "sample_queries", "teacher_nll_of_samples", "test_perplexity", "train_lm_arm",
    "DEFAULT_DATA_DIR", "STUDENT_DEFAULTS", "STUDENT_KINDS", "Finding", "History", "KDTerms", "Teacher",
    "TeacherCache", "TeacherSettings", "Tokens", "build_student", "cache_root", "check_distillation_loss",
    "check_same_tokenizer", "convert_recipe", "count_parameters", "distillation_loss", "distillation_terms", "evaluate",
    "format_findings", "generalized_jsd", "label_names", "load_encoder", "load_splits", "load_teacher_cache", "low_label_split",
    "mean_pool", "packaged_teacher_path", "predict_logits", "set_seed", "soft_targets", "student_start", "teacher_from_cache",
    "teacher_head", "threads", "throughput", "tokenize", "train_student", "use_policy_threads",
    "current_language", "set_language",
    "PanelSettings", "RECIPES", "Recipe", "TeacherPanel", "load_teacher_panel", "student_as_teacher", "teach",
]
