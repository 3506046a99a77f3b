"""Run an experiment grid (method x dataset x seed) with Ray Tune.

``python -m bench sweep experiments/cpu.yaml`` reads an experiment file, skips runs whose
record is already finished, and schedules the rest as Ray Tune trials, each one a call of
:func:`bench.core.lifecycle.run` (the same code path as ``python -m bench train``). Runs resume from
their last epoch checkpoint, so killing the sweep and starting it again loses at most the
epoch in progress and never a finished record. A failing trial is recorded as failed with
its reason and does not stop the others.

Experiment file::

    profile: cpu                       # a profile name or YAML path
    datasets: [yahoo_resplit, yelp_xu_resplit]
    seeds: [0]
    resources: {cpu: 1, gpu: 0}        # per trial; fractional GPUs share a GPU (e.g. 0.5)
    settings: {train: {max_epochs: 5}} # overrides for every run (same sections as --set)
    points:                            # optional: one axis of a scale study, every run at each point
      len10: {data: {synthetic_length: 10}}   # labels become <label>@len10, ...
      len40: {data: {synthetic_length: 40}}
    runs:                              # a method name, or a labelled method with settings
      - vae
      - pooling+kl_anneal
      - {label: beta_vae_0.2, method: beta_vae, settings: {beta_vae: {beta: 0.2}}}
      - {label: vae_3x, method: vae, settings: {train: {max_epochs: 24}}, seeds: [0]}  # its own seeds
      - {label: aggressive, method: aggressive, points: [len10]}  # only at these points
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.core import files, records
from bench.core.config import build_run_config, from_dict, yaml_error
from bench.core.errors import BenchError, Interrupted, did_you_mean, handle_sigterm, run_cli
from bench.core.lifecycle import plan_run
from bench.core.method import build_method
from bench.core.metric_specs import TEST_METRICS, summary_line


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class RunSpec:
    method: str
    label: str = ""
    settings: dict = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None  # this run's own seeds (default: the experiment's)
    points: tuple[str, ...] | None = None  # the points it runs at (default: all; e.g. a costly run's affordable ones)


@dataclass(frozen=True)
class Experiment:
    profile: str
    datasets: tuple[str, ...]
    runs: tuple[Any, ...]
    seeds: tuple[int, ...] = (0,)
    resources: Any = None
    settings: Any = None
    points: Any = None  # {point name: settings}: every run is repeated at each point
    # seeds stated before any of them ran: the confirmatory sample (bench.analysis.verdicts);
    # without them every verdict drawn from the experiment's records is exploratory
    confirmatory_seeds: tuple[int, ...] = ()
    # the comparisons stated before the runs, [label, reference] on MI or [label, reference, metric]
    # (bench.analysis.verdicts); the report judges them as one Holm family
    family: tuple = ()


FAMILY_METRICS = ("mi", "nll", "kl", "au")  # what a stated family may compare on (each has a margin: stats.MARGINS)


@dataclass(frozen=True)
class Trial:
    label: str
    method: str
    dataset: str
    seed: int
    settings: dict  # merged overrides: experiment-wide, then the run's own
    device_type: str = "cpu"  # cuda where the experiment gives each trial a GPU: part of the run id

    @property
    def name(self) -> str:
        return f"{self.label}/{self.dataset}/seed{self.seed}"


def load_experiment(path: Path) -> Experiment:
    where = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError:
        raise BenchError(f"experiment file {path} not found; see experiments/ for examples") from None
    except yaml.YAMLError as err:
        raise BenchError(yaml_error(path, err)) from None
    if not isinstance(raw, dict) or not raw.get("runs") or not raw.get("datasets") or not raw.get("seeds", [0]) \
            or "profile" not in raw:
        missing = [key for key in ("profile", "datasets", "runs") if not isinstance(raw, dict) or not raw.get(key)]
        if isinstance(raw, dict) and "seeds" in raw and not raw["seeds"]:
            missing.append("seeds")
        raise BenchError(f"{where}: {'the file is empty' if not raw else 'no ' + ', '.join(missing)}; an experiment "
                         "names a profile, datasets and runs (see experiments/cpu.yaml)")
    experiment = from_dict(Experiment, raw, where)
    if len(set(experiment.seeds)) != len(experiment.seeds):
        raise BenchError(f"{where}: seeds {list(experiment.seeds)} repeat a seed; each seed once")
    runs = []
    for index, entry in enumerate(experiment.runs):
        spec = from_dict(RunSpec, {"method": entry} if isinstance(entry, str) else entry, f"{where} runs[{index}]")
        runs.append(RunSpec(spec.method, spec.label or spec.method, spec.settings or {}, spec.seeds,
                            None if spec.points is None else tuple(str(p) for p in spec.points)))
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise BenchError(f"{where}: run labels must be unique, got {labels}")
    resources = from_dict(Resources, experiment.resources or {}, f"{where} resources")
    if resources.cpu <= 0 or resources.gpu < 0:
        raise BenchError(f"{where} resources: cpu must be > 0 and gpu >= 0")
    points = experiment.points or {}
    if not isinstance(points, dict) or not all(isinstance(v, dict) for v in points.values()):
        raise BenchError(f"{where} points: expected a mapping of point names to settings, e.g. "
                         "{len10: {data: {synthetic_length: 10}}}")
    if any("@" in str(name) for name in points):
        raise BenchError(f"{where} points: names may not contain '@' (it joins a run's label and its point)")
    for run in runs:
        unknown = sorted(set(run.points or ()) - {str(name) for name in points})
        if unknown:
            raise BenchError(f"{where} run {run.label}: points {unknown}{did_you_mean(unknown[0], points)} are not "
                             f"among the experiment's points {sorted(map(str, points))}; name points from `points`")
    confirmatory = tuple(experiment.confirmatory_seeds or ())
    if unknown := sorted(set(confirmatory) - set(experiment.seeds)):
        raise BenchError(f"{where} confirmatory_seeds {unknown} are not among the experiment's seeds "
                         f"{list(experiment.seeds)}; name confirmatory seeds from `seeds`")
    family = tuple(tuple(entry) for entry in experiment.family or ())
    for entry in family:
        if len(entry) not in (2, 3) or (unknown := sorted(set(entry[:2]) - set(labels))):
            raise BenchError(f"{where} family: each entry is [label, reference] of two run labels (and optionally a "
                             f"metric, MI when left out); {list(entry)} is not (labels: {', '.join(labels)})")
        if len(entry) == 3 and entry[2] not in FAMILY_METRICS:
            raise BenchError(f"{where} family: metric '{entry[2]}' in {list(entry)}{did_you_mean(str(entry[2]), FAMILY_METRICS)} "
                             f"is not one a verdict is drawn on ({', '.join(FAMILY_METRICS)})")
    return Experiment(experiment.profile, tuple(experiment.datasets), tuple(runs), tuple(experiment.seeds),
                      resources, dict(experiment.settings or {}), {str(k): v for k, v in points.items()},
                      confirmatory, family)


def merge_settings(*layers: dict) -> dict:
    merged: dict[str, dict] = {}
    for layer in layers:
        for section, values in (layer or {}).items():
            merged.setdefault(section, {}).update(values or {})
    return merged


def expand(experiment: Experiment, only_datasets=None, only_seeds=None) -> list[Trial]:
    """Every (dataset, point, run, seed) trial; a point's settings sit between the experiment's
    and the run's own, and its name joins the run's label (``vae@len40``). A run with its own
    ``points`` is left out at the others."""
    datasets = only_datasets or experiment.datasets
    points = experiment.points or {"": {}}
    return [Trial(f"{run.label}@{point}" if point else run.label, run.method, dataset, seed,
                  merge_settings(experiment.settings, point_settings, run.settings),
                  "cuda" if experiment.resources.gpu else "cpu")
            for dataset in datasets for point, point_settings in points.items() for run in experiment.runs
            if not point or run.points is None or point in run.points
            for seed in (only_seeds if only_seeds is not None else run.seeds or experiment.seeds)]


def trial_config(trial: Trial, profile: str, source: str = "experiment"):
    return build_run_config(trial.method, trial.dataset, profile, trial.seed, trial.settings,
                            f"{source}, run {trial.name}, settings")


def check_trial(trial: Trial, profile: str, source: str) -> None:
    """Build ``trial``'s config and method, as its training will; a mistake names ``source`` and the run."""
    build_method(trial.method, trial_config(trial, profile, source).methods, f"{source}, run {trial.name}, settings")


