"""Run records and checkpoints: where they live, how a run is identified, how they are read.

One run = one folder ``<results>/<profile>/<dataset>/<label>/seed<seed>-<run_id>/`` with
``record.json`` (written once, at the end, by an atomic rename so a reader never sees half
a record) and ``checkpoint.pt`` while training is in progress. ``run_id`` hashes the
resolved configuration, so a changed setting never reuses an old record.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from bench.core.config import RunConfig
from bench.core.errors import BenchError

RECORD_NAME = "record.json"
CHECKPOINT_NAME = "checkpoint.pt"
DEFAULT_RESULTS = Path(__file__).resolve().parents[2] / "results"


def run_id(config: RunConfig, method_settings: dict[str, Any], device_type: str = "cpu") -> str:
    """Stable 12-hex-digit hash of everything that defines the run: its configuration with the
    settings of its own method(s) only (editing another method's settings in a profile must
    not invalidate this run's record), and the type of device it trains on where that is not
    the CPU (so a GPU run never reuses or resumes a CPU run's record or checkpoint, nor the
    reverse, while every CPU record keeps its id)."""
    used = config.identity()
    used["methods"] = {name: values for name, values in used["methods"].items() if name in method_settings}
    payload = json.dumps({"config": used, "method_settings": method_settings,
                          **({"device": device_type} if device_type != "cpu" else {})}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def run_dir(results: Path, config: RunConfig, identifier: str, label: str | None = None) -> Path:
    """``<results>/<profile>/<dataset>/<label or method>/seed<seed>-<run_id>``."""
    name = label or config.method
    return Path(results) / config.profile / config.dataset / name / f"seed{config.seed}-{identifier}"


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


def load_checkpoint(path: Path, device=None, identifier: str | None = None) -> dict[str, Any]:
    """A training checkpoint: tensors and plain values only (``weights_only=True`` runs no code),
    always loaded to the CPU whatever device wrote it or will train it: the RNG states must stay
    CPU byte tensors (``torch.set_rng_state`` takes no other), and ``load_state_dict`` copies the
    weights to the model's device. ``device`` is accepted for callers and ignored. With
    ``identifier``, one written for another run id or checkpoint format is refused."""
    restart = "rerun with --restart to train this run from the start (or delete the checkpoint)"
    try:
        import torch
        state = torch.load(path, map_location="cpu", weights_only=True)
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


FINISHED_KEYS = ("method", "dataset", "profile", "seed")  # besides metrics.test, in every finished record


def read_checked(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A record and None, or None and what is wrong with it: not readable, not JSON, not an
    object, or finished without the keys or test metrics a table needs."""
    try:
        record = json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not text (binary bytes); delete its folder or rerun the run"
    except json.JSONDecodeError as err:
        return None, f"not valid JSON ({err.msg}, line {err.lineno}: truncated?); delete its folder or rerun the run"
    except OSError as err:
        return None, f"cannot be read ({err.strerror or err})"
    if not isinstance(record, dict):
        return None, "not a record (a JSON object is expected)"
    if record.get("status") == "finished":
        missing = [key for key in FINISHED_KEYS if key not in record]
        test = record.get("metrics", {}).get("test") if isinstance(record.get("metrics"), dict) else None
        if missing or not isinstance(test, dict) or "nll" not in test:
            what = ", ".join(missing + ([] if isinstance(test, dict) and "nll" in test else ["metrics.test"]))
            return None, f"says finished but has no {what}; delete its folder or rerun the run"
    return record, None


def finished_records(results: Path, profile: str | None = None,
                     datasets: list[str] | None = None) -> list[dict[str, Any]]:
    """Every finished record under ``results`` (optionally one profile and some datasets).

    Without ``profile``, records of several profiles are an error: reduced-scale and
    paper-scale numbers must never be mixed in one table.
    """
    if not Path(results).exists():
        raise BenchError(f"results folder {results} does not exist; pass the folder a sweep or ./run_all.sh wrote "
                         "(--results DIR)")
    if not Path(results).is_dir():
        raise BenchError(f"{results} is a file, not a folder; pass the results folder (--results DIR)")
    found = []
    # exactly <profile>/<dataset>/<label>/<seed-id>/: an experiment's own results folder inside
    # this one (results/scale_calibration/...) is not read as part of it
    for path in sorted(Path(results).glob(f"*/*/*/*/{RECORD_NAME}")):
        record, problem = read_checked(path)
        if problem:  # never dropped silently: one line each, and the others are read
            print(f"warning: skipped {path}: {problem}", file=sys.stderr)
            continue
        if record.get("status") != "finished" or (datasets is not None and record.get("dataset") not in datasets):
            continue
        if profile is None or record.get("profile") == profile:
            found.append(record)
    profiles = sorted({r["profile"] for r in found})
    if len(profiles) > 1:
        raise BenchError(f"records from several profiles ({', '.join(profiles)}); pick one with --profile "
                         "so reduced and paper-scale numbers are not mixed")
    return found
