"""The results layer: one lenient reader of run records for compare, report and the scale study."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core import results

ROOT = Path(__file__).resolve().parent.parent


def test_a_record_missing_newer_fields_reads_as_nan_not_an_error():
    old = {"label": "vae", "method": "vae", "dataset": "d", "profile": "cpu", "seed": 0, "uses_latent": True,
           "metrics": {"test": {"nll": 40.0, "kl": 0.0, "mi": 0.0, "au": 0}}, "timing": {"train_hours": 1.0},
           "curves": [], "environment": {"hardware": {"torch_threads": 1}}}
    (row,) = results.run_rows([old]).to_dict("records")
    assert row["nll"] == 40.0 and math.isnan(row["ppl"]) and math.isnan(row["feature_cosine_distance"])
    assert row["timing_condition"] is None and row["evaluation"] == "test" and row["hardware"] == "CPU x1"
    assert list(results.run_rows([]).columns) == list(results.ROW_COLUMNS)


def test_a_metric_added_to_the_specs_leaves_the_committed_records_readable(tmp_path):
    """As if a developer declared a new metric in metric_specs.py: compare and report still read
    every committed record of the cpu experiment (which predate it), in a fresh interpreter."""
    script = (
        "from pathlib import Path\n"
        "from bench.core import metric_specs\n"
        "new = metric_specs.MetricSpec('bleu', 'BLEU', 'max', 2, 'a metric no committed record has')\n"
        "metric_specs.TEST_METRICS = (*metric_specs.TEST_METRICS, new)\n"
        "metric_specs.BY_NAME['bleu'] = new\n"
        "from bench.cli import compare\nfrom bench.analysis import report\n"
        f"compare.main(['--datasets', 'synthetic', '--results', 'results', '--profile', 'cpu', '--format', 'md,csv', "
        f"'--out', r'{tmp_path}'])\n"
        f"report.write_report(Path('results'), 'cpu', Path(r'{tmp_path}'))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bleu_mean" in (tmp_path / "comparison.csv").read_text().splitlines()[0]
    assert "**RQ2 (synthetic" in (tmp_path / "REPORT.md").read_text()


def test_lr_decays_counts_the_epochs_whose_rate_was_cut():
    curves = [{"lr": lr} for lr in (1.0, 1.0, 0.5, 0.5, 0.25)]
    assert results.lr_decays({"curves": curves}) == 2
    assert results.lr_decays({"curves": [{"lr": 1.0}] * 4}) == 0
    assert math.isnan(results.lr_decays({"curves": []}))


def test_timing_problem_names_why_times_cannot_be_compared():
    alone = "CPU x1, 2 trial(s) at once, own cores"
    assert results.timing_problem([alone, alone], [math.nan, math.nan]) is None  # older records: as before
    assert results.timing_problem([alone, alone], [20000.0, 13334.0]) is None  # within 1.5x
    assert "different speed" in results.timing_problem([alone, alone], [20000.0, 13333.0])
    assert "some runs only" in results.timing_problem([alone, alone], [20000.0, math.nan])
    assert "not recorded" in results.timing_problem([alone, None], [1.0, 1.0])
    assert "different conditions" in results.timing_problem([alone, "GPU, 1 trial(s) at once"], [1.0, 1.0])
    assert "shared the cores" in results.timing_problem(["CPU x1, 1 trial(s) at once, shared cores"], [1.0])


def test_host_speed_probe_leaves_the_runs_random_state_alone():
    import torch

    from bench.core.environment import host_speed

    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    speed = host_speed(torch.device("cpu"))
    assert torch.equal(torch.rand(4), expected)  # a run seeded before the probe draws what it would have
    assert math.isfinite(speed) and speed > 0


@pytest.mark.parametrize("content, words", [
    (b"\x80\x81\x00binary", "not text (binary bytes)"),
    (b'{"status": "finished"}', "says finished but has no method, dataset, profile, seed, metrics.test"),
    (b'{"status": "finished", "method": "vae", "dataset": "d", "profile": "cpu", "seed": 3, "metrics": {}}',
     "says finished but has no metrics.test"),
    (b'{"status": "finished", "method": "v', "not valid JSON"),
    (b"[1, 2]", "not a record"),
])
def test_a_damaged_record_is_listed_in_one_line_and_the_others_are_read(tmp_path, capsys, content, words):
    from bench.core import records
    good = {"label": "vae", "method": "vae", "dataset": "d", "profile": "cpu", "seed": 0, "status": "finished",
            "metrics": {"test": {"nll": 1.0}}}
    for seed, payload in ((0, json.dumps(good).encode()), (1, content)):
        folder = tmp_path / "cpu" / "d" / "vae" / f"seed{seed}-x"
        folder.mkdir(parents=True)
        (folder / "record.json").write_bytes(payload)
    found = records.finished_records(tmp_path)
    assert [r["seed"] for r in found] == [0]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed1-x/record.json" in err and words in err


def test_the_rounding_floor_pairs_runs_by_run_id_and_gives_known_differences(tmp_path, capsys):
    """scripts/rounding_floor.py: A - B over the runs both folders hold (same dataset and run id):
    NLL differences 1, 0, 0.5 give mean +0.50, sd 0.50, mean |d| 0.50; a run in one folder only,
    and a bfloat16 run, are left out; no run in common is a one-line error."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import rounding_floor

    def write(folder, seed, nll, capability, bf16=False, run_id=None):
        record = {"label": "vae", "method": "vae", "dataset": "ptb", "profile": "cpu_text", "seed": seed,
                  "run_id": run_id or f"seed{seed}-abc", "status": "finished", "uses_latent": True,
                  "config": {"train": {"bf16": bf16}},
                  "metrics": {"test": {"nll": nll, "kl": 0.1, "mi": 0.0, "au": 0}}, "timing": {"train_hours": 1.0},
                  "curves": [], "environment": {"hardware": {"torch_threads": 1, "cpu_capability": capability}}}
        path = folder / "cpu_text" / "ptb" / "vae" / record["run_id"] / "record.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(record))
    a, b = tmp_path / "a", tmp_path / "b"
    for seed, (nll_a, nll_b) in enumerate([(100.0, 99.0), (101.0, 101.0), (102.0, 101.5)]):
        write(a, seed, nll_a, "AVX512")
        write(b, seed, nll_b, "AVX2")
    write(a, 3, 500.0, "AVX512")  # in A only
    write(a, 4, 500.0, "AVX512", bf16=True, run_id="seed4-bf")
    write(b, 4, 100.0, "AVX2", run_id="seed4-bf")  # same run id, but A's side is bfloat16
    assert rounding_floor.main([str(a), str(b)]) == 0
    row = capsys.readouterr().out.splitlines()[2]
    assert row.startswith("| vae | ptb | AVX512 / AVX2 | 0,1,2 | +0.50, 0.50, 0.50 | +0.00, 0.00, 0.00 |")
    assert rounding_floor.main([str(a), str(b), "--dataset", "yahoo"]) == 1
    assert "no run" in capsys.readouterr().err
