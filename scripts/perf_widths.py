"""Training and IW throughput at every width of the paper-width axis, on this host, in one file.

    python scripts/perf_widths.py [--threads 1] [--steps 10] [--out results/perf]

For each width of ``experiments/scale_width_paper.yaml`` (and the base point's), runs
``python -m bench perf --profile cpu_text --length 25`` (PTB's mean sentence is about 25 tokens)
with that width's model settings and the base point's vocabulary (10k), float32, and bfloat16
too where this CPU has it (``--bf16``), and writes one JSON per host kind:
``<out>/width_axis_<cpu capability>.json`` (e.g. ``width_axis_AVX2.json``), each width's
training tokens/s, its GFLOP/s and their share of this host's float32 matmul rate, IW sentences/s
and peak memory. Run it with nothing else on the machine: a second process on the core halves
the numbers. About 2-4 min on an AVX-512 host, twice that with AVX2 only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTHS = {"w128 (base point)": (64, 128), "w512": (256, 512), "w1024": (512, 1024)}  # embed, LSTM units
LENGTH = 25  # tokens: PTB's mean sentence with its start and end tokens


def measure(embed: int, hidden: int, steps: int, threads: int, bf16: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "perf.json"
        command = [sys.executable, "-m", "bench", "perf", "--profile", "cpu_text", "--methods", "vae,pooling",
                   "--steps", str(steps), "--length", str(LENGTH), "--iw-sentences", "4", "--json", str(out),
                   "--set", "data.max_vocab=10000", "--set", f"model.embed_dim={embed}",
                   "--set", f"model.encoder_hidden={hidden}", "--set", f"model.decoder_hidden={hidden}",
                   *(["--bf16"] if bf16 else [])]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        subprocess.run(command, check=True, env=env)
        return json.loads(out.read_text())


def shares(measured: dict, rate: float) -> dict:
    """``measured`` with training's share of the matmul rate (bfloat16's from its token rate: same arithmetic)."""
    share = measured["train_gflop_per_s"] / rate
    extra = {"train_share_of_matmul_rate": share}
    if measured.get("train_bf16_tokens_per_s"):
        extra["train_bf16_share_of_float32_matmul_rate"] = (
            share * measured["train_bf16_tokens_per_s"] / measured["train_tokens_per_s"])
    return {**measured, **extra}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a sweep trial uses one core)")
    parser.add_argument("--out", type=Path, default=Path("results/perf"))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.core.loop import cpu_supports_bf16
    bf16 = cpu_supports_bf16()
    widths, hardware = {}, None
    for name, (embed, hidden) in WIDTHS.items():
        found = measure(embed, hidden, args.steps, args.threads, bf16)
        hardware = found["hardware"]
        rate = found["matmul_gflop_per_s"]
        widths[name] = {"shape": found["shape"], "matmul_gflop_per_s": rate,
                        "measurements": {method: shares(m, rate) for method, m in found["measurements"].items()}}
    kind = hardware["cpu_capability"]
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"width_axis_{kind}.json"
    target.write_text(json.dumps({"host_kind": kind, "hardware": hardware, "threads": args.threads,
                                  "bf16": bf16, "steps": args.steps, "length": LENGTH, "widths": widths}, indent=2) + "\n")
    for name, width in widths.items():
        for method, m in width["measurements"].items():
            print(f"{name:20s} {method:8s} {m['train_tokens_per_s']:9.0f} tokens/s  "
                  f"{100 * m['train_share_of_matmul_rate']:5.1f}% of {width['matmul_gflop_per_s']:.0f} GFLOP/s  "
                  f"IW {m['iw_sentences_per_s']:.2f} sentences/s")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
