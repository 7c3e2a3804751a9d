"""Deployment: how big, how fast and how faithful a model is once it leaves the notebook.

Size on disk, batch-1 latency (median and p95), dynamic int8 quantization, export with torch.export to a
self-contained ONNX file that ONNX Runtime runs without kdlab or torch (float and ORT's own int8), lowering to an
ExecuTorch .pte file (XNNPACK; the optional extra in requirements-edge.txt), a per-query energy estimate from
operation counts, and a check that a converted model still predicts what the original did.
Timings on a shared or busy CPU are noisy: compare models measured in the same run, never across runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .data import REPO_ROOT
from .results import BenchmarkResults, read_benchmark_results
from .students import STARTS_FROM_TEACHER_HEAD
from .tokens import Tokens


def size_on_disk_mb(model: nn.Module) -> float:
    """Megabytes (10⁶ bytes) of the saved state_dict: what you would ship to a phone, not what RAM holds."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    handle, path = tempfile.mkstemp(suffix=".pt")
    os.close(handle)
    try:
        torch.save(model.state_dict(), path)
        return os.path.getsize(path) / 1e6
    finally:
        os.remove(path)


@dataclass
class Latency:
    """Batch-1 latency: the median is the typical user's wait, p95 the slow one in twenty."""

    median_ms: float
    p95_ms: float
    samples_ms: list[float]


def latency_ms(model: nn.Module, tokens: Tokens, repeats: int = 100, warmup: int = 10) -> Latency:
    """Time one query at a time (batch 1, padding trimmed), as an app answering a single user would."""
    _check_tokens(tokens, "tokens")
    samples = _batch_one_times(model, [tokens], repeats, warmup)[0]
    return Latency(float(np.median(samples)), float(np.percentile(samples, 95)), samples)


def length_growth(model: nn.Module, short: Tokens, long: Tokens, repeats: int = 100, warmup: int = 10) -> float:
    """Median batch-1 latency on the long queries ÷ on the short ones, timed in turn (notebook 08, exercise 4).

    One short query, then one long, then the next short...: a busy machine slows both sets alike, so the ratio
    keeps its meaning when the absolute times do not. Timed one set after the other, the truncated student's
    ratio once came out 0.99 on a busy CI machine (bag 1.05), against about 1.36 on a quiet core; taken in turn
    with a busy loop sharing the core it stayed at 1.15–1.33 (bag 0.97–1.19), measured 2026-12-01.
    """
    _check_tokens(short, "short")
    _check_tokens(long, "long")
    short_ms, long_ms = _batch_one_times(model, [short, long], repeats, warmup)
    return float(np.median(long_ms) / np.median(short_ms))


