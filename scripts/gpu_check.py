"""The project's GPU check: one command that measures the GPU path and writes it all to one folder.

    python scripts/gpu_check.py prepare --reference ~/src/vae-lagging-encoder --data-dir ../shared/data
    python scripts/gpu_check.py run OUT            # on the GPU machine: at most 7.8 minutes of stages
    python scripts/gpu_check.py run OUT --smoke    # the same stages on a CPU with a tiny model, about 2 minutes

``prepare`` copies what the GPU machine cannot reach into the git-ignored folder ``.gpu_carry/``:
the ``yahoo_resplit`` data and, if given, a scratch copy of He et al.'s implementation (never
committed; only its ``modules/`` are needed). ``run`` then needs nothing but the checkout, that
folder, and Python with torch, pandas, tabulate, pyyaml, psutil and tqdm (no Ray, no network).

Stages, each a subprocess with its own time limit (a stage that fails or runs out of time is
recorded as such and the next one runs; the limits add up to 530 s, so one attempt fits a
10-minute command with room for start-up; ``--smoke`` gives each stage four times its limit,
because a busy CPU, not the stage, is then what runs slow, and the smoke run checks that every
stage works, not how fast):

0. ``preflight`` (60 s): scripts/gpu_preflight.py: train mode in every training step, SA-VAE's
   double backward, the bfloat16 dtypes actually used, TF32 off, a checkpoint resumed across
   devices, 20 steps twice bit for bit; so that the GPU's first minute says what works;
1. ``perf`` (110 s): ``bench.cli.perf --profile paper --bf16`` for vae, pooling, aggressive and
   sa_vae: training tokens/s, IW sentences/s (K = 500), share of the device's measured float32
   matmul rate, peak memory, bfloat16 training and IW speed with the IW NLL change on the same
   samples;
2. ``packing`` (80 s): ``bench.cli.perf --concurrent 1,2,4,8`` (trials per GPU);
3. ``reference`` (70 s): ``scripts/speed_vs_reference.py`` on the same device (skipped, saying
   so, without a reference copy);
4. ``short_training`` (150 s): short paper-size runs on ``yahoo_resplit`` as concurrent
   ``bench.cli.train`` processes, vae and max pooling on all 10,000 training documents, each
   stopping after the epoch that passes its training-time budget;
5. ``aggressive`` (60 s): aggressive training alone on the first 300 documents, one epoch (an
   aggressive epoch costs about 30 VAE epochs, so it is timed where it can finish one).

Per epoch of each run: validation ELBO, KL, MI, AU, encoder-feature dispersion and tokens/s,
read from the run's record or, for a run cut off by its stage's limit, from its last epoch
checkpoint. ``OUT`` receives ``gpu_check.log`` (everything printed), ``summary.json`` (each
stage's command, status and seconds) and one JSON per stage: ``preflight.json``,
``perf.json``, ``packing.json``, ``speed_vs_reference.json``, ``short_training.json``,
``aggressive.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / ".gpu_carry"
CARRIED_DATASET = "yahoo_resplit"
EPOCH_FIELDS = ("epoch", "valid_elbo_nll", "valid_kl", "valid_mi", "valid_au", "valid_feature_cosine_distance",
                "train_tokens_per_s", "train_seconds", "elapsed_seconds")
SMOKE_SLACK = 4  # --smoke: each stage's limit times this (a CPU shared with other work is slow)
TRAINING_SHARED = ["--set", "train.max_epochs=50", "--set", "eval.iw_max_sentences=200", "--set", "eval.iw_samples=100"]


def stage_plan(out: Path, smoke: bool, reference: Path | None, runs_root: Path) -> list[dict]:
    """The stages: name, time limit (s), command, or for training a list of labelled runs."""
    python = sys.executable
    profile, device = ("smoke", "cpu") if smoke else ("paper", "cuda")
    perf = [python, "-m", "bench.cli.perf", "--profile", profile, "--device", device]
    stages = [
        {"name": "preflight", "limit": 60,
         "command": [python, "scripts/gpu_preflight.py", "--device", device, "--json", str(out / "preflight.json")]},
        {"name": "perf", "limit": 110,
         "command": perf + ["--methods", "vae,pooling,aggressive,sa_vae", "--steps", "2" if smoke else "10", "--bf16",
                            "--iw-sentences", "4" if smoke else "32", "--json", str(out / "perf.json")]},
        {"name": "packing", "limit": 80,
         "command": perf + ["--concurrent", "1,2" if smoke else "1,2,4,8", "--steps", "2" if smoke else "20",
                            "--length", "20" if smoke else "200",  # Yahoo's longest documents: memory per trial
                            "--json", str(out / "packing.json")]},
        {"name": "reference", "limit": 70, "skip": None if reference else
         f"no reference copy at {CARRY / 'vae-lagging-encoder'} (scripts/gpu_check.py prepare --reference DIR)",
         "command": [python, "scripts/speed_vs_reference.py", "--reference", str(reference), "--device", device, "--bf16",
                     "--json", str(out / "speed_vs_reference.json")]
                    + (["--sizes", "16/32@8", "--vocab", "200", "--length", "10", "--rounds", "2", "--steps", "2"]
                       if smoke else ["--sizes", "512/1024@500,128/256@100", "--rounds", "3", "--steps", "10",
                                      "--iw-sentences", "8"])},
    ]
    if smoke:
        dataset, budget = ["--dataset", "synthetic", "--profile", "smoke"], []
        runs = {"vae": ["--method", "vae"], "pooling": ["--method", "pooling"]}
        alone = {"aggressive": ["--method", "aggressive"]}
    else:
        dataset = ["--dataset", CARRIED_DATASET, "--profile", "paper", "--data-dir", str(CARRY / "data")]
        budget = ["--set", "train.max_train_minutes=1.5"] + TRAINING_SHARED
        runs = {"vae": ["--method", "vae"], "pooling_max": ["--method", "pooling"]}
        # an aggressive epoch costs about 30 VAE epochs: alone, on few documents, so that one finishes
        alone = {"aggressive_300": ["--method", "aggressive", "--set", "data.max_train_sentences=300",
                                    "--set", "train.max_epochs=1"]}

    def training(name: str, limit: int, chosen: dict) -> dict:
        return {"name": name, "limit": limit, "json": f"{name}.json", "runs_root": runs_root,
                "runs": {label: [python, "-m", "bench.cli.train", "--device", device, "--quiet", *dataset, *budget,
                                 *arguments, "--out", str(runs_root / label)] for label, arguments in chosen.items()}}
    stages += [training("short_training", 150, runs), training("aggressive", 60, alone)]
    for stage in stages:
        stage["limit"] *= SMOKE_SLACK if smoke else 1
    return stages


def run_stage(stage: dict, log) -> dict:
    """Run one stage's command under its time limit; its output goes to the log."""
    started = time.perf_counter()
    if stage.get("skip"):
        log(f"== {stage['name']}: skipped: {stage['skip']}")
        return {"name": stage["name"], "status": "skipped", "reason": stage["skip"]}
    log(f"== {stage['name']} (limit {stage['limit']} s): {' '.join(stage['command'])}")
    try:
        done = subprocess.run(stage["command"], cwd=ROOT, capture_output=True, text=True, timeout=stage["limit"])
        log(done.stdout + done.stderr)
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
    except subprocess.TimeoutExpired as expired:
        log(_text(expired.stdout) + _text(expired.stderr))
        status = f"out of time after {stage['limit']} s"
    seconds = time.perf_counter() - started
    log(f"== {stage['name']}: {status} in {seconds:.0f} s")
    return {"name": stage["name"], "status": status, "seconds": seconds, "command": stage["command"]}


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def run_training(stage: dict, out: Path, log) -> dict:
    """Start every training run at once, wait up to the stage's limit, then collect the epochs."""
    started = time.perf_counter()
    runs_root = stage["runs_root"]
    environment = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // len(stage["runs"]))))
    processes = {}
    for label, command in stage["runs"].items():
        log(f"== training {label}: {' '.join(command)}")
        processes[label] = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True)
    deadline = started + stage["limit"]
    statuses = {}
    for label, process in processes.items():
        try:
            output, _ = process.communicate(timeout=max(1.0, deadline - time.perf_counter()))
            statuses[label] = "ok" if process.returncode == 0 else f"failed (exit {process.returncode})"
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            statuses[label] = f"stopped at the stage limit of {stage['limit']} s"
        log(f"-- {label}: {statuses[label]}\n{output}")
    runs = {label: {"status": statuses[label], "command": command, **collect_run(runs_root / label)}
            for label, command in stage["runs"].items()}
    (out / stage["json"]).write_text(json.dumps(runs, indent=1))
    for label, run in runs.items():
        for row in run["epochs"]:
            log(f"   {label:14s} epoch {row['epoch']:2d}  ELBO {row['valid_elbo_nll']:.2f}  KL {row['valid_kl']:.2f}  "
                f"MI {row['valid_mi']:.2f}  AU {row['valid_au']}  h(x) cos-dist "
                f"{row.get('valid_feature_cosine_distance', float('nan')):.3f}  {row['train_tokens_per_s']:,.0f} tok/s")
    seconds = time.perf_counter() - started
    status = "ok" if all(s == "ok" for s in statuses.values()) else "partial"
    log(f"== {stage['name']}: {status} in {seconds:.0f} s")
    return {"name": stage["name"], "status": status, "seconds": seconds, "runs": statuses}