def check_data_and_memory(trials: list[Trial], experiment: Experiment, data_dir: str | None, source: str) -> None:
    """Before Ray starts: every dataset is there with at least one batch of training sentences,
    and on a CPU every run's memory estimate fits this machine and its bfloat16 setting this CPU
    (a run that cannot would be refused by every trial, or killed without a word). Memory does not depend on the seed."""
    import torch

    from bench.core import memory
    from bench.core.data import load_corpus, require_one_batch
    from bench.core.loop import require_bf16_support
    CPU = torch.device("cpu")
    corpora: dict[tuple, Any] = {}
    for trial in {(t.label, t.dataset): t for t in trials}.values():
        config = trial_config(trial, experiment.profile, source)
        key = (trial.dataset, config.data)
        if key not in corpora:
            corpora[key] = load_corpus(trial.dataset, config.data, data_dir)
            require_one_batch(corpora[key], config.data.batch_size)
        if not experiment.resources.gpu:
            try:
                require_bf16_support(config, CPU)
                memory.check_fits(config, build_method(config.method, config.methods), corpora[key], CPU)
            except BenchError as err:
                raise BenchError(f"{source}, run {trial.name}: {err}") from None


_RECORD_PATHS: dict[tuple, Path] = {}  # (trial, profile, results) -> record path: derived once