def _batch_one_times(model: nn.Module, sets: list[Tokens], repeats, warmup) -> list[list[float]]:
    """Milliseconds per single query (padding trimmed), for each set of queries, taking one query of each in turn."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer ≥ 1, got {repeats!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer ≥ 0, got {warmup!r}")
    model.eval()
    samples: list[list[float]] = [[] for _ in sets]
    with torch.inference_mode():
        # First calls pay for memory allocation and kernel selection; a deployed model is already warm.
        for i in range(warmup + repeats):
            for tokens, times in zip(sets, samples):
                # Different examples in turn: real queries differ in length, and so does their cost.
                one = tokens.select([i % len(tokens)])
                start = time.perf_counter()
                model(one.input_ids, one.attention_mask)
                if i >= warmup:
                    times.append(1000 * (time.perf_counter() - start))
    return samples


class Int8Lookup(nn.Module):
    """An int8 embedding table that accepts what the float one accepted (see quantize_dynamic_int8)."""

    def __init__(self, quantized: nn.Module):
        super().__init__()
        self.quantized = quantized

    def forward(self, input: Tensor, *args, **kwargs) -> Tensor:
        # The int8 kernel needs contiguous ids; BERT's position and token-type ids are expanded views.
        return self.quantized(input.contiguous(), *args, **kwargs)


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy with int8 weights: Linear layers (dynamic) and embedding tables (weight-only), ~4× smaller.

    Dynamic quantization stores weights as int8 and quantizes activations on the fly, so it needs no
    calibration data — but each batch's activations get their own scale, so an int8 model's logits for a
    query can change slightly with what else is in its batch. torch 2.13 supports nn.Linear (int8 weights, int8 matmul) and nn.Embedding /
    nn.EmbeddingBag (weight-only, per-row float scale: `float_qparams_weight_only_qconfig`). LayerNorm,
    GELU and attention's softmax have no dynamic int8 version and stay float32. torch 2.13 marks
    torch.ao.quantization as deprecated in favour of the separate torchao package (not installed here);
    the API still works, and we silence its warning.
    """
    from torch.ao.quantization import default_dynamic_qconfig, float_qparams_weight_only_qconfig, quantize_dynamic

    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    spec = {
        nn.Linear: default_dynamic_qconfig,
        nn.Embedding: float_qparams_weight_only_qconfig,
        nn.EmbeddingBag: float_qparams_weight_only_qconfig,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized = quantize_dynamic(model, spec, dtype=torch.qint8, inplace=False)
    model.train(was_training)
    _wrap_lookups(quantized)
    quantized.eval()
    return quantized


def _wrap_lookups(module: nn.Module) -> None:
    """Put every int8 embedding table inside an Int8Lookup, recursively."""
    from torch.ao.nn.quantized import Embedding, EmbeddingBag

    for name, child in module.named_children():
        if isinstance(child, (Embedding, EmbeddingBag)):
            setattr(module, name, Int8Lookup(child))
        else:
            _wrap_lookups(child)


class BagAsEmbedding(nn.Module):
    """The bag student in export-friendly form: nn.Embedding + masked mean, the same weights and the same maths.

    nn.EmbeddingBag exports to ONNX as a Loop over rows (correct, but several times slower in ONNX Runtime) and
    has no kernel in ExecuTorch's prebuilt runtime; a lookup followed by a masked mean is a Gather and a
    ReduceSum every runtime has. `export_onnx` and `export_program` use it for a BagStudent (notebook 08).
    """

    def __init__(self, bag: nn.Module):
        super().__init__()
        self.pad_id = bag.pad_id
        self.feature_dim = bag.feature_dim
        self.embedding = nn.Embedding.from_pretrained(bag.embedding.weight.detach().clone(), freeze=True,
                                                      padding_idx=bag.embedding.padding_idx)
        self.classifier = bag.classifier

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        mask = attention_mask.to(torch.float32)
        count = mask.sum(dim=1, keepdim=True).clamp(min=1.0)  # BagStudent divides by the real tokens, as here
        if self.embedding.padding_idx is not None:  # EmbeddingBag(padding_idx=...) skips pad ids whatever their weight
            mask = mask * (input_ids != self.embedding.padding_idx).to(torch.float32)
        pooled = (self.embedding(input_ids) * mask.unsqueeze(-1)).sum(dim=1) / count
        return self.classifier(pooled)


def exportable(model: nn.Module) -> nn.Module:
    """The form of a model that every runtime can run: a BagStudent becomes a BagAsEmbedding, others stay as they are."""
    from .students import BagStudent

    _check_float_student(model)
    return BagAsEmbedding(model).eval() if isinstance(model, BagStudent) else model.eval()


ONNX_INPUTS = ("input_ids", "attention_mask")  # the names an exported model's inputs have


def _check_float_student(model: nn.Module) -> None:
    """Refuse what cannot be exported: not a module, or a torch-int8 copy (quantize the exported float file instead)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module student (model(input_ids, attention_mask) → logits), "
                         f"got {type(model).__name__}")
    if any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules()):
        raise ValueError("model is a torch int8 copy (quantize_dynamic_int8), which torch.export cannot export; export the "
                         "float model and quantize the ONNX file with quantize_onnx_int8")


def _dynamic_example(model: nn.Module, example_tokens: Tokens) -> tuple[tuple[Tensor, Tensor], tuple[dict, dict]]:
    """(inputs, dynamic_shapes) for torch.export: batch and sequence length stay free, checked on one real call."""
    _check_tokens(example_tokens, "example_tokens")
    rows, width = example_tokens.input_ids.shape
    if rows < 2 or width < 2:
        raise ValueError(f"example_tokens must have at least 2 rows and 2 columns, or torch.export fixes that size; got "
                         f"{rows}×{width}: pass several examples, e.g. cache.tokens['dev'].select(range(8))")
    inputs = (example_tokens.input_ids, example_tokens.attention_mask)
    try:
        with torch.inference_mode():
            logits = model(*inputs)
    except TypeError as problem:
        raise ValueError(f"model must follow the student protocol, model(input_ids, attention_mask) → logits; calling "
                         f"{type(model).__name__} that way failed: {problem}") from None
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != rows:
        raise ValueError(f"model must return one row of logits per example (a {rows}×classes tensor), "
                         f"got {type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}")
    # AUTO, not named Dims: a BERT's position table caps the length, and a named Dim's range would have to say so.
    axes = {0: torch.export.Dim.AUTO, 1: torch.export.Dim.AUTO}
    return inputs, (axes, dict(axes))


def _check_still_dynamic(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Refuse a program that fixed the batch size or the length (AUTO falls back to the example's size silently)."""
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in ONNX_INPUTS:
            fixed = [axis for axis, size in zip(("batch", "sequence"), node.meta["val"].shape) if is_concrete_int(size)]
            if fixed:
                raise ValueError(f"torch.export fixed the {' and '.join(fixed)} axis of {node.name} to the example's size; "
                                 "this model cannot take other batch sizes or lengths once exported")
    return program


def export_program(model: nn.Module, example_tokens: Tokens) -> torch.export.ExportedProgram:
    """torch.export's graph of the model (what replaces TorchScript in torch 2.x), any batch size and length (notebook 08).

    `program_module(program)(input_ids, attention_mask)` runs it without the Python class; ONNX and ExecuTorch start from it.
    """
    model = exportable(model)
    inputs, shapes = _dynamic_example(model, example_tokens)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers probes renamed attributes while tracing
        return _check_still_dynamic(torch.export.export(model, inputs, dynamic_shapes=shapes))


def program_module(program: torch.export.ExportedProgram) -> nn.Module:
    """The exported graph as a callable module, (input_ids, attention_mask) → logits, no kdlab class needed (notebook 08).

    Runs without the program's Python guards: with torch 2.13 and transformers 5.24, the guard that BERT's
    attention-mask code leaves behind raises AttributeError on a batch of several unpadded rows, although the graph
    computes them right (tests/test_export.py checks such batches against eager logits).
    """
    if not isinstance(program, torch.export.ExportedProgram):
        raise ValueError(f"program must be a torch.export.ExportedProgram (from export_program), got {type(program).__name__}")
    return program.module(check_guards=False)


def export_onnx(model: nn.Module, example_tokens: Tokens, path: str | Path) -> Path:
    """One self-contained .onnx file that ONNX Runtime (servers, browsers, phones) runs without Python (notebook 08).

    Uses the torch.export-based exporter (dynamo=True, which needs onnxscript); batch and sequence length are
    dynamic axes. A BagStudent is exported in its `exportable` form. The float model only: quantize the file.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"path must end in .onnx, got {str(path)!r}")
    # The ONNX exporter keeps symbolic axes even where torch.export fixed a size (a branch on the length): check first.
    # (Handing it this program instead fails in torch 2.13: its guard function breaks the exporter's decompositions.)
    export_program(model, example_tokens)
    model = exportable(model)
    inputs, shapes = _dynamic_example(model, example_tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
        warnings.simplefilter("ignore")
        _quiet_onnx_logs()
        torch.onnx.export(model, inputs, str(path), dynamo=True, input_names=list(ONNX_INPUTS), output_names=["logits"],
                          dynamic_shapes=shapes, external_data=False, verbose=False)
    _check_onnx_dynamic(path)
    return path


def _check_onnx_dynamic(path: Path) -> None:
    """Remove and refuse an .onnx file whose inputs have a fixed batch size or length."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim
        fixed = [axis for axis, dim in zip(("batch", "sequence"), dims) if not dim.dim_param]
        if fixed:
            path.unlink()
            raise ValueError(f"torch.export fixed the {' and '.join(fixed)} axis of {value.name} to the example's size; "
                             "this model cannot take other batch sizes or lengths once exported")


def _quiet_onnx_logs() -> None:
    """The exporter and the quantizer log advice at WARNING that a learner cannot act on; keep errors."""
    import logging

    for name in ("torch.onnx", "torch.onnx._internal.exporter._registration", "root", "onnxruntime"):
        logging.getLogger(name).setLevel(logging.ERROR)


def onnx_session(path: str | Path):
    """An onnxruntime.InferenceSession on the CPU with one thread: a phone core, and fair next to 1-thread torch (notebook 08)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing .onnx file (write one with export_onnx), got {str(path)!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as problem:  # onnxruntime raises its own error types for a file that is not ONNX
        raise ValueError(f"{str(path)!r} is not a model ONNX Runtime can load: {str(problem).splitlines()[0]}") from None


def onnx_feed(tokens: Tokens) -> dict[str, np.ndarray]:
    """The inputs an exported model expects, by name, as int64 numpy arrays."""
    return {"input_ids": tokens.input_ids.numpy().astype(np.int64), "attention_mask": tokens.attention_mask.numpy().astype(np.int64)}


def onnx_predict_logits(session, tokens: Tokens, batch_size: int = 256) -> Tensor:
    """Logits for every row from an ONNX Runtime session, batch by batch like predict_logits (notebook 08)."""
    _check_tokens(tokens, "tokens")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    names = {i.name for i in session.get_inputs()}
    if names != set(ONNX_INPUTS):
        raise ValueError(f"session must take {', '.join(ONNX_INPUTS)} (a model from export_onnx), it takes {', '.join(sorted(names))}")
    chunks = []
    for start in range(0, len(tokens), batch_size):
        batch = tokens.select(torch.arange(start, min(start + batch_size, len(tokens))))
        chunks.append(torch.from_numpy(session.run(["logits"], onnx_feed(batch))[0]))
    return torch.cat(chunks)


def quantize_onnx_int8(path: str | Path, int8_path: str | Path) -> Path:
    """ONNX Runtime's own dynamic int8 (MatMul/Gemm weights and embedding Gathers), no calibration data (notebook 08).

    Like torch's dynamic quantization: int8 weights, activations quantized per call with their own range.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path, int8_path = Path(path), Path(int8_path)
    if not path.is_file():
        raise ValueError(f"path must be an existing .onnx file (write one with export_onnx), got {str(path)!r}")
    if int8_path.suffix != ".onnx" or int8_path.resolve() == path.resolve():
        raise ValueError(f"int8_path must be a new .onnx file next to the float one, got {str(int8_path)!r}")
    _quiet_onnx_logs()
    quantize_dynamic(str(path), str(int8_path), weight_type=QuantType.QInt8)
    return int8_path


def quantize_onnx_static_int8(path: str | Path, int8_path: str | Path, calibration_tokens: Tokens,
                              batch_size: int = 32) -> Path:
    """ONNX Runtime's static int8: activation ranges fixed beforehand from calibration rows (e.g. train queries).

    No per-call range finding at inference, so it can be faster than dynamic int8, but the ranges are only as good
    as the calibration rows are typical: calibrate on train, never on the test rows you report.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    path, int8_path = Path(path), Path(int8_path)
    if not path.is_file():
        raise ValueError(f"path must be an existing .onnx file (write one with export_onnx), got {str(path)!r}")
    if int8_path.suffix != ".onnx" or int8_path.resolve() == path.resolve():
        raise ValueError(f"int8_path must be a new .onnx file next to the float one, got {str(int8_path)!r}")
    _check_tokens(calibration_tokens, "calibration_tokens")
    batches = [onnx_feed(calibration_tokens.select(torch.arange(start, min(start + batch_size, len(calibration_tokens)))))
               for start in range(0, len(calibration_tokens), batch_size)]

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.remaining = iter(batches)

        def get_next(self):
            return next(self.remaining, None)

    _quiet_onnx_logs()
    # QOperator (fused int8 ops), not QDQ: with QDQ the bag student ran ~14× slower at batch 1 in onnxruntime 1.32.
    quantize_static(str(path), str(int8_path), Batches(), quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm", "Gather"])
    return int8_path


# --- ExecuTorch: the runtime that ships inside phone apps (an optional extra: requirements-edge.txt) ---

EDGE_REQUIREMENTS = "requirements-edge.txt"


class MissingEdgeExtra(ImportError):
    """ExecuTorch is not installed: an optional extra (~215 MB), left out of the Binder image to fit its 2 GB budget."""


def _executorch_modules():
    """(to_edge_transform_and_lower, XnnpackPartitioner, Runtime), or MissingEdgeExtra saying what to install."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
        from executorch.runtime import Runtime
    except ImportError as problem:
        raise MissingEdgeExtra(
            f"ExecuTorch is an optional extra, not installed here ({problem}). Install it with "
            f"`pip install -r {EDGE_REQUIREMENTS}` from the repository root (about 215 MB; Binder leaves it out), "
            "then restart the kernel.") from None
    return to_edge_transform_and_lower, XnnpackPartitioner, Runtime


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide what C++ code writes to file descriptor 2 (ExecuTorch's runtime logs CPU probing at start); keep Python's."""
    import sys

    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (some embedded interpreters): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _position_cap(model: nn.Module, default: int = 512) -> int:
    """The longest input a model takes: its position table's size (BERT family), else `default`."""
    sizes = [m.num_embeddings for name, m in model.named_modules()
             if name.endswith("position_embeddings") and isinstance(m, nn.Embedding)]
    return min(sizes + [default])


def export_executorch(model: nn.Module, example_tokens: Tokens, path: str | Path) -> Path:
    """A .pte file for ExecuTorch, the runtime inside phone apps, lowered to XNNPACK's CPU kernels (notebook 08).

    One query at a time (batch 1, as an app answers one user) of any length from 2 tokens to the model's position limit
    (512 for a bag student): XNNPACK's reshapes take only one dynamic axis. A BagStudent is lowered in its `exportable`
    form (the prebuilt runtime has no EmbeddingBag kernel). Needs the optional extra: `pip install -r requirements-edge.txt`.
    `cached_executorch` keeps the file in .cache, since lowering takes tens of seconds.
    """
    path = Path(path)
    if path.suffix != ".pte":
        raise ValueError(f"path must end in .pte, got {str(path)!r}")
    _check_tokens(example_tokens, "example_tokens")
    lower, Partitioner, _ = _executorch_modules()  # before any work: say what to install first
    model = exportable(model)
    length = int(example_tokens.attention_mask[0].sum())
    cap = _position_cap(model)
    if not 2 <= length <= cap:
        raise ValueError(f"the first row of example_tokens has {length} real tokens; it needs 2 to {cap} for the length "
                         "to stay free: pass real queries, e.g. cache.tokens['dev'].select(range(8))")
    one = example_tokens.select([0])
    inputs = (one.input_ids[:, :length].contiguous(), one.attention_mask[:, :length].contiguous())
    _dynamic_example(model, Tokens(*(torch.cat([x, x]) for x in inputs)))  # the student protocol, checked with a clear error
    sequence = torch.export.Dim("sequence", min=2, max=cap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers probes renamed attributes while tracing
        program = torch.export.export(model, inputs, dynamic_shapes=({1: sequence}, {1: sequence}))
        lowered = lower(program, partitioner=[Partitioner()]).to_executorch()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lowered.buffer)
    return path


def cached_executorch(model: nn.Module, example_tokens: Tokens) -> Path:
    """The model's .pte file from .cache, lowered with export_executorch the first time only (notebook 08).

    Lowering takes tens of seconds on a CPU; the file is keyed by the model's class and every weight's checksum (and
    the torch and executorch versions), so a retrained or changed model gets a new file, never a stale one.
    """
    import importlib.metadata

    from .cache import atomic_file, cache_root

    _check_float_student(model)
    _check_tokens(example_tokens, "example_tokens")
    _executorch_modules()  # say what to install before any work
    digest = hashlib.sha256(f"{type(model).__qualname__} torch {torch.__version__} executorch "
                            f"{importlib.metadata.version('executorch')}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name} {tensor_checksum(tensor)}".encode())
    path = cache_root() / "executorch" / f"{type(model).__name__}-{digest.hexdigest()[:16]}.pte"
    if path.is_file():
        return path
    with atomic_file(path, suffix=".pte") as partial:  # a crash never leaves a half-written program behind
        export_executorch(model, example_tokens, partial)
    return path


@dataclass
class ExecuTorchModel:
    """A loaded .pte program's forward method and the longest query it accepts (from the file's memory plan)."""

    method: object
    max_length: int

    def __call__(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Logits for one query (a 1 × length batch, no padding), as the phone app would get them."""
        return self.method.execute((input_ids, attention_mask))[0]


def executorch_program(path: str | Path, threads: int = 1) -> ExecuTorchModel:
    """Load a .pte file into ExecuTorch's runtime (its Python bindings; a phone app calls the same C++) (notebook 08).

    `threads`: the size of XNNPACK's thread pool, shared by every loaded program (default 1: a phone core, and fair
    next to 1-thread torch and ONNX Runtime).
    """
    path = Path(path)
    if not path.is_file() or path.suffix != ".pte":
        raise ValueError(f"path must be an existing .pte file (write one with export_executorch), got {str(path)!r}")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be an integer ≥ 1, got {threads!r}")
    _, _, Runtime = _executorch_modules()
    from executorch.extension.pybindings import portable_lib

    with _quiet_native_stderr():
        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)  # "unsafe" only while a program runs; none does here
        try:
            program = Runtime.get().load_program(path)
            method = program.load_method("forward")
        except RuntimeError as problem:
            raise ValueError(f"{str(path)!r} is not a program ExecuTorch can load: {str(problem).splitlines()[0]}") from None
    meta = method.metadata
    if meta.num_inputs() != len(ONNX_INPUTS):
        raise ValueError(f"{str(path)!r} takes {meta.num_inputs()} inputs; a model from export_executorch takes "
                         f"{', '.join(ONNX_INPUTS)}")
    return ExecuTorchModel(method, int(meta.input_tensor_meta(0).sizes()[1]))


def executorch_logits(program: ExecuTorchModel, tokens: Tokens) -> Tensor:
    """Logits for every row, one query at a time with its padding trimmed, like predict_logits (notebook 08)."""
    if not isinstance(program, ExecuTorchModel):
        raise ValueError(f"program must come from executorch_program(path), got {type(program).__name__}")
    _check_tokens(tokens, "tokens")
    lengths = tokens.attention_mask.sum(dim=1)
    right_padded = tokens.attention_mask == (torch.arange(tokens.attention_mask.shape[1]) < lengths[:, None])
    if not bool(right_padded.all()):
        raise ValueError("tokens must be padded on the right (mask 1…1 0…0 per row), as kdlab's tokenizers pad")
    too_long = int(lengths.max())
    if too_long > program.max_length or int(lengths.min()) < 2:
        raise ValueError(f"every row must have 2 to {program.max_length} real tokens for this program, "
                         f"got {int(lengths.min())} to {too_long}: trim or drop those rows")
    rows = []
    for row, length in enumerate(lengths.tolist()):
        ids = tokens.input_ids[row:row + 1, :length].contiguous()
        rows.append(program(ids, tokens.attention_mask[row:row + 1, :length].contiguous()))
    return torch.cat(rows)


def file_size_mb(path: str | Path) -> float:
    """Megabytes (10⁶ bytes) of a file: what a phone downloads for an exported model (notebook 08)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing file, got {str(path)!r}")
    return path.stat().st_size / 1e6


@dataclass
class Agreement:
    """How faithful a converted model is: share of same top-1 predictions, largest logit change."""

    agreement: float
    max_abs_logit_diff: float


def same_predictions(a: nn.Module, b: nn.Module, tokens: Tokens, batch_size: int = 256) -> Agreement:
    """Compare two models on the same rows: a conversion should change speed and size, not answers."""
    from .training import predict_logits

    _check_tokens(tokens, "tokens")
    logits_a = predict_logits(a, tokens, batch_size, torch.device("cpu"))
    logits_b = predict_logits(b, tokens, batch_size, torch.device("cpu"))
    if logits_a.shape != logits_b.shape:
        raise ValueError(f"the models give logits of different shapes: {tuple(logits_a.shape)} vs {tuple(logits_b.shape)}")
    agreement = (logits_a.argmax(dim=1) == logits_b.argmax(dim=1)).float().mean().item()
    return Agreement(agreement, (logits_a - logits_b).abs().max().item())


# Energy per operation at 45 nm, 0.9 V: M. Horowitz, "Computing's energy problem (and what we can do about it)",
# ISSCC 2014, pp. 10–14 (Figure 1.1.9). Newer process nodes are cheaper per operation, but the ratios hold roughly.
ENERGY_PJ_45NM = {"fp32 multiply": 3.7, "fp32 add": 0.9, "dram read per 32 bits": 640.0}


@dataclass
class EnergyEstimate:
    """Per-query energy from operation counts, not a meter: multiply-accumulates and weight bytes read from DRAM."""

    macs: float
    dram_bytes: float
    compute_uj: float
    memory_uj: float

    @property
    def total_uj(self) -> float:
        return self.compute_uj + self.memory_uj


def energy_estimate(model: nn.Module, tokens: Tokens, max_queries: int = 100) -> EnergyEstimate:
    """Average batch-1 energy per query, estimated (a VM cannot meter it) with ENERGY_PJ_45NM.

    MACs: torch.utils.flop_counter on each query (matrix products and attention; a lookup costs none) / 2, each MAC
    an fp32 multiply and add. Memory: every weight read once from DRAM per query (batch 1: nothing is reused
    across queries), except embedding tables, of which only the query's rows are read; activations are left out.
    """
    from torch.utils.flop_counter import FlopCounterMode

    _check_tokens(tokens, "tokens")
    _check_float_student(model)
    model.eval()
    tables = [m for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    table_ids = {id(m.weight) for m in tables}
    dense_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in table_ids)
    macs, dram = [], []
    for i in range(min(max_queries, len(tokens))):
        one = tokens.select([i])
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            model(one.input_ids, one.attention_mask)
        macs.append(counter.get_total_flops() / 2)
        rows = one.input_ids.shape[1]  # each table (word, position, token type) is read once per token
        dram.append(dense_bytes + sum(rows * m.weight.shape[1] * m.weight.element_size() for m in tables))
    mac, byte = float(np.mean(macs)), float(np.mean(dram))
    pj = ENERGY_PJ_45NM
    return EnergyEstimate(mac, byte, mac * (pj["fp32 multiply"] + pj["fp32 add"]) / 1e6,
                          byte / 4 * pj["dram read per 32 bits"] / 1e6)


def pareto_front(latencies: list[float], accuracies: list[float]) -> list[int]:
    """Indices of the models no other beats on both axes (faster and at least as accurate), fastest first."""
    if len(latencies) != len(accuracies):
        raise ValueError(f"latencies ({len(latencies)}) and accuracies ({len(accuracies)}) must have the same length")
    order = sorted(range(len(latencies)), key=lambda i: (latencies[i], -accuracies[i]))
    front, best = [], -float("inf")
    for i in order:
        if accuracies[i] > best:  # better than everything faster: worth its extra latency
            front.append(i)
            best = accuracies[i]
    return front


def results_frame(rows: list[dict]):
    """The rows as a pandas table with units in the headers, ready to display."""
    import pandas as pd

    frame = pd.DataFrame([{k: v for k, v in row.items() if k != "predictions"} for row in rows]).set_index("model")
    frame["params"] = frame["params"] / 1e6
    for column in ("accuracy", "accuracy_cost", "agreement"):
        if column in frame:
            frame[column] = 100 * frame[column]
    names = {
        "params": "params (M)", "size_mb": "size on disk (MB)", "latency_median_ms": "latency median (ms)",
        "latency_p95_ms": "latency p95 (ms)", "throughput_per_s": "throughput batch 32 (examples/s)",
        "accuracy": "test accuracy (%)", "accuracy_cost": "int8 accuracy cost (pp)", "agreement": "agrees with float (%)",
    }
    return frame.rename(columns=names).round(2)


def deployment_row(name: str, model: nn.Module, tokens: Tokens, labels: Tensor, params: int | None = None,
                   logits: Tensor | None = None, baseline: dict | None = None, repeats: int = 100,
                   max_examples: int = 512) -> dict:
    """One results-table row: parameters, size, batch-1 latency, batch-32 throughput, test accuracy.

    Pass `logits` when the model's logits on `tokens` are already known (the teacher's, from its cache)
    to skip re-evaluating. Pass the float model's row as `baseline` for a converted (e.g. int8) model:
    the row then also holds its accuracy cost and how often it agrees with the float model.
    """
    from .students import count_parameters
    from .training import predict_logits, throughput

    if logits is None:
        logits = predict_logits(model, tokens, batch_size=64)  # small batches keep peak memory low
    if logits.shape[0] != len(tokens) or len(labels) != len(tokens):
        raise ValueError(f"logits ({logits.shape[0]} rows), labels ({len(labels)}) and tokens ({len(tokens)}) must match")
    predictions = logits.argmax(dim=1)
    latency = latency_ms(model, tokens, repeats=repeats)
    row = {
        "model": name,
        # A quantized model's int8 weights are not nn.Parameters any more; pass the float model's count.
        "params": count_parameters(model) if params is None else params,
        "size_mb": size_on_disk_mb(model),
        "latency_median_ms": latency.median_ms,
        "latency_p95_ms": latency.p95_ms,
        "throughput_per_s": throughput(model, tokens, batch_size=32, max_examples=max_examples),
        "accuracy": (predictions == labels).float().mean().item(),
        "predictions": predictions,
    }
    if baseline is not None:
        row["accuracy_cost"] = row["accuracy"] - baseline["accuracy"]
        row["agreement"] = (predictions == baseline["predictions"]).float().mean().item()
    return row


# Epochs the deployment benchmark trains each KD student for (bag: its default; the encoders fewer, to fit
# ~15 min on 2 shared cores). The notebook asks for the same settings, so it loads what the benchmark saved.
# truncated, 1 epoch on 1 thread (≈ 5.5 CPU-minutes): lr 1e-4 → 65.9% test, lr 5e-4 → 87.6%, lr 5e-4 with the
# teacher's head → 93.2% dev / 91.9% test; a 2nd epoch gave 93.4% dev / 93.0% test for twice the time.
DEPLOYMENT_EPOCHS = {"bag": 15, "tiny-bert": 2, "truncated": 1}

# Students whose classifier starts from the teacher's trained head: decided once, in kdlab.students.
HEAD_FROM_TEACHER = STARTS_FROM_TEACHER_HEAD

# What benchmarks/deployment.py measured, committed so a fresh clone can show the encoder students' rows
# without training them (minutes per epoch on a CPU, and more memory than a Binder notebook may use).
BENCHMARK_RESULTS = REPO_ROOT / "benchmarks" / "results" / "deployment.json"


# --- trained students kept on disk, so the benchmark trains once and the notebook loads in a second ---

def student_cache_path(cache, *, kind: str, settings: dict, seed: int) -> Path:
    """Where a trained student lives: keyed by teacher cache, kind, training settings and seed."""
    from .cache import cache_root

    payload = json.dumps({"teacher_cache": cache.key, "kind": kind, "settings": settings, "seed": seed}, sort_keys=True)
    key = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return cache_root() / "students" / f"{kind}-{key}.safetensors"


def tensor_checksum(tensor: Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes: any changed weight, or the same bytes read as another shape, differ."""
    digest = hashlib.sha256(f"{tensor.dtype} {tuple(tensor.shape)}".encode())
    digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_student_file(state: dict[str, Tensor], path: Path, recipe: dict) -> None:
    """Write a state dict with each tensor's checksum in the file's metadata, atomically.

    The file is written under a unique temporary name in the same folder and then renamed over `path`
    (os.replace is atomic), so a crash or a second process saving at the same moment never leaves a half-written file.
    """
    from safetensors.torch import save_file

    from .cache import atomic_file

    state = {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}
    metadata = {"kdlab": json.dumps(recipe, sort_keys=True),
                "sha256": json.dumps({name: tensor_checksum(tensor) for name, tensor in state.items()}, sort_keys=True)}
    with atomic_file(path) as partial:
        save_file(state, partial, metadata=metadata)


def load_student_file(path: Path) -> tuple[dict[str, Tensor] | None, str]:
    """(state dict, "") if the file reads back and every tensor matches its saved checksum, else (None, what is wrong)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as problem:  # safetensors raises its own error types for a truncated or garbled file
        first_line = str(problem).splitlines()[0] if str(problem) else ""
        return None, f"it is unreadable ({type(problem).__name__}: {first_line})"
    try:
        expected = json.loads(metadata["sha256"])
    except (KeyError, ValueError):
        return None, "it has no checksums in its metadata (written by an older kdlab, or not by kdlab)"
    if not isinstance(expected, dict) or set(expected) != set(state):
        return None, "its checksums do not list the tensors it holds"
    damaged = [name for name, tensor in state.items() if tensor_checksum(tensor) != expected[name]]
    if damaged:
        return None, f"{len(damaged)} of its tensors do not match their checksums (first: {damaged[0]})"
    return state, ""


def trained_student(cache, tokenizer, *, kind: str = "bag", teacher_encoder: nn.Module | None = None, seed: int = 0,
                    temperature: float = 4.0, lam: float = 0.5, max_train_rows: int | None = None,
                    train: bool = True, progress: bool = False,
                    **hparams) -> tuple[nn.Module | None, bool]:
    """A KD student trained with these settings: loaded from .cache if trained before, else trained and saved.

    Returns (student, loaded_from_disk); with train=False, (None, False) when nothing usable is saved yet.
    `hparams` override kdlab.STUDENT_DEFAULTS[kind] (epochs, lr, batch_size); `max_train_rows` trains
    on the first rows of train only (a quick stand-in). Each kind starts as kdlab.student_start builds it (the
    truncated student from the teacher's layers and head). A saved file that is unreadable, truncated or
    whose tensors do not match the checksums saved with them is reported in one line and trained again.
    """
    from .students import student_start
    from .training import STUDENT_DEFAULTS, train_student

    if kind not in STUDENT_DEFAULTS:
        raise ValueError(f"kind must be one of {', '.join(STUDENT_DEFAULTS)}, got {kind!r}")
    if max_train_rows is not None and (not isinstance(max_train_rows, int) or max_train_rows < 1):
        raise ValueError(f"max_train_rows must be None or an integer ≥ 1, got {max_train_rows!r}")
    settings = {**STUDENT_DEFAULTS[kind], **hparams, "temperature": temperature, "lam": lam}
    # The head's start is part of the recipe, so part of the file's key (absent when off: older files still match).
    recipe = {**settings, "max_train_rows": max_train_rows, **({"head_from_teacher": True} if kind in HEAD_FROM_TEACHER else {})}
    path = student_cache_path(cache, kind=kind, settings=recipe, seed=seed)
    if not train and not path.exists():
        return None, False  # before building: a truncated student copies the whole teacher encoder first
    def fresh_student() -> nn.Module:
        return student_start(kind, cache, tokenizer, teacher_encoder=teacher_encoder, seed=seed)

    student = fresh_student()
    if path.exists():
        state, problem = load_student_file(path)
        if state is not None:
            try:
                student.load_state_dict(state)
                return student.eval(), True
            except RuntimeError as mismatch:  # intact, but for another architecture (missing or resized tensors)
                problem = f"it does not fit this student ({str(mismatch).splitlines()[0]})"
                student = fresh_student()  # load_state_dict may have copied some tensors before it failed
        print(f"Ignoring saved student {path.name}: {problem}; " + ("training it again." if train else "not training here."))
    if not train:
        return None, False
    rows = None if max_train_rows is None else torch.arange(min(max_train_rows, len(cache.ids["train"])))
    train_student(student, cache, seed=seed, rows=rows, progress=progress, **settings)
    save_student_file(student.state_dict(), path, {"kind": kind, "seed": seed, **recipe})
    return student.eval(), False


def benchmark_results(path: str | Path = BENCHMARK_RESULTS) -> BenchmarkResults:
    """The rows `python benchmarks/deployment.py --json PATH` wrote (default: the committed results file).

    .rows are the models' rows; .meta holds machine, date, test_queries, recipes, timings; .source labels them.
    A missing file raises FileNotFoundError, a malformed one ValueError, both naming the command that writes it.
    """
    return read_benchmark_results(path, measured_by="benchmarks/deployment.py",
                                  command=f"python benchmarks/deployment.py --json {path}", required=("test_queries",))


def _check_tokens(tokens: Tokens, name: str) -> None:
    """Refuse anything that is not a non-empty Tokens batch, naming the argument."""
    if not isinstance(tokens, Tokens):
        raise ValueError(f"{name} must be a kdlab Tokens batch (e.g. cache.tokens['test']), got {type(tokens).__name__}")
    if len(tokens) == 0:
        raise ValueError(f"{name} is empty; pass at least one example")


__all__ = [
    "BENCHMARK_RESULTS", "DEPLOYMENT_EPOCHS", "EDGE_REQUIREMENTS", "ExecuTorchModel", "MissingEdgeExtra",
    "cached_executorch", "export_executorch", "executorch_logits", "executorch_program", "ENERGY_PJ_45NM", "EnergyEstimate", "energy_estimate", "HEAD_FROM_TEACHER", "Agreement", "BenchmarkResults", "Int8Lookup", "Latency",
    "BagAsEmbedding", "ONNX_INPUTS", "benchmark_results", "deployment_row", "export_onnx", "export_program", "exportable",
    "file_size_mb", "results_frame", "latency_ms", "length_growth", "load_student_file", "onnx_feed", "onnx_predict_logits", "onnx_session",
    "program_module", "quantize_onnx_int8", "quantize_onnx_static_int8", "pareto_front", "quantize_dynamic_int8", "same_predictions", "save_student_file",
    "size_on_disk_mb", "student_cache_path", "tensor_checksum", "trained_student",
]
