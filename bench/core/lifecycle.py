"""The life of one run: its record, its checkpoints, resuming, and the final test.

:func:`run` is the single code path behind ``python -m bench train`` and every sweep
trial. A finished record is reused, never recomputed; a run trains only while it holds its
folder's lock, so two processes never train it at once; an interrupted run resumes from its
last epoch checkpoint (refused, naming ``--restart``, when the checkpoint belongs to another
configuration or checkpoint format); a run that raises writes a ``failed`` record with its
reason first. docs/faults.md lists the guarantees and their tests.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import statistics
import sys
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.core import environment as run_environment
from bench.core import files, memory, records, runlock
from bench.core.config import RunConfig
from bench.core.data import SYNTHETIC, Corpus, load_corpus, require_one_batch
from bench.core.errors import BenchError, Interrupted
from bench.core.loop import Trainer, cpu_share, resolve_device
from bench.core.method import Method, build_method, method_settings
from bench.core.metric_specs import summary_line


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run(config: RunConfig, results: Path = records.DEFAULT_RESULTS, data_dir: str | None = None,
        device: str | None = None, progress: bool | None = None, log: Callable[[str], None] = print,
        resume: bool = True, label: str | None = None,
        on_epoch: Callable[[Trainer], None] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and evaluate one run and write its record; returns the record.

    ``label`` names the run in tables (default: the method); ``on_epoch`` is called after
    each epoch's checkpoint (the sweep reports progress with it); ``extra`` is stored in the
    record as it is (the sweep puts the Ray node there). The run trains only while it holds
    its folder's lock (:mod:`bench.core.runlock`): a run that another live process is training
    raises :class:`~bench.core.runlock.RunLocked` and trains nothing.
    """
    torch_device = resolve_device(device)
    plan = plan_run(config, results, label, extra, torch_device.type)
    folder = plan.folder
    finished = _finished_record(folder, resume, log)
    if finished is not None:
        return finished
    corpus = load_corpus(config.dataset, config.data, data_dir)  # a missing dataset fails before any folder exists
    require_one_batch(corpus, config.data.batch_size)
    needed, memory_line = memory.check_fits(config, plan.method, corpus, torch_device)  # before any allocation
    plan = dataclasses.replace(plan, extra={**(plan.extra or {}),
                                            "memory_estimate_gib": round(needed.peak_bytes / memory.GIB, 2)})
    files.make_output_dir(folder)
    with runlock.hold(folder, log) as touch:
        return _finished_record(folder, resume, log) or _train(plan, corpus, torch_device, progress, log, resume,
                                                               on_epoch, touch, memory_line)  # (finished by a holder before us?)


def _finished_record(folder: Path, resume: bool, log: Callable[[str], None]) -> dict[str, Any] | None:
    path = folder / records.RECORD_NAME
    if resume and path.is_file():
        record = records.load_record(path)
        if record.get("status") == "finished":
            log(f"already finished: {path}")
            return record
    return None


@dataclass(frozen=True)
class RunPlan:
    """What identifies one run and where it lives."""

    config: RunConfig
    method: Method
    settings: dict
    identifier: str
    folder: Path
    label: str | None
    extra: dict[str, Any] | None


def plan_run(config: RunConfig, results: Path, label: str | None = None,
             extra: dict[str, Any] | None = None, device_type: str = "cpu") -> RunPlan:
    """The one place a run's identity is derived: its method built from the config, the
    method's settings as used, the run id hashing both with the config and the device type
    (:func:`bench.core.records.run_id`), and its folder."""
    method = build_method(config.method, config.methods, f"profile {config.profile}")
    settings = method_settings(method)
    identifier = records.run_id(config, settings, device_type)
    return RunPlan(config, method, settings, identifier, records.run_dir(results, config, identifier, label),
                   label, extra)


