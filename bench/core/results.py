"""The results layer: what a run record holds, and the one reader that turns records into rows.

A run record (``<results>/<profile>/<dataset>/<label>/seed<N>-<run id>/record.json``, written
by :mod:`bench.core.lifecycle`; a record of another run's configuration copied by a sweep also
has ``adopted_from``):

============================  ==============================================================
field                         what
============================  ==============================================================
``run_id``                    hash of the configuration (:func:`bench.core.records.run_id`)
``label``, ``method``         the run's name in tables, and the method module it ran
``dataset``, ``profile``,     what it ran on, at which profile, with which training seed
``seed``
``config``                    the whole :class:`~bench.core.config.RunConfig` (``to_dict``)
``method_settings``           the method's typed settings as used
``uses_latent``               False for a model without a latent (the language model)
``status``                    ``running``, ``finished`` or ``failed`` (then ``error``)
``metrics.test``              test-split evaluation (:func:`bench.core.metrics.evaluate`): the
                              metrics of :data:`bench.core.metric_specs.TEST_METRICS`, ``mi_se``,
                              ``mi_batch``, ``mi_above_kl``, ``iw_samples``, ``iw_sentences``,
                              ``nll_per_sentence``, the dispersion statistics
                              (``feature_cosine_distance``, ...); records written before the
                              whole-split MI existed have He et al.'s batch estimate as ``mi``
                              and its noise floor as ``mi_noise`` (:func:`mi_columns`)
``metrics.test_refined``      the same with the method's refined posterior (SA-VAE), if any
``metrics.valid``             validation metrics of the best epoch
``timing``                    ``train_seconds``, ``train_hours``, ``valid_eval_seconds``,
                              ``test_eval_seconds``, ``train_cpu_share``, ``load_per_core``,
                              ``host_speed`` (:func:`bench.core.environment.host_speed`)
``concurrent_trials``         trials its sweep trained at once (1 for ``bench.cli.train``)
``curves``                    one row per epoch: training and validation metrics, lr, times
``samples``                   text read off the final model (:mod:`bench.core.samples`):
                              reconstructions, prior samples, an interpolation
``environment``, ``code``     packages, hardware, host; the code version (``code.dirty``: the
                              tree had uncommitted changes: no verdict rests on such a record)
``sessions``                  each process that trained it (host, pid, start, first epoch)
============================  ==============================================================

Records are read leniently: a metric that a record predates (added to ``metric_specs``
after it was written) is NaN in its row, never an error, so that old results stay readable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench.core import records
from bench.core.metric_specs import TEST_METRICS

SHARED_CORES = "shared cores"  # the condition of a CPU run below OWN_CORES_SHARE
OWN_CORES_SHARE = 0.85  # a CPU run that got at least this CPU share (per thread) had its cores
# Runs whose host speeds differ by more than this factor are not timed alike: above the probe's
# spread on one host (scripts/host_speed_spread.py: 1.28x over 8 probes alone, 1.40x beside other
# work on the same core), below the 2x that one configuration's training time changed between
# two hosts (environment.host_speed).
HOST_SPEED_TOLERANCE = 1.5
REFINED_SUFFIX = " [SVI-refined q]"  # the label of a row evaluated with the method's refined posterior
EVALUATIONS = (("", "test"), (REFINED_SUFFIX, "test_refined"))
DISPERSION = ("feature_variance", "feature_cosine_distance", "mu_variance", "max_at_start", "max_at_end")
ID_COLUMNS = ("label", "dataset", "profile", "seed", "run_id", "evaluation")
MI_COLUMNS = ("mi_se", "mi_estimator", "mi_batch", "mi_above_kl")
ROW_COLUMNS = (*ID_COLUMNS, "method", "uses_latent", "precision", "setting", *(m.name for m in TEST_METRICS),
               *MI_COLUMNS, "clean", "iw_samples",
               "iw_sentences", "nll_per_sentence", *DISPERSION, "final_valid_kl", "lr_decays",
               "train_hours", "timing_condition", "host_speed", "hardware")


def run_rows(found: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per finished run and evaluation (a refined-posterior evaluation is a second row,
    labelled ``<label> [SVI-refined q]``), with the columns of ``ROW_COLUMNS``."""
    rows = []
    for record in found:
        last_epoch = record["curves"][-1] if record.get("curves") else {}
        for suffix, key in EVALUATIONS:
            test = record.get("metrics", {}).get(key)
            if test is None:
                continue
            rows.append({"label": record.get("label", record["method"]) + suffix, "dataset": record["dataset"],
                         "profile": record["profile"], "seed": record["seed"], "run_id": record.get("run_id"),
                         "evaluation": key, "method": record["method"], "uses_latent": uses_latent(record),
                         "precision": precision(record), "setting": setting_apart_from_precision(record),
                         **{m.name: test.get(m.name, math.nan) for m in TEST_METRICS},
                         **mi_columns(record, key), "clean": clean_tree(record), "iw_samples": test.get("iw_samples"),
                         "iw_sentences": test.get("iw_sentences"), "nll_per_sentence": test.get("nll_per_sentence"),
                         **{name: test.get(name, math.nan) for name in DISPERSION},
                         "final_valid_kl": last_epoch.get("valid_kl", math.nan),
                         "lr_decays": lr_decays(record),
                         "train_hours": record.get("timing", {}).get("train_hours", math.nan),
                         "timing_condition": timing_condition(record),
                         "host_speed": record.get("timing", {}).get("host_speed", math.nan),
                         "hardware": hardware_label(record)})
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


