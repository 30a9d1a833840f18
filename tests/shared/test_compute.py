"""ONNX Runtime sessions for a small shared instance: no spinning, no arena, one run at a time."""

from __future__ import annotations

import threading
import time

from shared.compute import SPIN_KEYS, RunGate, release_memory, session_options
from shared.embeddings.local import embed_batch, runtime


def test_session_options_never_spin_and_keep_no_arena() -> None:
    options = session_options()

    assert [options.get_session_config_entry(key) for key in SPIN_KEYS] == ["0", "0"]
    assert options.enable_cpu_mem_arena is False
    assert options.enable_mem_pattern is False
    assert options.inter_op_num_threads == 1


def test_the_embedding_session_is_made_with_them() -> None:
    used = runtime().session.get_session_options()

    assert [used.get_session_config_entry(key) for key in SPIN_KEYS] == ["0", "0"]
    assert used.enable_cpu_mem_arena is False
    assert embed_batch(["a short sentence"]).shape == (1, 384)


def test_run_gate_lets_one_run_at_a_time() -> None:
    gate = RunGate()
    inside = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.02)
        with lock:
            inside -= 1

    threads = [threading.Thread(target=gate.run, args=(work,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1


def test_release_memory_gives_freed_heap_back_to_the_system() -> None:
    import psutil

    process = psutil.Process()
    survivors: list[bytearray] = []

    def churn() -> None:
        # Blocks above pymalloc's 512 bytes come from glibc, in this thread's own heap.
        blocks = [bytearray(1000) for _ in range(150_000)]
        survivors.extend(blocks[::1000])  # a few kept, scattered through the heap

    release_memory()  # free heap left by earlier tests would absorb the churn unseen
    before = process.memory_info().rss
    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    grown = process.memory_info().rss
    assert grown - before > 100 * 2**20  # the churn really held ~150 MB at its peak

    assert release_memory() is True  # glibc (the Functions Linux images and this machine)
    assert process.memory_info().rss - before < (grown - before) / 3


def test_the_allocator_is_tuned_when_the_model_loads() -> None:
    from shared.compute import tune_allocator

    runtime()  # loads the model, which tunes the allocator first
    assert tune_allocator.cache_info().currsize == 1
    assert tune_allocator() is True  # glibc accepted both settings