def collect_run(folder: Path) -> dict:
    """Per-epoch validation rows (and test metrics when finished) of the one run under ``folder``."""
    record = next(folder.rglob("record.json"), None)
    if record is not None:
        data = json.loads(record.read_text())
        test = {k: v for k, v in (data.get("metrics", {}).get("test") or {}).items() if k != "nll_per_sentence"}
        return {"epochs": _epochs(data.get("curves", [])), "test": test or None,
                "run_status": data.get("status")}
    checkpoint = next(folder.rglob("checkpoint.pt"), None)
    if checkpoint is None:
        return {"epochs": [], "test": None, "run_status": "no epoch finished"}
    import torch
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return {"epochs": _epochs(state.get("curves", [])), "test": None, "run_status": "cut off (last checkpoint)"}


def _epochs(curves: list[dict]) -> list[dict]:
    return [{key: row[key] for key in EPOCH_FIELDS if key in row} for row in curves]


def run(out: Path, smoke: bool, reference: Path | None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    if reference is None and (CARRY / "vae-lagging-encoder").is_dir():
        reference = CARRY / "vae-lagging-encoder"
    if not smoke and not (CARRY / "data" / CARRIED_DATASET).is_dir():
        print(f"gpu_check: {CARRY / 'data' / CARRIED_DATASET} is missing; run `python scripts/gpu_check.py prepare "
              "--data-dir DIR` first and carry .gpu_carry", file=sys.stderr)
        return 2
    log_file = (out / "gpu_check.log").open("w")

    def log(message: str) -> None:
        print(message, flush=True)
        log_file.write(message + "\n")
        log_file.flush()

    started = time.perf_counter()
    summary = []
    runs_root = Path(tempfile.mkdtemp(prefix="gpu_check_runs-"))  # fresh: no run resumes an older check's state
    for stage in stage_plan(out, smoke, reference, runs_root):
        summary.append(run_training(stage, out, log) if "runs" in stage else run_stage(stage, log))
        (out / "summary.json").write_text(json.dumps({"smoke": smoke, "stages": summary,
                                                      "seconds": time.perf_counter() - started}, indent=1))
    log(f"gpu_check: {', '.join(s['name'] + ' ' + s['status'] for s in summary)}; "
        f"{(time.perf_counter() - started) / 60:.1f} min; files in {out}")
    log_file.close()
    shutil.rmtree(runs_root, ignore_errors=True)  # paper-size checkpoints; their epochs are in the stages' JSON
    return 0 if all(s["status"] in ("ok", "skipped") for s in summary) else 1


def prepare(reference: Path | None, data_dir: str | None) -> int:
    """Copy the data (and the reference's code) into .gpu_carry/ for the device machine."""
    data_dir = data_dir or os.environ.get("BENCH_DATA_DIR")
    source = Path(data_dir or "") / CARRIED_DATASET
    if not data_dir or not source.is_dir():
        print(f"gpu_check prepare: no {CARRIED_DATASET} folder under the data directory {data_dir!r}; pass --data-dir "
              "DIR or set BENCH_DATA_DIR", file=sys.stderr)
        return 2
    shutil.rmtree(CARRY / "data", ignore_errors=True)
    shutil.copytree(source, CARRY / "data" / CARRIED_DATASET)
    if reference is not None:
        if not (reference / "modules" / "vae.py").is_file():
            print(f"gpu_check prepare: {reference} has no modules/vae.py; pass a checkout of jxhe/vae-lagging-encoder",
                  file=sys.stderr)
            return 2
        shutil.rmtree(CARRY / "vae-lagging-encoder", ignore_errors=True)
        shutil.copytree(reference / "modules", CARRY / "vae-lagging-encoder" / "modules")
    size = sum(p.stat().st_size for p in CARRY.rglob("*") if p.is_file()) / 2**20
    print(f"{CARRY} ready ({size:.1f} MiB); on the GPU machine, carrying .gpu_carry: "
          "python3 scripts/gpu_check.py run $OUT")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/gpu_check.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1].split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the check, writing into OUT")
    run_parser.add_argument("out", type=Path, metavar="OUT")
    run_parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU (under a minute)")
    run_parser.add_argument("--reference", type=Path, metavar="DIR",
                            help=f"checkout of jxhe/vae-lagging-encoder (default: {CARRY.name}/vae-lagging-encoder)")
    prepare_parser = commands.add_parser("prepare", help="copy data and the reference into .gpu_carry/")
    prepare_parser.add_argument("--reference", type=Path, metavar="DIR", help="your checkout of jxhe/vae-lagging-encoder")
    prepare_parser.add_argument("--data-dir", metavar="DIR", help="data directory (default: $BENCH_DATA_DIR)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.reference and args.reference.expanduser().resolve(), args.data_dir)
    return run(args.out.resolve(), args.smoke, args.reference and args.reference.expanduser().resolve())


if __name__ == "__main__":
    sys.exit(main())