POINT_SEPARATOR = "@"  # a scale point's run label: "<method label>@<point>" (bench.cli.sweep.expand)


def without_points(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` less those of scale-study points (``label@point``): a comparison table or report
    compares methods at one setting; the points along an axis are :mod:`bench.analysis.scale`'s."""
    return rows[~rows["label"].str.contains(POINT_SEPARATOR, regex=False)] if len(rows) else rows


def points_of(rows: pd.DataFrame) -> list[str]:
    """The scale-study points that ``rows`` hold runs of (``label@point``), sorted."""
    labels = rows["label"] if len(rows) else []
    return sorted({label.rsplit(POINT_SEPARATOR, 1)[1] for label in labels if POINT_SEPARATOR in label})


def at_point(rows: pd.DataFrame, point: str) -> pd.DataFrame:
    """The rows of one scale-study point (``label@point``), labelled by their method label alone:
    the methods compared at that setting, as a comparison table shows them."""
    suffix = POINT_SEPARATOR + point
    mine = rows[rows["label"].str.endswith(suffix)] if len(rows) else rows
    return mine.assign(label=mine["label"].str.removesuffix(suffix)) if len(mine) else mine


def read_runs(results: Path, profile: str | None = None,
              datasets: list[str] | None = None) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The finished records under ``results`` (one profile; some datasets) as rows, and the records."""
    found = records.finished_records(results, profile, datasets)
    return run_rows(found), found


def tidy(rows: pd.DataFrame) -> pd.DataFrame:
    """Run x metric rows (``label, dataset, profile, seed, run_id, evaluation, metric, value``):
    the long form of :func:`run_rows` for tools that want one measurement per row."""
    metrics = [m.name for m in TEST_METRICS] + ["mi_se", "mi_batch", *DISPERSION, "train_hours"]
    long = rows.melt(id_vars=list(ID_COLUMNS), value_vars=metrics, var_name="metric", value_name="value")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def per_seed(rows: pd.DataFrame, label: str, metric: str) -> dict[int, float]:
    """``metric`` of ``label``'s runs by seed (a seed's copies, e.g. adopted records of the same
    run, are one run: their mean)."""
    runs = rows[rows["label"] == label].dropna(subset=[metric])
    return {int(seed): float(group[metric].astype(float).mean()) for seed, group in runs.groupby("seed")}


def incomparable(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> str | None:
    """Why ``metric`` cannot be compared between runs ``a`` and ``b`` (its two sides), or None: MI
    from different estimators, an NLL scored on different test sentences (the first N of the
    split: the same N, the same sentences), or runs trained at different precisions, unless the
    two sides are one configuration trained in float32 and in bfloat16 (the bfloat16 check's
    comparison): a table never mixes precisions within any other comparison."""
    runs = pd.concat([a, b])
    if "precision" in runs and runs["precision"].nunique() > 1 and not (
            a["precision"].nunique() == b["precision"].nunique() == 1
            and runs["setting"].notna().all() and runs["setting"].nunique() == 1):
        return "trained at different precisions (float32 and bfloat16)"
    if metric == "mi" and runs["mi_estimator"].dropna().nunique() > 1:
        return "MI estimated differently on the two sides"
    if metric in ("nll", "ppl") and runs["iw_sentences"].nunique(dropna=False) > 1:
        return "scored on different test sentences"
    return None


# -- queries on one record ---------------------------------------------------------------
def precision(record: dict[str, Any]) -> str:
    """The precision the run trained at: ``bfloat16`` under ``train.bf16``, else ``float32``."""
    return "bfloat16" if record.get("config", {}).get("train", {}).get("bf16") else "float32"


def setting_apart_from_precision(record: dict[str, Any]) -> str | None:
    """The run's configuration and method settings less its seed and training precision, as one
    string (None for a record without its configuration): two runs with the same one are the same
    method trained twice, whichever precision each used."""
    if "config" not in record:
        return None
    config = {**record["config"], "seed": None, "train": {**record["config"].get("train", {}), "bf16": None}}
    return json.dumps([config, record.get("method_settings")], sort_keys=True)


def uses_latent(record: dict[str, Any]) -> bool:
    """Whether the run's model has a latent variable (the language model has none). Every
    record states it (lifecycle.new_record; the committed records written before the field
    existed were backfilled); a record without it is taken to have one."""
    return bool(record.get("uses_latent", True))


def lr_decays(record: dict[str, Any]) -> float:
    """How many times the learning-rate rule cut the rate: the epochs whose ``lr`` is below the
    epoch's before (NaN for a record whose curves hold no rate)."""
    rates = [epoch["lr"] for epoch in record.get("curves") or [] if epoch.get("lr") is not None]
    return float(sum(later < earlier for earlier, later in zip(rates, rates[1:]))) if rates else math.nan


AGGREGATE, BATCH = "aggregate", "batch"  # the MI estimators (bench.core.metrics)


def mi_columns(record: dict[str, Any], key: str = "test") -> dict[str, Any]:
    """A record's MI as the tables read it: ``mi`` (the estimate verdicts use), ``mi_se`` (its
    standard error, 1 sd), ``mi_estimator``, ``mi_batch`` (He et al.'s batch estimate) and
    ``mi_above_kl``. Records written since the whole-split estimate exists
    (:func:`bench.core.metrics.mutual_information`) have both; for an older record, whose model
    is gone, ``mi`` is the batch estimate (``mi_estimator`` says so) and ``mi_se`` the batch
    estimator's noise floor for a model without information (its standard deviation at MI 0,
    :func:`bench.core.metrics.mi_batch_noise_floor`, derived where the record predates it)."""
    from bench.core.metrics import mi_batch_noise_floor, mi_exceeds_kl
    test = record["metrics"][key]
    mi, kl = test.get("mi", math.nan), test.get("kl", math.nan)
    if "mi_batch" in test:
        return {"mi_se": test.get("mi_se", math.nan), "mi_estimator": AGGREGATE, "mi_batch": test["mi_batch"],
                "mi_above_kl": bool(test.get("mi_above_kl", False))}
    noise = test.get("mi_noise")
    if noise is None:
        latent = record.get("config", {}).get("model", {}).get("latent_dim") if uses_latent(record) else 0
        noise = math.nan if latent is None or not test.get("sentences") else \
            mi_batch_noise_floor(latent, int(test["sentences"]))
    above = uses_latent(record) and not math.isnan(mi) and not math.isnan(kl) and mi_exceeds_kl(mi, kl, noise)
    return {"mi_se": float(noise), "mi_estimator": BATCH, "mi_batch": mi, "mi_above_kl": bool(above)}


def clean_tree(record: dict[str, Any]) -> bool:
    """Whether the record was made from committed code (``code.dirty`` false): only such a record
    can be reproduced, so only such records carry verdicts (a record that does not say is not)."""
    return record.get("code", {}).get("dirty") is False


def hardware_label(record: dict[str, Any]) -> str:
    """Short name of the hardware a record ran on, e.g. 'NVIDIA H100' or 'CPU x2'."""
    hardware = record.get("environment", {}).get("hardware", {})
    return hardware.get("gpu") or f"CPU x{hardware.get('torch_threads', '?')}"


def timing_condition(record: dict[str, Any]) -> str | None:
    """The conditions a run's training time was measured under, as a label: hardware, trials
    trained at once, and on a CPU whether the run had its cores (``train_cpu_share``, the
    process's CPU time per wall-clock second per thread, at least ``OWN_CORES_SHARE``) or
    shared them with other work. Training times are compared only between runs of one
    condition that is not ``shared cores`` (bench.cli.compare.time_ratio). None for records made
    before the conditions were recorded."""
    timing, hardware = record.get("timing", {}), hardware_label(record)
    share = timing.get("train_cpu_share")
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return None
    at_once = f"{record.get('concurrent_trials', 1)} trial(s) at once"
    if record.get("environment", {}).get("hardware", {}).get("gpu"):
        return f"{hardware}, {at_once}"
    return f"{hardware}, {at_once}, {'own cores' if share >= OWN_CORES_SHARE else SHARED_CORES}"


def timing_problem(conditions: Iterable[str | None], host_speeds: Iterable[float]) -> str | None:
    """Why the training times of runs timed under ``conditions`` on hosts of ``host_speeds``
    (NaN: not recorded) cannot be compared, or None when they can: every condition recorded, one
    condition, one in which each run had its cores, and the host speeds, where recorded, within a
    factor ``HOST_SPEED_TOLERANCE`` of each other (a record made before they were recorded is
    compared only with others of its kind: its host's speed is unknown)."""
    conditions, speeds = list(conditions), [float(speed) for speed in host_speeds]
    if not conditions or any(pd.isna(condition) for condition in conditions):  # None or NaN
        return "timing conditions not recorded (records made before they were)"
    if len(set(conditions)) > 1:
        return "timed under different conditions: " + "; ".join(sorted(set(conditions)))
    if not timed_alone(conditions[0]):
        return f"timed while other work shared the cores ({conditions[0]})"
    known = [speed for speed in speeds if not math.isnan(speed)]
    if known and len(known) < len(speeds):
        return "host speed recorded for some runs only (records made before it was)"
    if known and max(known) > HOST_SPEED_TOLERANCE * min(known):
        return (f"timed on hosts of different speed (reference step {min(known):,.0f} to {max(known):,.0f} "
                f"tokens/s, more than {HOST_SPEED_TOLERANCE}x apart)")
    return None


def timed_alone(condition: str | None) -> bool:
    """Whether a timing condition is recorded and one under which times can be compared (the run
    did not share its cores with other work)."""
    return condition is not None and not condition.endswith(SHARED_CORES)


def present(results: Path) -> str:
    """What finished records ``results`` holds, as 'present: profile P / dataset, ...' (for errors)."""
    pairs = sorted({f"profile {path.parts[-5]} / {path.parts[-4]}"  # <profile>/<dataset>/<label>/<run>/
                    for path in Path(results).glob(f"*/*/*/*/{records.RECORD_NAME}")})
    return f"present: {', '.join(pairs)}" if pairs else "it holds no finished records"


def present_profiles(results: Path) -> list[str]:
    """The profiles that ``results`` holds records of."""
    return sorted({path.parts[-5] for path in Path(results).glob(f"*/*/*/*/{records.RECORD_NAME}")})
