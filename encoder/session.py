"""ONNX Runtime sessions: provider choice, thread settings and I/O binding.

Provider ``auto`` uses CUDA when a CUDA device is present and the installed ONNX Runtime has
the CUDA provider; otherwise the CPU provider. The device probe goes through the CUDA driver
(``libcuda``) directly so that machines without a GPU print nothing: asking ONNX Runtime for
the CUDA provider there logs an error on every session.

Threads on CPU: ``intra_op_num_threads`` defaults to the number of cores this process may
use (2 on the development machine), ``inter_op_num_threads`` to 1 with sequential execution:
one batch at a time uses every core, and the micro-batcher never runs two batches at once.
Idle intra-op threads sleep rather than spin, leaving the cores to the worker's event loop
between batches.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from encoder.errors import InferenceError, ModelLoadError

Provider = Literal["auto", "cuda", "cpu"]
OUTPUT = "sentence_embedding"


@functools.cache
def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports; 0 when there is no driver or no device."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


def resolve_provider(provider: Provider) -> Literal["cuda", "cpu"]:
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if provider == "cpu":
        return "cpu"
    if provider == "cuda":
        if not has_cuda:
            raise ModelLoadError(
                "provider 'cuda' asked for, but this onnxruntime has no CUDA provider "
                "(install onnxruntime-gpu)"
            )
        if cuda_device_count() == 0:
            raise ModelLoadError("provider 'cuda' asked for, but no CUDA device is visible")
        return "cuda"
    return "cuda" if has_cuda and cuda_device_count() > 0 else "cpu"


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxSession:
    """One ONNX Runtime session: ``run(input_ids, attention_mask) -> float32 (batch, dim)``."""

    def __init__(self, path: Path, provider: Provider = "auto", threads: int | None = None) -> None:
        self.provider = resolve_provider(provider)
        self.threads = threads or default_threads()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        # Idle intra-op threads sleep instead of spinning: between micro-batches a spinning
        # thread held a core the event loop needs, for a few percent faster batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list[str | tuple[str, dict[str, str]]] = ["CPUExecutionProvider"]
        if self.provider == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": "0"}))
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own unrelated exception types
            raise ModelLoadError(f"{path}: ONNX Runtime cannot load the model ({exc})") from exc
        if self.provider == "cuda" and "CUDAExecutionProvider" not in self._session.get_providers():
            # ONNX Runtime falls back to the CPU quietly when the CUDA provider's libraries
            # (CUDA runtime, cuBLAS, cuDNN) fail to load; a run would then be CPU-speed.
            if provider == "cuda":
                raise ModelLoadError(
                    f"{path}: ONNX Runtime could not start its CUDA provider (are the CUDA "
                    "and cuDNN libraries it was built for on the library path?)"
                )
            self.provider = "cpu"
        names = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise ModelLoadError(
                f"{path}: inputs are {sorted(names)}, expected input_ids and attention_mask"
            )
        self._extra_inputs = {i.name for i in self._session.get_inputs()} - {
            "input_ids",
            "attention_mask",
        }

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        for name in self._extra_inputs:  # e.g. token_type_ids kept by some exports
            feeds[name] = np.zeros_like(input_ids)
        try:
            if self.provider == "cuda":
                return self._run_bound(feeds)
            out = self._session.run([OUTPUT], feeds)[0]
        except Exception as exc:
            raise InferenceError(
                f"ONNX Runtime failed on a batch {input_ids.shape}: {exc}"
            ) from exc
        return np.asarray(out, dtype=np.float32)

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        # I/O binding: inputs are copied to the device once, the output stays there until the
        # single copy back, instead of ONNX Runtime's extra staging copies per run.
        binding = self._session.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
        binding.bind_output(OUTPUT, "cuda", 0)
        self._session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32)
