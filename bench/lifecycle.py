"""The life of one run: its record, its checkpoints, resuming, and the final test.

:func:`run` is the single code path behind ``python -m bench.train`` and every sweep
trial. A finished record is reused, never recomputed; an interrupted run resumes from its
last epoch checkpoint; a run that raises writes a ``failed`` record with its reason first.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from bench import records
from bench.config import RunConfig
from bench.data import SYNTHETIC, Corpus, load_corpus
from bench.errors import BenchError
from bench.loop import Trainer, resolve_device
from bench.method import build_method, method_settings
from bench.metric_specs import summary_line


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run(config: RunConfig, results: Path = records.DEFAULT_RESULTS, data_dir: str | None = None,
        device: str | None = None, progress: bool | None = None, log: Callable[[str], None] = print,
        resume: bool = True, label: str | None = None,
        on_epoch: Callable[[Trainer], None] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and evaluate one run and write its record; returns the record.

    ``label`` names the run in tables (default: the method); ``on_epoch`` is called after
    each epoch's checkpoint (the sweep reports progress with it); ``extra`` is stored in the
    record as it is (the sweep puts the Ray node there).
    """
    method = build_method(config.method, config.methods, f"profile {config.profile}")
    settings = method_settings(method)
    identifier = records.run_id(config, settings)
    folder = records.run_dir(results, config, identifier, label)
    record_path = folder / records.RECORD_NAME
    if resume and record_path.is_file():
        record = records.load_record(record_path)
        if record.get("status") == "finished":
            log(f"already finished: {record_path}")
            return record
    torch_device = resolve_device(device)
    corpus = load_corpus(config.dataset, config.data, data_dir)
    trainer = Trainer(config, method, corpus, torch_device, log)
    records.make_output_dir(folder)
    checkpoint = folder / records.CHECKPOINT_NAME
    if resume and checkpoint.is_file():
        trainer.load_state_dict(records.load_checkpoint(checkpoint, torch_device))
        log(f"resuming from epoch {trainer.epoch} ({checkpoint})")
    record = new_record(config, trainer, corpus, identifier, label, settings, extra)

    def end_of_epoch(t: Trainer) -> None:
        records.save_checkpoint_atomic(checkpoint, t.state_dict())
        if on_epoch is not None:
            on_epoch(t)

    try:
        stop_reason = trainer.fit(sys.stderr.isatty() if progress is None else progress, on_epoch=end_of_epoch)
    except Exception as err:  # recorded, then raised again; KeyboardInterrupt keeps the checkpoint only
        reason = str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"
        record.update(status="failed", error=reason, curves=trainer.curves, finished_at=now())
        records.write_json_atomic(record_path, record)
        raise
    finish(record, trainer, stop_reason, log)
    records.write_json_atomic(record_path, record)
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
            "parameters": parameters, "uses_latent": trainer.method.uses_latent, "code": records.code_version(),
            "environment": records.environment(trainer.device), **(extra or {})}


def finish(record: dict[str, Any], trainer: Trainer, stop_reason: str, log: Callable[[str], None]) -> None:
    """Test the best checkpoint (and the refined posterior, if the method has one) into ``record``."""
    trainer.model.load_state_dict(trainer.best_state)
    eval_before = trainer.eval_seconds
    test = trainer.test()
    refined = trainer.test_refined()
    best_valid = min(trainer.curves, key=lambda row: row["valid_elbo_nll"])
    record.update(
        status="finished", stop_reason=stop_reason, epochs=trainer.epoch, finished_at=now(),
        metrics={"test": test, "best_valid_epoch": best_valid["epoch"],
                 "valid": {k[len("valid_"):]: v for k, v in best_valid.items() if k.startswith("valid_")},
                 **({"test_refined": refined} if refined is not None else {})},
        timing={"train_seconds": trainer.train_seconds, "valid_eval_seconds": eval_before,
                "test_eval_seconds": trainer.eval_seconds - eval_before,
                "train_hours": trainer.train_seconds / 3600},
        curves=trainer.curves,
    )
    log(f"test: {summary_line(test)}  (IW K={test['iw_samples']}, {test['iw_sentences']} sentences)  "
        f"train {trainer.train_seconds:.0f}s  eval {trainer.eval_seconds:.0f}s")
