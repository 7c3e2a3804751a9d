"""Teacher and KD students in three runtimes (eager torch, ONNX Runtime, ExecuTorch; float and int8): one table, one run.

    python benchmarks/deployment.py                     # ≈ 15–20 min on 2 shared cores (trains 3 students once)
    python benchmarks/deployment.py --models bag --repeats 20   # a smoke run in well under a minute
    python benchmarks/deployment.py --json benchmarks/results/deployment.json --markdown benchmarks/results/deployment.md

ExecuTorch rows need the optional extra (pip install -r requirements-edge.txt); without it they are left out, and said so.

Students are trained once with knowledge distillation (T=4, λ=0.5) for kdlab.deployment.DEPLOYMENT_EPOCHS
and saved under the git-ignored .cache/, where notebook 08 finds them; a second run only measures.
The committed benchmarks/results/deployment.json is what notebook 08 shows, labelled with machine and date,
for the students it cannot train within a notebook's time and memory budget.
Timings depend on the CPU and on whatever else runs on it: compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import kdlab
from kdlab.deployment import (
    DEPLOYMENT_EPOCHS, ENERGY_PJ_45NM, HEAD_FROM_TEACHER, MissingEdgeExtra, energy_estimate, executorch_logits,
    executorch_program, export_executorch, export_onnx, file_size_mb, onnx_feed, onnx_predict_logits, onnx_session,
    quantize_dynamic_int8, quantize_onnx_int8, quantize_onnx_static_int8, size_on_disk_mb, trained_student,
)
from kdlab.students import count_parameters
from kdlab.teacher import load_encoder
from kdlab.tokens import Tokens
from kdlab.training import predict_logits


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table; every converted row also shows its accuracy cost and agreement with eager float."""
    lines = [
        "| model | runtime | params | file size (MB) | latency batch 1, median (ms) | latency batch 1, p95 (ms) "
        "| throughput batch 32 (examples/s) | test accuracy (%) | accuracy cost vs eager float (pp) "
        "| agrees with eager float (%) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cost = f"{100 * r['accuracy_cost']:+.2f}" if "accuracy_cost" in r else ""
        agree = f"{100 * r['agreement']:.1f}" if "agreement" in r else ""
        lines.append(
            f"| {r['family']} | {r['runtime']} | {r['params'] / 1e6:.2f}M | {r['size_mb']:.2f} | {r['latency_median_ms']:.3f} "
            f"| {r['latency_p95_ms']:.3f} | {r['throughput_per_s']:.0f} | {100 * r['accuracy']:.2f} | {cost} | {agree} |"
        )
    return "\n".join(lines)


@dataclass
class Variant:
    """One model in one runtime: how to answer one query, how to score a split, and its file's size."""

    family: str
    runtime: str
    name: str
    run: Callable[[Tokens], object]
    predict: Callable[[Tokens], torch.Tensor]
    size_mb: float
    params: int


def eager_variant(family: str, runtime: str, name: str, model: torch.nn.Module, params: int) -> Variant:
    """A torch model run eagerly (float or torch's dynamic int8); size = its saved state_dict."""
    model.eval()

    def run(one: Tokens):
        with torch.inference_mode():
            return model(one.input_ids, one.attention_mask)

    return Variant(family, runtime, name, run, lambda t: predict_logits(model, t, batch_size=64), size_on_disk_mb(model), params)


def onnx_variant(family: str, runtime: str, name: str, path: Path, params: int) -> Variant:
    """An .onnx file run by ONNX Runtime on one thread; size = the file."""
    session = onnx_session(path)
    return Variant(family, runtime, name, lambda one: session.run(["logits"], onnx_feed(one)),
                   lambda t: onnx_predict_logits(session, t, batch_size=64), file_size_mb(path), params)


def executorch_variant(family: str, name: str, path: Path, params: int) -> Variant:
    """A .pte file run by ExecuTorch's runtime (XNNPACK, one thread); one query at a time, so a batch is answered row by row."""
    program = executorch_program(path)
    return Variant(family, "ExecuTorch", name, lambda t: executorch_logits(program, t),
                   lambda t: executorch_logits(program, t), file_size_mb(path), params)


def interleaved_latency(variants: list[Variant], tokens: Tokens, repeats: int, warmup: int = 10) -> dict[str, list[float]]:
    """Batch-1 latency samples (ms) per variant, round-robin: query i goes to every variant before query i + 1.

    On a shared CPU the load changes from second to second; interleaving gives every variant the same slow spells,
    so ratios between rows stay fair even when the absolute numbers drift. The start of each round rotates.
    """
    samples = {v.name: [] for v in variants}
    for i in range(warmup + repeats):
        one = tokens.select([i % len(tokens)])
        shift = i % len(variants)
        for v in variants[shift:] + variants[:shift]:
            start = time.perf_counter()
            v.run(one)
            if i >= warmup:
                samples[v.name].append(1000 * (time.perf_counter() - start))
    return samples


def interleaved_throughput(variants: list[Variant], tokens: Tokens, batch_size: int = 32, max_examples: int = 512) -> dict[str, float]:
    """Examples per second in batches of `batch_size`, each batch timed on every variant in turn, after one warm-up batch."""
    starts = range(0, min(max_examples, len(tokens)), batch_size)
    batches = [tokens.select(torch.arange(s, min(s + batch_size, len(tokens)))) for s in starts]
    for v in variants:
        v.run(batches[0])
    seconds = {v.name: 0.0 for v in variants}
    for batch in batches:
        for v in variants:
            start = time.perf_counter()
            v.run(batch)
            seconds[v.name] += time.perf_counter() - start
    examples = sum(len(b) for b in batches)
    return {name: examples / total for name, total in seconds.items()}


def cpu_name() -> str:
    """The CPU model as Linux names it (e.g. 'AMD EPYC'), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


MODELS = ("teacher", *DEPLOYMENT_EPOCHS)


def model_variants(family: str, model: torch.nn.Module, example: Tokens, calibration: Tokens, folder: Path,
                   int8_torch: bool = True, edge: bool = True) -> list[Variant]:
    """The six forms of one model: eager float, eager torch int8, ONNX Runtime float, ORT dynamic and static int8, ExecuTorch."""
    params = count_parameters(model)
    slug = family.split()[0]
    path = export_onnx(model, example, folder / f"{slug}.onnx")
    variants = [eager_variant(family, "eager torch", family, model, params)]
    if int8_torch:
        variants.append(eager_variant(family, "eager torch int8", f"{slug} int8", quantize_dynamic_int8(model), params))
    variants.append(onnx_variant(family, "ONNX Runtime", f"{slug} ONNX Runtime", path, params))
    variants.append(onnx_variant(family, "ONNX Runtime int8", f"{slug} ONNX Runtime int8",
                                 quantize_onnx_int8(path, folder / f"{slug}-int8.onnx"), params))
    variants.append(onnx_variant(family, "ONNX Runtime static int8", f"{slug} ONNX Runtime static int8",
                                 quantize_onnx_static_int8(path, folder / f"{slug}-static-int8.onnx", calibration), params))
    if edge:
        variants.append(executorch_variant(family, f"{slug} ExecuTorch", export_executorch(model, example, folder / f"{slug}.pte"),
                                           params))
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: a phone answers one query on one core, and on a shared CPU "
                             "more threads than free cores make timings erratic); ONNX Runtime always gets 1")
    parser.add_argument("--repeats", type=int, default=300, help="batch-1 latency samples per model and runtime")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="which models to measure (default all; e.g. --models bag for a quick smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-teacher-int8", action="store_true", help="skip torch int8 of the teacher (saves ~1 min)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows, machine and date here (notebook 08 "
                        "reads benchmarks/results/deployment.json)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table and its notes here")
    args = parser.parse_args()

    kdlab.threads.set_threads(args.threads)
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    cache = kdlab.load_teacher_cache(progress=False)
    encoder, tokenizer = load_encoder()
    tokens, labels = cache.tokens["test"], cache.labels["test"]
    example = cache.tokens["dev"].select(torch.arange(8))  # 8 queries of different lengths: batch and length stay free
    # Static int8's activation ranges: 256 random train queries (never the test rows it is scored on).
    calibration = cache.tokens["train"].select(torch.randperm(len(cache.labels["train"]),
                                                              generator=torch.Generator().manual_seed(args.seed))[:256])
    timings, variants, known_logits, float_models = {}, [], {}, {}
    folder = Path(tempfile.mkdtemp(prefix="kdlab-deployment-"))
    try:  # ExecuTorch is an optional extra: without it, the table has no ExecuTorch rows and says why
        from kdlab.deployment import _executorch_modules
        _executorch_modules()
        edge, edge_note = True, ""
    except MissingEdgeExtra as missing:
        edge, edge_note = False, f" No ExecuTorch rows: {missing}"
        print(edge_note, flush=True)

    if "teacher" in args.models:
        teacher = kdlab.teacher_from_cache(cache)
        start = time.perf_counter()
        variants += model_variants("teacher (MiniLM-L6)", teacher, example, calibration, folder, int8_torch=not args.skip_teacher_int8,
                                   edge=edge)
        timings["export teacher"] = time.perf_counter() - start
        known_logits["teacher (MiniLM-L6)"] = cache.logits["test"]  # the cache holds its eager test logits
        float_models["teacher (MiniLM-L6)"] = teacher
    for kind, epochs in DEPLOYMENT_EPOCHS.items():
        if kind not in args.models:
            continue
        start = time.perf_counter()
        student, loaded = trained_student(cache, tokenizer, kind=kind, teacher_encoder=encoder, seed=args.seed, epochs=epochs)
        timings[f"train {kind}"] = time.perf_counter() - start
        print(f"{kind}: {'loaded from .cache' if loaded else f'trained {epochs} epoch(s)'} in {timings[f'train {kind}']:.0f} s",
              flush=True)
        start = time.perf_counter()
        variants += model_variants(f"{kind} KD student", student, example, calibration, folder, edge=edge)
        float_models[f"{kind} KD student"] = student
        timings[f"export {kind}"] = time.perf_counter() - start

    # Energy cannot be metered on a VM: estimate it per query from operation counts (kdlab.deployment.energy_estimate).
    energy = {name: energy_estimate(model, tokens, max_queries=200) for name, model in float_models.items()}
    # Accuracy and agreement on the whole test split, each variant scored by its own runtime.
    predictions = {}
    for v in variants:
        start = time.perf_counter()
        logits = known_logits.get(v.name)
        predictions[v.name] = (logits if logits is not None else v.predict(tokens)).argmax(dim=1)
        timings[f"score {v.name}"] = time.perf_counter() - start
        print(f"  scored {v.name} in {timings[f'score {v.name}']:.0f} s", flush=True)
    start = time.perf_counter()
    latencies = interleaved_latency(variants, tokens, args.repeats)
    throughputs = interleaved_throughput(variants, tokens)
    timings["timing, interleaved"] = time.perf_counter() - start

    rows, eager = [], {}
    for v in variants:
        row = {"model": v.name, "family": v.family, "runtime": v.runtime, "params": v.params, "size_mb": v.size_mb,
               "latency_median_ms": float(np.median(latencies[v.name])),
               "latency_p95_ms": float(np.percentile(latencies[v.name], 95)), "throughput_per_s": throughputs[v.name],
               "accuracy": (predictions[v.name] == labels).float().mean().item()}
        if v.runtime == "eager torch":
            eager[v.family] = v.name
        else:
            base = eager[v.family]
            row["accuracy_cost"] = row["accuracy"] - (predictions[base] == labels).float().mean().item()
            row["agreement"] = (predictions[v.name] == predictions[base]).float().mean().item()
        rows.append(row)

    total = time.perf_counter() - started
    date = datetime.date.today().isoformat()
    machine = f"{cpu_name()}, {os.cpu_count()} cores shared with other jobs, {args.threads} torch thread(s), 1 ONNX Runtime thread"
    kinds = [kind for kind in DEPLOYMENT_EPOCHS if kind in args.models]
    recipes = {kind: {**kdlab.STUDENT_DEFAULTS[kind], "epochs": DEPLOYMENT_EPOCHS[kind], "head_from_teacher": kind in HEAD_FROM_TEACHER,
                      "temperature": 4.0, "lam": 0.5, "seed": args.seed} for kind in kinds}
    recipe_text = "; ".join(
        f"{kind} {r['epochs']} epoch(s), lr {r['lr']:g}, batch {r['batch_size']}" + (", head from the teacher's" if r["head_from_teacher"] else "")
        for kind, r in recipes.items()
    )
    import importlib.metadata
    import onnxruntime

    edge_version = f", executorch {importlib.metadata.version('executorch')}" if edge else ""

    teacher_uj = energy["teacher (MiniLM-L6)"].total_uj if "teacher (MiniLM-L6)" in energy else None
    energy_lines = [
        "| model (eager float) | MACs per query | weight bytes read per query | estimated energy per query (µJ) | vs teacher |",
        "|---|---:|---:|---:|---:|",
    ] + [
        f"| {name} | {e.macs:,.0f} | {e.dram_bytes:,.0f} | {e.total_uj:.2f} | "
        + (f"{teacher_uj / e.total_uj:.0f}× less |" if teacher_uj and name != "teacher (MiniLM-L6)" else "|")
        for name, e in energy.items()
    ]
    energy_text = (
        "### Energy per query: an estimate, not a measurement\n\n" + "\n".join(energy_lines) + "\n\n"
        f"A VM cannot meter energy. Counted on {min(200, len(labels))} test queries at batch 1: multiply-accumulates "
        f"(torch.utils.flop_counter / 2) at {ENERGY_PJ_45NM['fp32 multiply']} + {ENERGY_PJ_45NM['fp32 add']} pJ (fp32 multiply "
        f"+ add) and every weight read once from DRAM at {ENERGY_PJ_45NM['dram read per 32 bits']:.0f} pJ per 32 bits "
        f"(embedding tables: only the query's rows); activations left out. Energies from M. Horowitz, \"Computing's energy "
        f"problem\", ISSCC 2014, 45 nm: newer process nodes spend less per operation; the ratio student / teacher is the number to read."
    )
    report = (
        f"## Deployment benchmark ({date})\n\n{markdown(rows)}\n\n"
        f"Test split of Banking77 ({len(labels)} queries). Students: KD (T=4, λ=0.5), seed {args.seed}: {recipe_text}. "
        f"Latency: {args.repeats} single queries (padding trimmed) after 10 warm-up rounds, interleaved: each query runs "
        f"on every model and runtime in turn (rotating the order) before the next, so the ratios are fair on a noisy "
        f"machine; throughput: 512 test queries in batches of 32, also interleaved batch by batch (ExecuTorch answers a batch "
        f"one query at a time: its programs are batch 1, any length). File size: the saved "
        f"state_dict for eager torch, the .onnx file for ONNX Runtime, the .pte file for ExecuTorch. ExecuTorch = "
        f"torch.export → to_edge_transform_and_lower with the XNNPACK partitioner, float32 (no int8 rows: XNNPACK's int8 "
        f"needs the pt2e quantization flow, not done here). eager torch int8 = torch dynamic quantization "
        f"(Linear int8, embeddings weight-only int8); ONNX Runtime int8 = onnxruntime.quantization.quantize_dynamic "
        f"(QInt8 weights); ONNX Runtime static int8 = quantize_static (QOperator, uint8 activations with ranges from 256 "
        f"train queries, int8 weights; MatMul, Gemm, Gather). Exported with torch.export (torch.onnx.export(dynamo=True)), dynamic batch and length; the bag "
        f"student as nn.Embedding + masked mean (same weights). params of int8 rows = the float model's. "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}{edge_version}, {machine} (load average {load_at_start:.1f} "
        f"at start, {os.getloadavg()[0]:.1f} at end): timings are noisy; compare rows, not runs. Total {total / 60:.1f} min.{edge_note}"
        f"\n\n{energy_text}"
    )
    print("\n" + report)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report + "\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "rows": rows, "machine": machine, "date": date, "test_queries": len(labels), "recipes": recipes,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "threads": args.threads,
            "executorch": importlib.metadata.version("executorch") if edge else None,
            "load_average": [load_at_start, os.getloadavg()[0]], "timings_s": timings, "interleaved": True,
            "energy_estimate": {name: {"macs": e.macs, "dram_bytes": e.dram_bytes, "total_uj": e.total_uj}
                                for name, e in energy.items()},
            "energy_pj_45nm": ENERGY_PJ_45NM,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