def _train(plan: RunPlan, corpus: Corpus, torch_device, progress, log, resume, on_epoch, touch,
           memory_line: str) -> dict[str, Any]:
    """The body of :func:`run`, under the run's lock."""
    config, method, identifier, folder = plan.config, plan.method, plan.identifier, plan.folder
    record_path = folder / records.RECORD_NAME
    trainer = Trainer(config, method, corpus, torch_device, log)
    checkpoint = folder / records.CHECKPOINT_NAME
    sessions = []  # every process that trained this run: one entry, unless it was resumed
    if resume and checkpoint.is_file():
        state = records.load_checkpoint(checkpoint, torch_device, identifier)
        try:
            trainer.load_state_dict(state)
        except (RuntimeError, KeyError) as err:  # a model or state of another shape
            raise BenchError(f"{checkpoint} does not fit this run's model ({type(err).__name__}); rerun with "
                             "--restart to train this run from the start (or delete the checkpoint)") from None
        sessions = list(state.get("sessions", []))
        log(f"resuming from epoch {trainer.epoch} ({checkpoint})")
    sessions.append({"host": platform.node(), "pid": os.getpid(), "started_at": now(), "from_epoch": trainer.epoch})
    record = new_record(config, trainer, corpus, identifier, plan.label, plan.settings, plan.extra)
    log(f"  {memory_line}")
    record["sessions"] = sessions

    def end_of_epoch(t: Trainer) -> None:
        files.save_checkpoint_atomic(checkpoint, {**t.state_dict(), **records.checkpoint_identity(identifier),
                                                    "sessions": sessions})
        touch(t.epoch)
        if on_epoch is not None:
            on_epoch(t)

    try:
        stop_reason = trainer.fit(sys.stderr.isatty() if progress is None else progress, on_epoch=end_of_epoch)
        finish(record, trainer, stop_reason, log)  # the test evaluation can fail too: then a failed record
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the last epoch's checkpoint is the state to resume
        kept = f"the checkpoint of epoch {trainer.epoch} is kept" if checkpoint.is_file() else "no epoch had finished"
        raise Interrupted(f"{err or 'interrupted'} during epoch {trainer.epoch + 1} of {folder.name}: {kept}; "
                          "run the same command again to resume", getattr(err, "exit_code", 130)) from None
    except Exception as err:  # recorded, then raised again
        reason = str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"
        record.update(status="failed", error=reason, curves=trainer.curves, finished_at=now())
        record.pop("metrics", None)  # a half-written evaluation is not a result
        try:
            files.write_json_atomic(record_path, record)
        except BenchError as write_error:  # e.g. the disk is full: the original error is the one to report
            log(f"the failed record could not be written either: {write_error}")
        raise
    files.write_json_atomic(record_path, record)
    checkpoint.unlink(missing_ok=True)
    log(f"record: {record_path}")
    return record


def new_record(config: RunConfig, trainer: Trainer, corpus: Corpus, identifier: str, label: str | None,
               settings: dict, extra: dict[str, Any] | None) -> dict[str, Any]:
    """The record's description of the run (everything but its outcome); logs the run's header."""
    parameters = sum(p.numel() for p in trainer.model.parameters())
    trainer.log(f"{config.method} on {corpus.name} [{config.profile}] seed {config.seed}: "
                f"{parameters / 1e6:.2f}M parameters, vocabulary {len(corpus.vocab)}, "
                f"{len(corpus.splits['train'])} training sentences, device {trainer.device}")
    if config.dataset == SYNTHETIC:
        trainer.log("  data: built-in synthetic corpus (no data directory needed)")
    return {"run_id": identifier, "label": label or config.method, "method": config.method,
            "dataset": config.dataset, "profile": config.profile, "seed": config.seed, "started_at": now(),
            "config": config.to_dict(), "method_settings": settings, "data": corpus.summary(),
            "parameters": parameters, "uses_latent": trainer.method.uses_latent, "code": run_environment.code_version(),
            "environment": run_environment.environment(trainer.device), "concurrent_trials": 1, **(extra or {})}


def finish(record: dict[str, Any], trainer: Trainer, stop_reason: str, log: Callable[[str], None]) -> None:
    """Test the best checkpoint (and the refined posterior, if the method has one) into ``record``."""
    trainer.model.load_state_dict(trainer.best_state)
    eval_before = trainer.eval_seconds
    test = trainer.test()
    refined = trainer.test_refined()
    samples = trainer.text_samples()
    best_valid = min(trainer.curves, key=lambda row: row["valid_elbo_nll"])
    record.update(
        status="finished", stop_reason=stop_reason, epochs=trainer.epoch, finished_at=now(),
        metrics={"test": test, "best_valid_epoch": best_valid["epoch"],
                 "valid": {k[len("valid_"):]: v for k, v in best_valid.items() if k.startswith("valid_")},
                 **({"test_refined": refined} if refined is not None else {})},
        timing={"train_seconds": trainer.train_seconds, "valid_eval_seconds": eval_before,
                "test_eval_seconds": trainer.eval_seconds - eval_before,
                "train_hours": trainer.train_seconds / 3600,
                # the conditions the time was measured under (results.timing_condition)
                "train_cpu_share": cpu_share(trainer.train_cpu_seconds, trainer.train_seconds),
                "load_per_core": statistics.fmean(row.get("load_per_core", math.nan) for row in trainer.curves),
                "host_speed": run_environment.host_speed(trainer.device)},  # measured warm, after training
        curves=trainer.curves, samples=samples,
    )
    log(f"test: {summary_line(test)}  (IW K={test['iw_samples']}, {test['iw_sentences']} sentences)  "
        f"train {trainer.train_seconds:.0f}s  eval {trainer.eval_seconds:.0f}s")
