"""The environment check of notebook 00: what is installed, and whether the offline teacher and the data are found.

It runs before any lesson, so a missing package or teacher shows up as one readable line, not as a stack trace
in notebook 03.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata

from .language import tr


def environment_report() -> dict:
    """What is installed and whether the offline teacher and the data are found, so setup problems show early.

    Introduced in notebook 00 (00-Welcome).
    """
    report: dict = {"python": platform.python_version()}
    for package in ("torch", "transformers", "datasets", "ipywidgets", "matplotlib", "numpy"):
        try:
            report[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            report[package] = None
    try:
        import torch

        report["device"] = f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU"
        report["torch_threads"] = torch.get_num_threads()
    except ImportError:
        report["device"], report["torch_threads"] = None, None
    report["cpu_count"] = os.cpu_count()
    report["hf_offline"] = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")

    from .teacher import packaged_teacher_path

    try:
        report["teacher_path"], report["teacher_found"], report["teacher_problem"] = str(packaged_teacher_path()), True, None
    except (FileNotFoundError, ValueError) as problem:
        report["teacher_path"], report["teacher_found"], report["teacher_problem"] = None, False, str(problem)

    from .data import load_splits

    try:
        splits = load_splits()
        report["data_found"], report["data_problem"] = True, None
        report["data_sizes"] = {name: len(part) for name, part in splits.items()}
        report["num_classes"] = len(splits["train"].features["label"].names)
    except (FileNotFoundError, ValueError) as problem:
        report["data_found"], report["data_problem"], report["data_sizes"], report["num_classes"] = False, str(problem), None, None

    from .cache import cache_root

    root = cache_root()
    report["cache_folder"] = str(root)
    report["cache_files"] = sorted(p.name for p in root.glob("teacher-*.safetensors")) if root.exists() else []
    report["ready"] = bool(report["torch"] and report["transformers"] and report["teacher_found"] and report["data_found"])
    return report


def environment_summary(report: dict | None = None) -> str:
    """The environment report as a few readable lines with ✔ / ✘, for the welcome notebook.

    Introduced in notebook 00 (00-Welcome).
    """
    report = environment_report() if report is None else report

    def mark(ok) -> str:
        return "✔" if ok else "✘"

    packages = ", ".join(f"{name} {report.get(name) or 'MISSING'}" for name in
                         ("torch", "transformers", "datasets", "ipywidgets", "matplotlib"))
    lines = [
        f"{mark(True)} Python {report['python']}",
        f"{mark(report.get('torch') and report.get('transformers'))} {packages}",
        f"{mark(True)} " + tr("compute: {device} ({cpus} CPU cores, torch uses {threads} threads)", device=report.get("device"),
                              cpus=report.get("cpu_count"), threads=report.get("torch_threads")),
    ]
    if report["teacher_found"]:
        lines.append(f"{mark(True)} " + tr("offline teacher (MiniLM-L6-H384) found, weights verified: {path}", path=report["teacher_path"]))
    else:
        lines.append(f"{mark(False)} " + tr("offline teacher NOT found: {problem}", problem=report["teacher_problem"]))
    if report["data_found"]:
        sizes = ", ".join(f"{k} {v:,}" for k, v in report["data_sizes"].items())
        lines.append(f"{mark(True)} " + tr("Banking77 data found: {classes} intents; {sizes} queries", classes=report["num_classes"], sizes=sizes))
    else:
        lines.append(f"{mark(False)} " + tr("data NOT found: {problem}", problem=report["data_problem"]))
    if report["cache_files"]:
        lines.append(f"{mark(True)} " + tr("teacher cache present ({n} file(s) in {folder})", n=len(report["cache_files"]),
                                                folder=report["cache_folder"]))
    else:
        lines.append("• " + tr("teacher cache not built yet: notebook 01 builds it (about 1–2 min, once)"))
    lines.append(tr("READY: every lesson can run offline.") if report["ready"] else
                 tr("NOT READY: fix the ✘ lines above (see the README's setup commands)."))
    return "\n".join(lines)
