"""A sweep attached to a two-node Ray cluster started on this machine."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.core import records
from bench.cli.sweep import expand, load_experiment, record_path

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def two_node_cluster(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster, worker
    cluster.shutdown()


def experiment_file(tmp_path, runs, epochs):
    path = tmp_path / "exp.yaml"
    path.write_text(f"profile: smoke\ndatasets: [synthetic]\nseeds: [0, 1, 2]\nresources: {{cpu: 1}}\n"
                    f"settings: {{train: {{max_epochs: {epochs}}}}}\nruns: {runs}\n")
    return path


def sweep(experiment, results, address, **kwargs):
    command = [sys.executable, "-m", "bench.cli.sweep", str(experiment), "--results", str(results), "--address", address]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, **kwargs)


def all_records(experiment, results):
    loaded = load_experiment(experiment)
    return {t.name: records.load_record(record_path(t, "smoke", results)) for t in expand(loaded)}


def test_trials_run_on_both_nodes_and_survive_a_dead_worker(tmp_path, two_node_cluster):
    cluster, worker = two_node_cluster
    experiment = experiment_file(tmp_path, "[vae, lm]", epochs=40)  # 6 trials of several seconds each
    results = tmp_path / "results"
    first = sweep(experiment, results, cluster.address)
    deadline = time.time() + 240
    def worker_finished_one():
        return any(records.load_record(p).get("ray_node", {}).get("node_id") == worker.node_id
                   for p in results.rglob(records.RECORD_NAME))

    def trials_in_progress():  # a checkpoint is written after each epoch and removed with the record
        return len(list(results.rglob(records.CHECKPOINT_NAME)))

    while time.time() < deadline and not (worker_finished_one() and trials_in_progress() == 2):
        time.sleep(0.1)
    assert trials_in_progress() == 2, "no moment with a trial running on each node"
    cluster.remove_node(worker, allow_graceful=False)  # the worker dies mid-trial (each lasts 40 epochs)
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 1 and "FAILED" in output, output  # the kill interrupted a running trial
    rerun = sweep(experiment, results, cluster.address)
    rerun_output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output + rerun_output
    found = all_records(experiment, results)
    assert len(found) == 6 and all(r["status"] == "finished" for r in found.values())
    for name in found:  # exactly one record folder per run
        label, dataset, seed = name.split("/")
        assert len(list((results / "smoke" / dataset / label).glob(f"{seed}-*"))) == 1
    nodes = {r["ray_node"]["node_id"] for r in found.values()}
    for name, record in sorted(found.items()):  # shown with pytest -s
        role = "worker" if record["ray_node"]["node_id"] == worker.node_id else "head"
        print(f"placement: {name} on the {role} node ({record['ray_node']['node_id'][:8]})")
    print("first sweep:", [line for line in output.splitlines() if line.startswith(("summary", "FAILED"))])
    print("re-run:", [line for line in rerun_output.splitlines() if line.startswith(("summary", "FAILED", "6 runs"))])
    assert worker.node_id in nodes and len(nodes) == 2, (nodes, output)  # both nodes ran trials
