"""What a record says about where it ran: the code version, packages, hardware and host speed."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "numpy", "pandas", "ray", "pyyaml", "psutil")


def code_version() -> dict[str, Any]:
    """Git commit of the code and whether the work tree had uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    from bench import __version__
    return {"version": __version__, "commit": commit or None, "dirty": dirty}


def environment(device) -> dict[str, Any]:
    """Package versions and hardware as psutil and torch see them (``device``: a torch.device)."""
    import psutil
    import torch

    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    hardware = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count_logical": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the vector instructions torch uses
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        # what "float32" and train.bf16 mean here (bench.core.loop.exact_float32, bench.core.model.run_lstm)
        "precision": {"tf32": bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32),
                      "bf16_lstm": "float32" if device.type == "cuda" else "bfloat16"},
        # bench.core.loop.deterministic_where_cheap: what is and is not made deterministic
        "determinism": ("exact" if device.type == "cpu" else
                        "cuDNN and cuBLAS deterministic; embedding backward not (atomics)"),
    }
    return {"python": sys.version.split()[0], "packages": packages, "hardware": hardware,
            "hostname": platform.node()}


# The host-speed probe's training step: an LSTM language model of the cpu profiles' size.
PROBE_VOCAB, PROBE_EMBED, PROBE_HIDDEN, PROBE_BATCH, PROBE_LENGTH = 2000, 64, 128, 16, 32
PROBE_STEPS = 10  # the best of these: a step slowed by other work time-sharing the core does not count


def host_speed(device) -> float:
    """Tokens per second of a fixed reference training step on ``device`` with the process's
    torch threads: an LSTM language model (vocabulary 2,000, embeddings 64, hidden 128, batch
    16 x 32 tokens, SGD), the best of ``PROBE_STEPS`` steps after one warm-up. On a CPU per
    second of the process's CPU time, so that other work time-sharing the cores does not lower
    it (``train_cpu_share`` records that); on a GPU per wall-clock second. About 0.4 s on a CPU
    in a process that has trained (the first LSTM step of a process costs about 2 s more).

    Why: two hosts with one hardware label can differ in speed (measured: one PTB configuration
    trained in 14 min on a 2-core host with AVX-512 and in 28 min on a 2-core host with AVX2
    only, each run with its core to itself), so training times are compared only between runs
    whose host speeds agree (:func:`bench.core.results.timing_problem`). The probe draws from its own
    random state: the run's seeded generator is left as it was."""
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        embed = nn.Embedding(PROBE_VOCAB, PROBE_EMBED).to(device)
        lstm = nn.LSTM(PROBE_EMBED, PROBE_HIDDEN, batch_first=True).to(device)
        output = nn.Linear(PROBE_HIDDEN, PROBE_VOCAB).to(device)
        tokens = torch.randint(0, PROBE_VOCAB, (PROBE_BATCH, PROBE_LENGTH + 1), device=device)
    parameters = [p for module in (embed, lstm, output) for p in module.parameters()]
    optimiser = torch.optim.SGD(parameters, lr=0.1)
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    best = float("inf")
    for step in range(PROBE_STEPS + 1):
        started = clock()
        hidden, _ = lstm(embed(tokens[:, :-1]))
        loss = nn.functional.cross_entropy(output(hidden).flatten(0, 1), tokens[:, 1:].flatten())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step:  # the first step warms up
            best = min(best, clock() - started)
    return PROBE_BATCH * PROBE_LENGTH / max(best, 1e-9)