def record_path(trial: Trial, profile: str, results: Path) -> Path:
    """Where ``trial``'s record lives (``lifecycle.plan_run``), derived once per trial and results folder."""
    key = (trial.label, trial.method, trial.dataset, trial.seed, json.dumps(trial.settings, sort_keys=True),
           trial.device_type, profile, str(results))
    if key not in _RECORD_PATHS:
        folder = plan_run(trial_config(trial, profile), Path(results), trial.label, device_type=trial.device_type).folder
        _RECORD_PATHS[key] = folder / records.RECORD_NAME
    return _RECORD_PATHS[key]


def is_finished(path: Path) -> bool:
    try:
        return records.load_record(path).get("status") == "finished"
    except (OSError, ValueError):
        return False


def adopt_finished_twin(path: Path, label: str, results: Path, log, reuse_from: tuple[Path, ...] = ()) -> bool:
    """Reuse the record of a run of the same configuration (the run id, ``seed<N>-<id>``, hashes
    the whole configuration; a label is a name) that finished under another label in this results
    folder or in one of ``reuse_from`` (``--reuse-from``: another experiment's results folder):
    e.g. a scale axis's base point, already run by the real-text table. The record
    is copied here under ``label`` with ``adopted_from`` naming the original (relative to
    ``results``), so a run is trained once however many experiments name it. Returns whether
    there was one."""
    profile_and_dataset = path.parent.relative_to(results).parents[1]
    twins = (twin for folder in (results, *reuse_from)
             for twin in sorted((folder / profile_and_dataset).glob(f"*/{path.parent.name}/{records.RECORD_NAME}")))
    for twin in twins:
        if twin != path and is_finished(twin):
            record = records.load_record(twin)
            origin = os.path.relpath(twin.parent, results)
            record.update(label=label, adopted_from=record.get("adopted_from", origin))
            files.make_output_dir(path.parent)
            files.write_json_atomic(path, record)
            log(f"{label}/{record['dataset']}/seed{record['seed']}: the same configuration finished as {origin}; "
                "its record is reused, not trained again")
            return True
    return False


