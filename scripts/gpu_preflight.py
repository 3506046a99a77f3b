"""The GPU check's first minute: does each thing that can only fail on a GPU work there?

    python scripts/gpu_preflight.py --device cuda --json OUT/preflight.json   # about 30 s
    python scripts/gpu_preflight.py --device cpu                              # the same checks on a CPU

Each check runs on the smoke profile's model (small: the point is the code path, not speed)
and is recorded as ok, failed (with the error's first line) or skipped (with why):

- ``train_mode``: every module is in train mode inside a training step, also after an IW
  evaluation was timed on the same trainer (cuDNN's LSTM has no backward in eval mode);
- ``double_backward``: one SA-VAE step (a second derivative through the LSTMs, with cuDNN off);
- ``bf16_dtypes``: under ``train.bf16`` the linear layers really run in bfloat16, and the LSTM
  in the precision the record says (``hardware.precision.bf16_lstm``);
- ``no_tf32``: float32 means float32 (TF32 off for cuDNN and matmuls);
- ``resume_across_devices``: a checkpoint written on this device loads to the CPU and back,
  RNG states included, and training goes on;
- ``bitwise``: 20 steps twice from one seed give identical parameters ("differs" is reported
  with the largest difference, not a failure: the embedding's CUDA backward uses atomics,
  bench.core.loop.deterministic_where_cheap).

Exit 0 when no check failed. Needs the checkout and torch; no data, no Ray.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.core import files, records  # noqa: E402
from bench.core.config import build_run_config  # noqa: E402
from bench.core.environment import environment  # noqa: E402
from bench.core.loop import Trainer, cpu_supports_bf16  # noqa: E402
from bench.core.method import build_method  # noqa: E402
from bench.cli.perf import random_corpus, time_iw  # noqa: E402

STEPS = 20


class Skip(Exception):
    """A check that does not apply on this device."""


def trainer(method: str, device: torch.device, **overrides) -> Trainer:
    config = build_run_config(method, "random", "smoke", 0, overrides)
    corpus = random_corpus(200, 12, 8 * config.data.batch_size)
    return Trainer(config, build_method(method, config.methods), corpus, device, log=lambda m: None)


def batches(t: Trainer) -> list[torch.Tensor]:
    return [b for b in t.train_data]


def check_train_mode(device: torch.device) -> str:
    t = trainer("vae", device)
    seen: list[bool] = []
    hooks = [m.register_forward_pre_hook(lambda module, _: seen.append(module.training)) for m in t.model.modules()]
    t.step_once(batches(t)[0])
    for hook in hooks:
        hook.remove()
    time_iw(t, sentences=2, samples=4)  # evaluation switches to eval mode, then must switch back
    hooks = [m.register_forward_pre_hook(lambda module, _: seen.append(module.training)) for m in t.model.modules()]
    t.step_once(batches(t)[1])
    for hook in hooks:
        hook.remove()
    if not seen or not all(seen):
        raise AssertionError(f"{seen.count(False)} of {len(seen)} module calls in a training step were in eval mode")
    return f"{len(seen)} module calls in two steps, all in train mode"


def check_double_backward(device: torch.device) -> str:
    t = trainer("sa_vae", device)
    stats = t.step_once(batches(t)[0])
    loss = float(stats.get("loss", float("nan"))) if isinstance(stats, dict) else float("nan")
    return f"one SA-VAE step (second derivative through the LSTMs); loss {loss:.3f}"


def check_bf16_dtypes(device: torch.device) -> str:
    if device.type == "cpu" and not cpu_supports_bf16():
        raise Skip("this CPU has no bfloat16 instructions (train.bf16 is refused here)")
    t = trainer("vae", device, train={"bf16": True})
    dtypes: dict[str, set[str]] = {}

    def spy(module, _, output):
        out = output[0] if isinstance(output, tuple) else output
        dtypes.setdefault(type(module).__name__, set()).add(str(out.dtype).replace("torch.", ""))
    hooks = [m.register_forward_hook(spy) for m in t.model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.LSTM))]
    t.step_once(batches(t)[0])
    for hook in hooks:
        hook.remove()
    expected_lstm = environment(device)["hardware"]["precision"]["bf16_lstm"]
    if "bfloat16" not in dtypes.get("Linear", set()):
        raise AssertionError(f"linear layers ran in {sorted(dtypes.get('Linear', []))}, not bfloat16")
    if dtypes.get("LSTM") and dtypes["LSTM"] != {expected_lstm}:
        raise AssertionError(f"the LSTM ran in {sorted(dtypes['LSTM'])}; the record would say {expected_lstm}")
    return ", ".join(f"{name}: {'/'.join(sorted(kinds))}" for name, kinds in sorted(dtypes.items()))


def check_no_tf32(device: torch.device) -> str:
    trainer("vae", device)
    flags = {"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
             "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    if any(flags.values()):
        raise AssertionError(f"TF32 is on: {flags}")
    return "TF32 off for cuDNN and matmuls; float32 matmul precision " + torch.get_float32_matmul_precision()


def check_resume_across_devices(device: torch.device) -> str:
    t = trainer("vae", device)
    t.step_once(batches(t)[0])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / records.CHECKPOINT_NAME
        files.save_checkpoint_atomic(path, {**t.state_dict(), **records.checkpoint_identity("preflight")})
        for target in {torch.device("cpu"), device}:
            resumed = trainer("vae", target)
            resumed.load_state_dict(records.load_checkpoint(path, target, "preflight"))
            resumed.step_once(batches(resumed)[1])
    return f"written on {device.type}, resumed on {', '.join(sorted({'cpu', device.type}))}, one more step each"


def check_bitwise(device: torch.device) -> str:
    def train_twenty() -> list[torch.Tensor]:
        t = trainer("vae", device)
        data = batches(t)
        for step in range(STEPS):
            t.step_once(data[step % len(data)])
        return [p.detach().double().cpu() for p in t.model.parameters()]
    first, second = train_twenty(), train_twenty()
    largest = max(float((a - b).abs().max()) for a, b in zip(first, second))
    return f"{STEPS} steps twice: identical" if largest == 0 else f"{STEPS} steps twice: differs (largest {largest:.3g})"


CHECKS: dict[str, Callable[[torch.device], str]] = {
    "train_mode": check_train_mode, "double_backward": check_double_backward, "bf16_dtypes": check_bf16_dtypes,
    "no_tf32": check_no_tf32, "resume_across_devices": check_resume_across_devices, "bitwise": check_bitwise}


def run_checks(device: torch.device, log=print) -> dict[str, dict]:
    results = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            results[name] = {"status": "ok", "detail": check(device)}
        except Skip as why:
            results[name] = {"status": "skipped", "detail": str(why)}
        except Exception as err:  # a check's failure is its result; the next check runs
            results[name] = {"status": "failed", "detail": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
                             if str(err) else type(err).__name__}
        results[name]["seconds"] = round(time.perf_counter() - started, 2)
        log(f"preflight {name}: {results[name]['status']}: {results[name]['detail']}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/gpu_preflight.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_preflight: --device cuda, but torch sees no GPU; use --device cpu", file=sys.stderr)
        return 2
    results = run_checks(device)
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "checks": results}, indent=1))
    return 1 if any(r["status"] == "failed" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
