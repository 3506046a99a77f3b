"""Sweeps on Ray Tune: every run recorded exactly once, even across a kill and restart."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.core import records
from bench.core.errors import BenchError
from bench.cli.sweep import expand, load_experiment, record_path

ROOT = Path(__file__).resolve().parent.parent


def write_experiment(tmp_path, runs, epochs=2, extra="", seeds="[0, 1]"):
    path = tmp_path / "exp.yaml"
    path.write_text(f"profile: smoke\ndatasets: [synthetic]\nseeds: {seeds}\nresources: {{cpu: 1}}\n"
                    f"settings: {{train: {{max_epochs: {epochs}}}}}\nruns: {runs}\n{extra}")
    return path


def sweep_command(experiment, results):
    return [sys.executable, "-m", "bench.cli.sweep", str(experiment), "--results", str(results)]


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_committed_experiments_build(path):
    """Every committed experiment file loads, and every run it expands to builds its config and
    method, as the sweep checks before starting Ray (a typo in a long study fails here, not hours in)."""
    from bench.cli.sweep import check_trial

    experiment = load_experiment(path)
    trials = expand(experiment)
    assert trials and len({(t.name, t.dataset, t.seed) for t in trials}) == len(trials)
    for trial in trials:
        check_trial(trial, experiment.profile, path.name)


def test_experiment_validation(tmp_path):
    with pytest.raises(BenchError, match="unknown key 'method'"):
        load_experiment(write_experiment(tmp_path, "[vae]", extra="method: vae"))
    with pytest.raises(BenchError, match="labels must be unique"):
        load_experiment(write_experiment(tmp_path, "[vae, vae]"))
    experiment = load_experiment(write_experiment(tmp_path, "[vae, {label: b2, method: beta_vae, "
                                                            "settings: {beta_vae: {beta: 0.2}}}]"))
    trials = expand(experiment)
    assert [t.name for t in trials] == ["vae/synthetic/seed0", "vae/synthetic/seed1",
                                        "b2/synthetic/seed0", "b2/synthetic/seed1"]
    assert trials[2].settings == {"train": {"max_epochs": 2}, "beta_vae": {"beta": 0.2}}
    own_seeds = load_experiment(write_experiment(tmp_path, "[vae, {label: vae_3x, method: vae, seeds: [0]}]"))
    assert [t.name for t in expand(own_seeds)] == ["vae/synthetic/seed0", "vae/synthetic/seed1",
                                                   "vae_3x/synthetic/seed0"]
    assert len(expand(own_seeds, only_seeds=(5,))) == 2  # --seeds applies to every run
    points = "points: {short: {train: {max_epochs: 1}}, long: {train: {max_epochs: 3}}}"
    own_points = load_experiment(write_experiment(tmp_path, "[vae, {label: agg, method: aggressive, points: [short]}]",
                                                  seeds="[0]", extra=points))
    assert [t.name for t in expand(own_points)] == ["vae@short/synthetic/seed0", "agg@short/synthetic/seed0",
                                                    "vae@long/synthetic/seed0"]
    with pytest.raises(BenchError, match=r"run agg: points \['medium'\] are not among the experiment's points"):
        load_experiment(write_experiment(tmp_path, "[{label: agg, method: aggressive, points: [medium]}]",
                                         extra=points))
    assert load_experiment(write_experiment(tmp_path, "[vae]", extra="confirmatory_seeds: [1]")).confirmatory_seeds == (1,)
    with pytest.raises(BenchError, match=r"confirmatory_seeds \[7\] are not among the experiment's seeds"):
        load_experiment(write_experiment(tmp_path, "[vae]", extra="confirmatory_seeds: [7]"))


def test_gpu_request_without_gpu_fails_fast(tmp_path):
    experiment = write_experiment(tmp_path, "[vae]").read_text().replace("{cpu: 1}", "{cpu: 1, gpu: 0.5}")
    (tmp_path / "gpu.yaml").write_text(experiment)
    started = time.time()
    no_gpu = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the same on a machine that has one: Ray then sees none
    result = subprocess.run(sweep_command(tmp_path / "gpu.yaml", tmp_path / "res"), capture_output=True,
                            text=True, timeout=120, cwd=ROOT, env=no_gpu)
    assert result.returncode == 2 and "asks for 0.5 GPU per trial but this machine has none" in result.stderr
    assert time.time() - started < 60


def test_sweep_killed_midway_then_rerun_records_every_run_once(tmp_path):
    experiment = write_experiment(tmp_path, "[vae, lm, pooling, {label: nan, method: vae, "
                                            "settings: {train: {lr: 1.0e+30}}}]", epochs=3, seeds="[0]")
    results = tmp_path / "results"
    first = subprocess.Popen(sweep_command(experiment, results), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, cwd=ROOT, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not any(
            records.load_record(p).get("status") == "finished" for p in results.rglob(records.RECORD_NAME)):
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)  # the whole sweep, Ray included, at an arbitrary moment
    first.wait()

    def finished_now():
        return {p: p.stat().st_mtime for p in results.rglob(records.RECORD_NAME)
                if records.load_record(p).get("status") == "finished"}

    finished_before, settled = finished_now(), time.time() + 60
    while time.time() < settled:  # a Ray worker outside the process group may still write its record
        time.sleep(3)
        if (now := finished_now()) == finished_before:
            break
        finished_before = now
    assert finished_before
    second = subprocess.run(sweep_command(experiment, results), capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert second.returncode == 1, second.stdout + second.stderr  # the diverging runs fail
    assert "FAILED nan/synthetic/seed0" in second.stdout and "lower train.lr" in second.stdout
    loaded = load_experiment(experiment)
    for trial in expand(loaded):
        path = record_path(trial, "smoke", results)
        record = records.load_record(path)
        assert record["status"] == ("failed" if trial.label == "nan" else "finished"), trial.name
        assert record["label"] == trial.label
        assert len(list(path.parent.parent.glob(f"seed{trial.seed}-*"))) == 1  # exactly one record per run
    for path, mtime in finished_before.items():
        assert path.stat().st_mtime == mtime  # finished records are never rewritten
    assert f"{len(finished_before)} already finished" in second.stdout
    third = subprocess.run(sweep_command(experiment, results), capture_output=True, text=True, timeout=300,
                           cwd=ROOT)
    assert "3 already finished, 1 to run" in third.stdout


def test_points_repeat_every_run_at_each_point_of_an_axis(tmp_path):
    path = write_experiment(tmp_path, "[vae, {label: fb, method: free_bits, settings: {data: {synthetic_length: 6}}}]",
                            extra="points: {len8: {data: {synthetic_length: 8}}, len12: {data: {synthetic_length: 12}}}\n",
                            seeds="[0]")
    trials = expand(load_experiment(path))
    assert [t.label for t in trials] == ["vae@len8", "fb@len8", "vae@len12", "fb@len12"]
    lengths = [t.settings["data"]["synthetic_length"] for t in trials]
    assert lengths == [8, 6, 12, 6]  # a run's own setting wins over its point's
    assert all(t.settings["train"]["max_epochs"] == 2 for t in trials)  # the experiment's reach every point
    assert len({record_path(t, "smoke", tmp_path) for t in trials}) == 4
    bad = write_experiment(tmp_path, "[vae]", extra="points: {a@b: {data: {synthetic_length: 8}}}\n")
    with pytest.raises(BenchError, match="may not contain '@'"):
        load_experiment(bad)


def test_a_finished_run_of_the_same_configuration_is_reused_not_trained_again(tmp_path, smoke_config):
    """An axis's base point that another experiment already ran: copied under the new label."""
    from bench.core.lifecycle import run
    from bench.cli.sweep import sweep
    results = tmp_path / "results"
    run(smoke_config("vae", train={"max_epochs": 2}), results, log=lambda message: None)  # the table's, label "vae"
    path = write_experiment(tmp_path, "[vae]", extra="points: {base: {}}\n", seeds="[0, 1]")
    experiment = load_experiment(path)
    trial, _ = expand(experiment)
    config_path = record_path(trial, "smoke", results)
    lines = []
    summary = sweep(experiment, results, log=lines.append, plan=True)  # reuses, trains nothing
    adopted = records.load_record(config_path)
    original = records.load_record(next(results.glob("smoke/synthetic/vae/*/record.json")))
    assert summary["skipped"] == 1 and "1 already finished (1 of them reused" in lines[1] and "1 to run" in lines[1]
    assert summary["to_run"] == 1 and lines[2] == "  to run: vae@base/synthetic/seed1"  # --plan: listed, not trained
    assert adopted["label"] == "vae@base" and adopted["adopted_from"] == "smoke/synthetic/vae/" + config_path.parent.name
    assert adopted["metrics"] == original["metrics"] and any("reused, not trained again" in l for l in lines)