def run_trial(params: dict, profile: str, results: str, data_dir: str | None, device: str,
              concurrent_trials: int = 1) -> None:
    """Ray Tune trainable: one bench.cli.train run; reports each epoch and the outcome.

    The final report carries the whole record, so the driver can write it into its own
    results folder even when this trial ran on another node with its own disk.
    """
    import platform

    import ray
    from ray import tune

    from bench.core.lifecycle import run

    trial = Trial(**params["trial"])
    node = {"node_id": ray.get_runtime_context().get_node_id(), "hostname": platform.node()}

    def report(trainer) -> None:
        row = trainer.curves[-1]
        tune.report({"status": "running", "epoch": row["epoch"], "valid_elbo_nll": row["valid_elbo_nll"],
                     **{f"valid_{m}": row[f"valid_{m}"] for m in (*(m.name for m in TEST_METRICS), "mi_se", "mi_above_kl")
                        if f"valid_{m}" in row}})

    from bench.core.runlock import RunLocked, describe

    config = trial_config(trial, profile)
    try:
        if data_dir and trial.dataset != "synthetic" and not os.access(Path(data_dir) / trial.dataset, os.R_OK):
            raise BenchError(f"node {node['hostname']} ({node['node_id'][:8]}) cannot read {Path(data_dir) / trial.dataset}; "
                             "mount the data directory on every node at the same path (docs/cluster.md)")
        if ray.get_gpu_ids():  # a trial that holds a GPU never trains on the CPU without a word
            from bench.core.loop import resolve_device
            resolve_device(device, holds_gpu=True)
        record = run(config, Path(results), data_dir, device, progress=False, log=lambda message: None,
                     label=trial.label, on_epoch=report,
                     extra={"ray_node": node, "concurrent_trials": concurrent_trials})
    except RunLocked as err:  # another process trains it: nothing to do here now
        tune.report({"status": "elsewhere", "holder": describe(err.owner)})
        return
    except Exception as err:  # run() wrote a failed record; pass it and the reason on
        path = record_path(trial, profile, Path(results))
        record = records.load_record(path) if path.is_file() else None
        tune.report({"status": "failed", "error": str(err).splitlines()[0][:300],
                     "record_json": json.dumps(record, default=str) if record else ""})
        return
    test = record["metrics"]["test"]
    here = {"host": platform.node(), "pid": os.getpid()}
    if not any({k: s.get(k) for k in here} == here for s in record.get("sessions", [])):
        tune.report({"status": "elsewhere", "holder": "another process, which finished it"})
        return  # it finished while this trial waited to start: reused, not trained here
    tune.report({"status": "finished", **{m.name: test.get(m.name) for m in TEST_METRICS}, "mi_se": test.get("mi_se"),
                 "mi_above_kl": test.get("mi_above_kl"),
                 "train_hours": record["timing"]["train_hours"], "record_json": json.dumps(record, default=str)})


def store_record(result: dict, trial: Trial, profile: str, results: Path) -> None:
    """Write a trial's record into the driver's results folder, unless it is already there."""
    if not result.get("record_json"):
        return
    record = json.loads(result["record_json"])
    path = record_path(trial, profile, results)
    if path.is_file():
        try:
            if records.load_record(path).get("finished_at") == record.get("finished_at"):
                return  # written by the trial itself (same machine or shared storage)
        except (OSError, ValueError):
            pass
    files.write_json_atomic(path, record)


def died(trial: Trial, profile: str, results: Path, data_dir: str | None, ray_error: str) -> str:
    """A trial whose process died (killed for memory, by a signal, a segfault) wrote no record of
    its own: write a failed one naming the likely causes and the run's memory estimate (unless
    the run finished after all); returns the reason. Ray cannot tell the causes apart (its
    message lists all three for every death), so neither does this one."""
    reason = "the trial process died (killed for lack of memory or by a signal, or crashed)"
    try:
        from bench.core import memory
        from bench.core.data import load_corpus
        config = trial_config(trial, profile)
        needed = memory.estimate(config, build_method(config.method, config.methods),
                                 load_corpus(config.dataset, config.data, data_dir))
        reason += (f"; the run needs {needed.describe()}: if memory ran out, train fewer trials at once (--cpus) "
                   "or use a smaller batch, latent or width")
    except Exception:  # the estimate is a hint: the record of the death is written regardless
        pass
    path = record_path(trial, profile, results)
    if not is_finished(path):
        from bench.core.lifecycle import now
        try:
            files.write_json_atomic(path, {
                "run_id": path.parent.name.rpartition("-")[2], "label": trial.label, "method": trial.method,
                "dataset": trial.dataset, "profile": profile, "seed": trial.seed, "status": "failed", "error": reason,
                "ray_error": ray_error.strip().splitlines()[-1][:500] if ray_error.strip() else "", "finished_at": now()})
        except BenchError as err:  # e.g. a full disk: the death is still reported, and the sweep goes on
            reason += f" (its failed record could not be written: {err})"
    return reason


