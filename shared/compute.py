"""ONNX Runtime sessions that behave on a small, shared instance (2 cores, 2 GB).

ONNX Runtime's defaults suit a dedicated server: worker threads spin for a while after each run
waiting for more work (burning a core the event loop, the PDF parser or another Functions worker
needs), and the CPU memory arena keeps the largest intermediate tensors it ever served and never
returns them (a batch of 16 chunks of 256 tokens took the host from 1.6 to 3.5 GB in the
issue-16 measurements). Every in-process model we run (MiniLM for embeddings and the injection
detector) is created here instead:

- no spinning threads (intra- and inter-op): idle means idle;
- no CPU arena, no memory-pattern planning: tensors are freed when a run ends, so the process
  returns to its idle size after a burst;
- one run at a time per session (`RunGate`): the intra-op pool already uses every core, so
  concurrent runs (several activities embedding at once) would only multiply peak memory and
  thrash the caches.

Without the arena, tensors go back to the C allocator, and glibc's defaults keep them: its
mmap threshold rises to 32 MB after the first large free (so tensors of a few MB come from the
heap and stay there) and every thread may get its own heap (8 per core). `tune_allocator`,
called when the first model loads, fixes the threshold at MMAP_THRESHOLD (large tensors are
mapped and unmapped) and caps the heaps at ARENA_MAX: six activities embedding and screening 64
chunks each at once peaked 880 MB over the model's footprint with glibc's defaults, 249 MB with
these (in process, same run). And glibc keeps freed memory in its heaps: `release_memory`
(called when each ingestion activity ends) collects Python garbage and asks glibc to return
free pages to the system (`malloc_trim`), so the host goes back to its idle size between
documents (measured: 375 -> 222 MB after three threads embedded and screened 64 chunks each).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import onnxruntime as ort

T = TypeVar("T")

MMAP_THRESHOLD = 1 << 20  # bytes: larger allocations are mapped, and unmapped when freed
ARENA_MAX = 2  # glibc heaps: enough for the event loop and one model run at a time
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt parameters (malloc.h)

# Session config keys (onnxruntime_session_options_config_keys.h).
SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


def session_options(threads: int = 0) -> ort.SessionOptions:
    """Options for a CPU session: sequential, no spinning, no arena; `threads` 0 is every core."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    for key in SPIN_KEYS:
        options.add_session_config_entry(key, "0")
    return options


def cpu_session(model: Path, threads: int = 0) -> ort.InferenceSession:
    """An inference session on the CPU with `session_options`."""
    import onnxruntime as ort

    return ort.InferenceSession(
        str(model), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
    )


class RunGate:
    """Serialises the runs of one session across threads (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def run(self, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)` while no other run of this gate is in progress."""
        with self._lock:
            return call(*args)


@cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has malloc_trim and mallopt), else None (musl, macOS,
    Windows: nothing to tune)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
        library.malloc_trim  # noqa: B018 - raises AttributeError where it does not exist
        library.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return library


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None."""
    library = _glibc()
    return None if library is None else library.malloc_trim


@cache
def tune_allocator() -> bool:
    """Fixes glibc's mmap threshold and caps its heaps (see the module docstring), once per
    process; False where the C library is not glibc."""
    library = _glibc()
    if library is None:
        return False
    threshold = library.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    arenas = library.mallopt(_M_ARENA_MAX, ARENA_MAX)
    return bool(threshold and arenas)


def release_memory() -> bool:
    """Collects garbage and returns the allocator's free pages to the system; False where the
    C library cannot trim (collection still ran)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
