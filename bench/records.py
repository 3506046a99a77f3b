"""Self-describing run records, written atomically, and where they live.

One run = one folder ``<results>/<profile>/<dataset>/<label>/seed<seed>-<run_id>/`` with
``record.json`` (written once, at the end, by an atomic rename so a reader never sees half
a record) and ``checkpoint.pt`` while training is in progress. ``run_id`` hashes the
resolved configuration, so a changed setting never reuses an old record.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable


from bench.config import RunConfig
from bench.errors import BenchError

RECORD_NAME = "record.json"
CHECKPOINT_NAME = "checkpoint.pt"
DEFAULT_RESULTS = Path(__file__).resolve().parent.parent / "results"
PACKAGES = ("torch", "numpy", "pandas", "ray", "pyyaml", "psutil")


def run_id(config: RunConfig, method_settings: dict[str, Any]) -> str:
    """Stable 12-hex-digit hash of everything that defines the run: its configuration with the
    settings of its own method(s) only (editing another method's settings in a profile must
    not invalidate this run's record)."""
    used = config.identity()
    used["methods"] = {name: values for name, values in used["methods"].items() if name in method_settings}
    payload = json.dumps({"config": used, "method_settings": method_settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def run_dir(results: Path, config: RunConfig, identifier: str, label: str | None = None) -> Path:
    """``<results>/<profile>/<dataset>/<label or method>/seed<seed>-<run_id>``."""
    name = label or config.method
    return Path(results) / config.profile / config.dataset / name / f"seed{config.seed}-{identifier}"


def make_output_dir(folder: Path) -> None:
    """Create an output folder, or say in one line which part of its path is not a folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise BenchError(f"cannot create output folder {folder}: {blocking} is a file, not a folder; "
                         "pass a folder (--out / --results)") from None


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to a temporary file in the same folder, then rename it into place: a reader
    sees the old file or the new one, never a part; a failed write (a full disk) leaves the old
    file as it was and raises one line."""
    make_output_dir(path.parent)

    def write(tmp: str) -> None:
        with open(tmp, "w") as out:
            json.dump(payload, out, indent=1, sort_keys=False, default=str)
            out.flush()
            os.fsync(out.fileno())

    _replace_atomically(path, write)


def save_checkpoint_atomic(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` with the guarantees of :func:`write_json_atomic`."""
    import torch  # here, not at the top: reading results needs no torch
    _replace_atomically(path, lambda tmp: torch.save(state, tmp))


def _replace_atomically(path: Path, write: Callable[[str], None]) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise BenchError(f"cannot write {path} ({err.strerror or err}); free disk space or fix the folder's "
                         "permissions, then run the same command again (files already written are kept)") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Bumped when a checkpoint's contents change so that an older one cannot be resumed correctly.
CHECKPOINT_FORMAT = 2


def checkpoint_identity(identifier: str) -> dict[str, Any]:
    """What a checkpoint carries to be recognised: its run id and the checkpoint format."""
    return {"run_id": identifier, "checkpoint_format": CHECKPOINT_FORMAT}


def load_record(path: Path, fix: str = "delete its folder or rerun with --restart") -> dict[str, Any]:
    """A record (or another JSON file the project wrote), or a one-line error naming the file
    and ``fix`` when it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise BenchError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}); {fix}") from None


def load_checkpoint(path: Path, device, identifier: str | None = None) -> dict[str, Any]:
    """A training checkpoint: tensors and plain values only (``weights_only=True`` runs no code).
    With ``identifier``, one written for another run id or checkpoint format is refused."""
    restart = "rerun with --restart to train this run from the start (or delete the checkpoint)"
    try:
        import torch
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # unpickling errors have many types; all mean the same to the user
        raise BenchError(f"{path} is not a readable checkpoint ({type(err).__name__}); {restart}") from None
    if identifier is not None:
        if state.get("checkpoint_format") != CHECKPOINT_FORMAT:
            raise BenchError(f"{path} was written by another version of the code (checkpoint format "
                             f"{state.get('checkpoint_format', 1)}, this code reads {CHECKPOINT_FORMAT}); {restart}")
        if state.get("run_id") != identifier:
            raise BenchError(f"{path} belongs to another configuration (run id {state.get('run_id')}, this run "
                             f"{identifier}); {restart}")
    return state


def finished_records(results: Path, profile: str | None = None,
                     datasets: list[str] | None = None) -> list[dict[str, Any]]:
    """Every finished record under ``results`` (optionally one profile and some datasets).

    Without ``profile``, records of several profiles are an error: reduced-scale and
    paper-scale numbers must never be mixed in one table.
    """
    found = []
    # exactly <profile>/<dataset>/<label>/<seed-id>/: an experiment's own results folder inside
    # this one (results/scale_calibration/...) is not read as part of it
    for path in sorted(Path(results).glob(f"*/*/*/*/{RECORD_NAME}")):
        try:
            record = load_record(path)
        except (OSError, ValueError):
            continue  # a foreign or damaged file is not a result
        if record.get("status") != "finished" or (datasets is not None and record.get("dataset") not in datasets):
            continue
        if profile is None or record.get("profile") == profile:
            found.append(record)
    profiles = sorted({r["profile"] for r in found})
    if len(profiles) > 1:
        raise BenchError(f"records from several profiles ({', '.join(profiles)}); pick one with --profile "
                         "so reduced and paper-scale numbers are not mixed")
    return found


def code_version() -> dict[str, Any]:
    """Git commit of the code and whether the work tree had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
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
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    return {"python": sys.version.split()[0], "packages": packages, "hardware": hardware,
            "hostname": platform.node()}


def uses_latent(record: dict[str, Any]) -> bool:
    """Whether the run's model has a latent variable (the language model has none). Every
    record states it (lifecycle.new_record; the committed records written before the field
    existed were backfilled); a record without it is taken to have one."""
    return bool(record.get("uses_latent", True))


def mi_noise(record: dict[str, Any], key: str = "test") -> float:
    """The MI noise floor of a record's evaluation (:func:`bench.metrics.mi_noise_floor`); derived
    from the latent size and the sentences for records written before it was stored."""
    test = record["metrics"][key]
    if "mi_noise" in test:
        return float(test["mi_noise"])
    from bench.metrics import mi_noise_floor
    latent = record.get("config", {}).get("model", {}).get("latent_dim") if uses_latent(record) else 0
    if latent is None or not test.get("sentences"):
        return math.nan  # not enough in the record to say
    return mi_noise_floor(latent, int(test["sentences"]))


def hardware_label(record: dict[str, Any]) -> str:
    """Short name of the hardware a record ran on, e.g. 'NVIDIA H100' or 'CPU x2'."""
    hardware = record.get("environment", {}).get("hardware", {})
    return hardware.get("gpu") or f"CPU x{hardware.get('torch_threads', '?')}"


OWN_CORES_SHARE = 0.85  # a CPU run that got at least this CPU share (per thread) had its cores


def timing_condition(record: dict[str, Any]) -> str | None:
    """The conditions a run's training time was measured under, as a label: hardware, trials
    trained at once, and on a CPU whether the run had its cores (``train_cpu_share``, the
    process's CPU time per wall-clock second per thread, at least ``OWN_CORES_SHARE``) or
    shared them with other work. Training times are compared only between runs of one
    condition that is not ``shared cores`` (bench.compare.time_ratio). None for records made
    before the conditions were recorded."""
    timing, hardware = record.get("timing", {}), hardware_label(record)
    share = timing.get("train_cpu_share")
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return None
    at_once = f"{record.get('concurrent_trials', 1)} trial(s) at once"
    if record.get("environment", {}).get("hardware", {}).get("gpu"):
        return f"{hardware}, {at_once}"
    return f"{hardware}, {at_once}, {'own cores' if share >= OWN_CORES_SHARE else 'shared cores'}"