def check_reachable(address: str, seconds: float = 10.0) -> None:
    """Fail fast: ``ray.init`` retries an address where nothing listens for minutes, without a
    word. One TCP connection to the cluster's head (its GCS port), with a bounded wait."""
    import socket
    from ray._private.services import canonicalize_bootstrap_address
    try:
        head = canonicalize_bootstrap_address(address)
    except (ValueError, ConnectionError) as err:
        raise BenchError(f"--address {address}: {err}; give HOST:PORT of a Ray head, or leave out --address "
                         "for a local Ray") from None
    if head is None:
        raise BenchError(f"--address {address}: no running Ray cluster found on this machine; start one with "
                         "`ray start --head`, or leave out --address for a local Ray")
    host, _, port = head.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except (OSError, ValueError) as err:
        cause = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise BenchError(f"cannot reach a Ray cluster at {address if address != 'auto' else head} ({cause}, waited up to {seconds:g} s); start its head "
                         f"there with `ray start --head --port {port}`, or leave out --address for a local Ray") from None


def check_gpus(resources: Resources, attached: bool) -> None:
    """Fail fast: Ray waits forever for a GPU that the cluster does not have."""
    if resources.gpu <= 0:
        return
    import ray
    have = ray.cluster_resources().get("GPU", 0)
    if have == 0:
        where = "the Ray cluster" if attached else "this machine"
        raise BenchError(f"the experiment asks for {resources.gpu:g} GPU per trial but {where} has none; "
                         "set resources.gpu: 0 or use a GPU machine (./run_all.sh picks the cpu experiment)")


class ProgressPrinter:
    """A line per trial event on the driver, instead of Ray's status tables."""

    def __init__(self, log, profile: str, results: Path, data_dir: str | None):
        self.log, self.outcomes, self.profile, self.results, self.data_dir = log, {}, profile, results, data_dir

    def callback(self):
        from ray.tune import Callback
        printer = self

        class _Callback(Callback):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                spec = Trial(**trial.config["trial"])
                name = spec.name
                status = result.get("status")
                if status in ("finished", "failed"):
                    store_record(result, spec, printer.profile, printer.results)
                if status == "running":
                    printer.log(f"  {name}: epoch {result['epoch']}  valid ELBO {result['valid_elbo_nll']:.2f}  "
                                + summary_line(result, "valid_"))
                elif status == "finished":
                    printer.outcomes[name] = "finished"
                    printer.log(f"done {name}: {summary_line(result)}  ({result['train_hours'] * 60:.1f} min training)")
                elif status == "failed":
                    printer.outcomes[name] = f"failed: {result['error']}"
                    printer.log(f"FAILED {name}: {result['error']}")
                elif status == "elsewhere":
                    printer.outcomes[name] = "elsewhere"
                    printer.log(f"  {name}: being trained by {result['holder']}; not trained here")

            def on_trial_error(self, iteration, trials, trial, **info):
                spec = Trial(**trial.config["trial"])
                why = died(spec, printer.profile, printer.results, printer.data_dir, str(trial.get_error() or ""))
                printer.outcomes[spec.name] = f"failed: {why}"
                printer.log(f"FAILED {spec.name}: {why}")

        return _Callback()


def tensorboard_callbacks(wanted: bool) -> list:
    """Ray Tune's own TensorBoard logger (its automatic loggers are off: TUNE_DISABLE_AUTO_CALLBACK_LOGGERS)."""
    if not wanted:
        return []
    from bench.core.tensorboard import require_tensorboardx
    require_tensorboardx()
    from ray.tune.logger import TBXLoggerCallback
    return [TBXLoggerCallback()]


def storage_layout(results: Path, storage: str | None) -> tuple[Path, str]:
    """Where trials write records and checkpoints, and where Ray Tune keeps its state.

    A storage *path* (a shared filesystem every node mounts) holds both, so a run resumes
    on whichever node picks it up; a storage *URI* (e.g. s3://...) holds Ray Tune's state
    only, and trials keep checkpoints on their node's disk. Either way the final records
    come back to ``results`` on the driver.
    """
    if storage is None:
        return results, str(results / ".tune")
    if "://" in storage:
        return results, storage
    shared = Path(storage).expanduser().resolve()
    return shared / "records", str(shared / "tune")