def test_a_finished_run_in_another_results_folder_is_reused_with_reuse_from(tmp_path, smoke_config):
    """--reuse-from: another experiment's results folder (e.g. a check's float32 side) is searched
    too; without it the run would be trained again; a folder that is not there is one line."""
    from bench.core.lifecycle import run
    from bench.cli.sweep import main, sweep
    other, results = tmp_path / "other", tmp_path / "results"
    run(smoke_config("vae", train={"max_epochs": 2}), other, log=lambda message: None)
    experiment = load_experiment(write_experiment(tmp_path, "[vae]", extra="points: {base: {}}\n", seeds="[0]"))
    assert sweep(experiment, results, log=lambda message: None, plan=True)["to_run"] == 1  # not searched
    summary = sweep(experiment, results, log=lambda message: None, plan=True, reuse_from=(other,))
    adopted = records.load_record(record_path(expand(experiment)[0], "smoke", results))
    original_path = next(other.glob("smoke/synthetic/vae/*/record.json"))
    assert summary["to_run"] == 0 and summary["skipped"] == 1
    assert adopted["adopted_from"] == "../other/smoke/synthetic/vae/" + original_path.parent.name
    assert adopted["label"] == "vae@base" and adopted["metrics"] == records.load_record(original_path)["metrics"]
    with pytest.raises(BenchError, match="--reuse-from .*nowhere: no such results folder"):
        main([str(tmp_path / "exp.yaml"), "--results", str(results), "--reuse-from", str(tmp_path / "nowhere")])