def fit(trials: list[Trial], experiment: Experiment, results: Path, storage, data_dir, device, verbose,
        log,
        tensorboard: bool = False) -> dict[str, str]:
    """One Ray Tune run of ``trials``; returns each trial's outcome (finished, failed: ..., elsewhere)."""
    import ray
    from ray import tune

    printer = ProgressPrinter(log, experiment.profile, results, data_dir)
    trial_results, tune_storage = storage_layout(results, storage)
    # trials trained at once while enough are pending (a record's timing condition)
    cluster, wanted = ray.cluster_resources(), experiment.resources
    slots = [int(cluster.get(kind, 0) // need) for kind, need in (("CPU", wanted.cpu), ("GPU", wanted.gpu)) if need]
    concurrent = max(1, min([len(trials), *slots]))
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, profile=experiment.profile, results=str(trial_results),
                             data_dir=data_dir, device=device if experiment.resources.gpu else "cpu",
                             concurrent_trials=concurrent),
        {"cpu": experiment.resources.cpu, "gpu": experiment.resources.gpu})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([t.__dict__ for t in trials])},
        tune_config=tune.TuneConfig(reuse_actors=True),
        # the process id keeps the Tune state of two sweeps started in the same second apart
        run_config=tune.RunConfig(name=f"sweep-{experiment.profile}-{int(time.time())}-{os.getpid()}",
                                  storage_path=tune_storage, verbose=2 if verbose else 0,
                                  callbacks=[printer.callback(), *tensorboard_callbacks(tensorboard)]))
    tuner.fit()
    return printer.outcomes


def unfinished(trials: list[Trial], profile: str, results: Path, log,
               reuse_from: tuple[Path, ...] = ()) -> tuple[list[Trial], int]:
    """The trials without a finished record, after reusing finished runs of the same
    configuration (:func:`adopt_finished_twin`); and how many were reused."""
    pending, reused = [], 0
    for trial in trials:
        path = record_path(trial, profile, results)
        if is_finished(path):
            continue
        if adopt_finished_twin(path, trial.label, results, log, reuse_from):
            reused += 1
            continue
        pending.append(trial)
    return pending, reused


def wait_until_free(trials: list[Trial], profile: str, results: Path, log, poll_seconds: float = 2.0) -> None:
    """Wait while other processes hold the locks of ``trials`` (their runs end finished, or
    free for this sweep to run)."""
    from bench.core.runlock import is_locked
    folders = {t.name: record_path(t, profile, results).parent for t in trials}
    if folders:
        log(f"waiting for {len(folders)} runs that another process is training: {', '.join(folders)}")
    while folders:
        folders = {name: folder for name, folder in folders.items() if is_locked(folder)}
        time.sleep(poll_seconds if folders else 0)


def sweep(experiment: Experiment, results: Path, data_dir: str | None = None, address: str | None = None,
          storage: str | None = None, device: str = "auto", only_datasets=None, only_seeds=None,
          verbose: bool = False, log=print, cpus: int | None = None, plan: bool = False,
          tensorboard: bool = False, reuse_from: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Run every unfinished trial of ``experiment``; returns a summary. ``cpus`` caps the
    CPUs of a local Ray (default: all of this machine's); ``plan``: list them, train nothing;
    ``reuse_from``: other results folders whose finished runs of a trial's configuration are
    copied in, not trained again."""
    started = time.perf_counter()
    results = Path(results).resolve()
    trials = expand(experiment, only_datasets, only_seeds)
    pending, reused = unfinished(trials, experiment.profile, results, log,
                                 tuple(Path(folder).resolve() for folder in reuse_from))
    skipped = len(trials) - len(pending)
    log(f"{len(trials)} runs ({experiment.profile} profile): {skipped} already finished"
        + (f" ({reused} of them reused from runs of the same configuration)" if reused else "")
        + f", {len(pending)} to run")
    if plan:
        for trial in pending:
            log(f"  to run: {trial.name}")
        return {"runs": len(trials), "skipped": skipped, "finished": 0, "failed": 0, "to_run": len(pending)}
    outcomes: dict[str, str] = {}
    if pending:
        files.check_writable(results)  # before Ray, which keeps its state under it
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # quiet: no status tables on stdout
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        import logging
        import ray

        attached = bool(address or os.environ.get("RAY_ADDRESS"))
        if attached:
            check_reachable(address or os.environ["RAY_ADDRESS"])
        # not attached: a Ray of its own ("local"), even where `ray start` runs a cluster on this machine
        ray.init(address=address if attached else "local", include_dashboard=False, log_to_driver=verbose,
                 logging_level=logging.INFO if verbose else logging.ERROR,
                 **({} if attached else {"num_cpus": cpus or os.cpu_count()}))
        if not verbose:  # a trial that dies is one FAILED line (sweep.died), not Ray Tune's traceback
            logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
        if threading.current_thread() is threading.main_thread():
            handle_sigterm()  # Ray's own handler dumps a stack; ours ends with one line, Ray shut down
        try:
            check_gpus(experiment.resources, attached)
            to_run = pending
            while to_run:  # a run that another process was training is checked again once it is free
                outcomes.update(fit(to_run, experiment, results, storage, data_dir, device, verbose, log, tensorboard))
                elsewhere = [t for t in to_run if outcomes.get(t.name) == "elsewhere"]
                wait_until_free(elsewhere, experiment.profile, storage_layout(results, storage)[0], log)
                to_run = [t for t in elsewhere if not is_finished(record_path(t, experiment.profile, results))]
        finally:
            ray.shutdown()
    finished = sum(is_finished(record_path(t, experiment.profile, results)) for t in pending)
    failed = {name: why for name, why in outcomes.items() if why.startswith("failed")}
    by_others = sum(why == "elsewhere" for why in outcomes.values())
    summary = {"runs": len(trials), "skipped": skipped, "finished": finished, "failed": len(pending) - finished,
               "failures": failed, "finished_elsewhere": by_others, "wall_clock_s": time.perf_counter() - started}
    # Ray Tune's own Ctrl-C handler ends its loop early and returns: the only way a trial is
    # neither finished nor failed (nor left to another process, which is waited for)
    not_run = summary["stopped"] = summary["failed"] - len(failed)
    log(f"summary: {finished} finished ({by_others} of them by another process), {len(failed)} failed, "
        + (f"{not_run} not finished (stopped; run the same command again to continue), " if not_run else "")
        + f"{skipped} skipped (already finished); "
        f"wall-clock {summary['wall_clock_s'] / 60:.1f} min; records under {results / experiment.profile}")
    for name, why in failed.items():
        log(f"  {name}: {why}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench sweep", description="Run an experiment grid (method x dataset x seed) on Ray Tune.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m bench sweep experiments/cpu.yaml --data-dir ../shared/data\n"
               "  python -m bench sweep experiments/paper.yaml --datasets yahoo --seeds 0,1,2\n"
               "  python -m bench sweep experiments/scale_data.yaml --points ptb5k --seeds 0   # one point, one seed\n"
               "  python -m bench sweep experiments/real_text.yaml --runs vae,pooling_max   # two of its runs\n"
               "  python -m bench sweep experiments/scale_width_paper.yaml --results results/real_text \\\n"
               "      --reuse-from results/bf16_check_w512   # its float32 runs: copied in, not trained again\n"
               "  python -m bench sweep experiments/smoke.yaml --address auto   # an existing Ray cluster\n")
    parser.add_argument("experiment", type=Path, help="experiment YAML (see experiments/)")
    parser.add_argument("--datasets", metavar="A,B", help="only these of the experiment's datasets (or the built-in synthetic one)")
    parser.add_argument("--seeds", metavar="0,1", help="seeds instead of the experiment's")
    parser.add_argument("--points", metavar="A,B", help="only these of a scale experiment's points")
    parser.add_argument("--runs", metavar="A,B", help="only the runs with these labels")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (default: $BENCH_DATA_DIR)")
    parser.add_argument("--results", type=Path, default=records.DEFAULT_RESULTS, metavar="DIR",
                        help="results folder (default: results/)")
    parser.add_argument("--address", metavar="auto|HOST:PORT", help="attach to a running Ray cluster "
                        "(default: $RAY_ADDRESS, else a local Ray started for this sweep)")
    parser.add_argument("--storage", metavar="PATH_OR_URI",
                        help="storage every node can reach: a shared path for checkpoints, records and Tune state, "
                             "or a URI for Tune state (default: RESULTS/.tune, for one machine)")
    parser.add_argument("--device", default="auto", metavar="DEV", help="device for GPU trials: cuda or auto")
    parser.add_argument("--cpus", type=int, metavar="N",
                        help="CPUs a local Ray may use (default: all); e.g. 1 to keep a core free")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own logs and status tables")
    parser.add_argument("--tensorboard", action="store_true",
                        help="stream every trial's epoch curves to TensorBoard with Ray Tune's TBXLoggerCallback "
                             "(needs tensorboardX); then: tensorboard --logdir RESULTS/.tune (or the --storage path)")
    parser.add_argument("--plan", action="store_true",
                        help="list the runs still to train (after reusing finished runs of the same configuration "
                             "under other labels) and exit without training")
    parser.add_argument("--reuse-from", type=Path, action="append", default=[], metavar="DIR",
                        help="another results folder (e.g. another experiment's) whose finished runs of the same "
                             "configuration are copied in with adopted_from, not trained again; may be repeated")
    args = parser.parse_args(argv)
    for folder in args.reuse_from:
        if not folder.is_dir():
            raise BenchError(f"--reuse-from {folder}: no such results folder; name a folder that holds "
                             "<profile>/<dataset>/<label>/ records, e.g. results/bf16_check_w512")
    if args.tensorboard:  # a missing optional package is said now, not after Ray started
        from bench.core.tensorboard import require_tensorboardx
        require_tensorboardx()
    if args.cpus is not None and (args.cpus < 1 or args.address or os.environ.get("RAY_ADDRESS")):
        raise BenchError("--cpus must be >= 1 and applies to a local Ray only (not with --address)")
    experiment = load_experiment(args.experiment)
    datasets = None
    if args.datasets is not None:
        datasets = tuple(d.strip() for d in args.datasets.split(",") if d.strip())
        foreign = [d for d in datasets if d not in experiment.datasets and d != "synthetic"]  # built in: always
        if not datasets or foreign:
            raise BenchError(f"--datasets {args.datasets!r}: {'not in' if foreign else 'names none of'} the experiment's "
                             f"datasets ({', '.join(experiment.datasets)}) or the built-in synthetic; add a dataset to "
                             f"{args.experiment} itself")
    try:
        seeds = None if args.seeds is None else tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        raise BenchError(f"--seeds expects integers separated by commas, e.g. 0,1,2; got '{args.seeds}'") from None
    if seeds is not None and len(set(seeds)) != len(seeds):
        raise BenchError(f"--seeds {args.seeds} repeats a seed; each seed once (every run would be scheduled twice)")
    if args.points is not None:
        chosen = [p.strip() for p in args.points.split(",") if p.strip()]
        if not chosen or any(p not in experiment.points for p in chosen):
            stray = next((p for p in chosen if p not in experiment.points), "")
            raise BenchError(f"--points {args.points!r}{did_you_mean(stray, experiment.points)}: "
                             f"{'not among' if chosen else 'names none of'} the experiment's "
                             f"points ({', '.join(experiment.points) or 'it has none'})")
        experiment = dataclasses.replace(experiment, points={p: experiment.points[p] for p in experiment.points
                                                             if p in chosen})
    if args.runs is not None:
        labels = [label.strip() for label in args.runs.split(",") if label.strip()]
        known = [run.label for run in experiment.runs]
        stray = next((label for label in labels if label not in known), None)
        if not labels or stray:
            raise BenchError(f"--runs {args.runs!r}: {repr(stray) + did_you_mean(stray, known) if stray else 'names none'}"
                             f" not among the experiment's runs ({', '.join(known)})")
        experiment = dataclasses.replace(experiment, runs=[run for run in experiment.runs if run.label in labels])
    data_dir = args.data_dir or os.environ.get("BENCH_DATA_DIR")
    for trial in expand(experiment, datasets, seeds):  # validate every config before starting Ray
        check_trial(trial, experiment.profile, str(args.experiment))
    check_data_and_memory(expand(experiment, datasets, seeds), experiment, data_dir, str(args.experiment))
    summary = sweep(experiment, args.results, data_dir and str(Path(data_dir).resolve()), args.address,
                    args.storage, args.device, datasets, seeds, args.verbose,
                    log=lambda message: print(message, flush=True), cpus=args.cpus, plan=args.plan,
                    tensorboard=args.tensorboard, reuse_from=tuple(args.reuse_from))
    if summary.get("stopped") and not summary["failures"]:
        raise Interrupted(f"{summary['stopped']} runs not finished; results already written are kept; "
                          "run the same command again to continue")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    run_cli(main)
