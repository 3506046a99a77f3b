"""The scale study's section and figure from hand-made records along one axis."""

import json
import re

import pytest

from bench.analysis import scale
from bench.core.errors import BenchError

EXPERIMENT = """\
profile: cpu
datasets: [synthetic]
seeds: [0, 1, 2]
points:
  short: {data: {synthetic_length: 10}}
  long: {data: {synthetic_length: 40}}
runs:
  - vae
  - {label: pooling_max, method: pooling, settings: {pooling: {pooling: max}}}
  - aggressive
"""


def write_record(results, label, point, seed, mi, au, dispersion, hours=1.0, results_of=None, dirty=False):
    folder = results / "cpu" / "synthetic" / f"{label}@{point}" / f"seed{seed}-{abs(hash((label, point))) % 10**6:06d}"
    folder.mkdir(parents=True)
    test = {"nll": 40.0 - mi, "kl": mi + 0.05, "mi": mi, "au": au, "ppl": 30.0, "iw_sentences": 200,
            "iw_samples": 100, "mi_se": 0.01, "mi_batch": mi, "feature_cosine_distance": dispersion,
            "feature_variance": 0.1, "mu_variance": 0.1}
    record = {"label": f"{label}@{point}", "method": label.split("_")[0], "dataset": "synthetic", "profile": "cpu",
              "seed": seed, "status": "finished", "run_id": results_of or f"{label}-{point}-{seed}",
              "code": {"commit": "abc", "dirty": dirty}, "metrics": {"test": test}, "curves": [{"valid_kl": mi}],
              "timing": {"train_hours": hours, "train_cpu_share": 1.0}, "concurrent_trials": 1,
              "environment": {"hardware": {"torch_threads": 1, "gpu": None}}}
    (folder / "record.json").write_text(json.dumps(record))


def test_scale_section_judges_each_remedy_paired_and_corrected_over_the_axis(tmp_path):
    experiment, results = tmp_path / "scale_toy.yaml", tmp_path / "results"
    experiment.write_text(EXPERIMENT)
    for seed in range(3):
        shared = [0.2, -0.1, 0.05][seed]  # the seed's evaluation noise, shared by every method
        for point in ("short", "long"):
            write_record(results, "vae", point, seed, shared, 0, 0.001)
            write_record(results, "pooling_max", point, seed, shared, 0, 0.2 + 0.01 * seed)  # dispersed, collapsed
        write_record(results, "aggressive", "short", seed, shared + 0.01 * seed, 0, 0.01)  # no information yet
        write_record(results, "aggressive", "long", seed, shared + 1.0 + 0.01 * seed, 1, 0.5, hours=4.0)
    out = tmp_path / "out"
    text = scale.write_scale_report([(experiment, results)], out).read_text()
    assert "## toy: data.synthetic_length" in text and "18 of 18 runs finished" in text
    assert "**Family: toy axis**, exploratory" in text and "4 comparisons (4 testable" in text
    assert re.search(r"\| aggressive +\| equivalent: \+0\.01 \[.*\| higher: \+1\.01 \[\+0\.99, \+1\.03\], n=3", text)
    assert re.search(r"\| pooling_max +\| (equivalent|not distinguishable): \+0\.00", text)
    assert re.search(r"\| long +\| aggressive +\| 3 +\| ", text)
    assert "### The research questions at each point" not in text  # one verdict table, not paragraphs per point
    assert (out / "figures" / "scale_toy.png").stat().st_size > 10_000
    assert (out / "figures" / "scale_summary.png").stat().st_size > 5_000 and "figures/scale_summary.png" in text


def test_a_point_shared_by_two_axes_is_judged_once_and_dirty_records_never(tmp_path):
    experiment, results = tmp_path / "scale_toy.yaml", tmp_path / "results"
    experiment.write_text(EXPERIMENT)
    other, other_results = tmp_path / "scale_other.yaml", tmp_path / "other"
    other.write_text(EXPERIMENT.replace("short: {data: {synthetic_length: 10}}", "base: {data: {synthetic_length: 40}}")
                     .replace("long: {data: {synthetic_length: 40}}", "wide: {model: {encoder_hidden: 99}}"))
    for seed in range(3):
        for label, mi in (("vae", 0.0), ("pooling_max", 1.0 + 0.01 * seed), ("aggressive", 0.5 + 0.01 * seed)):
            write_record(results, label, "short", seed, mi, 1, 0.1)
            write_record(results, label, "long", seed, mi, 1, 0.1, results_of=f"{label}-base-{seed}")
            write_record(other_results, label, "base", seed, mi, 1, 0.1)  # the same runs, adopted
            write_record(other_results, label, "wide", seed, mi, 1, 0.1, dirty=label == "pooling_max")
    text = scale.write_scale_report([(other, other_results), (experiment, results)], tmp_path / "out").read_text()
    assert "long: the same runs as other base, judged there" in text
    assert "**Family: toy axis**, exploratory (the records were seen before this family was stated): 2 comparisons" in text
    assert "records from uncommitted code: no verdict" in text  # pooling_max at wide


def test_missing_runs_and_points_are_said(tmp_path):
    experiment, results = tmp_path / "scale_toy.yaml", tmp_path / "results"
    experiment.write_text(EXPERIMENT)
    write_record(results, "vae", "short", 0, 0.0, 0, 0.001)
    text = scale.write_scale_report([(experiment, results)], tmp_path / "out").read_text()
    assert "1 of 18 runs finished" in text and re.search(r"\| long +\| aggressive +\| 0 +\| not run yet", text)
    # the family is stated from the experiment: remedies without records yet count in Holm's correction
    assert "4 comparisons (0 testable, 4 not" in text
    # a run with its own points is neither expected nor listed at the others; a model without a latent is no remedy
    experiment.write_text(EXPERIMENT.replace("  - aggressive", "  - {label: aggressive, method: aggressive, points: [short]}")
                          + "  - lm\n")
    text = scale.write_scale_report([(experiment, results)], tmp_path / "out").read_text()
    assert "1 of 21 runs finished" in text and "(aggressive only at short)" in text
    assert "3 comparisons (0 testable, 3 not" in text
    assert re.search(r"\| short +\| aggressive +\| 0 +\| not run yet", text)
    assert not re.search(r"\| long +\| aggressive ", text)
    with pytest.raises(BenchError, match="does not exist"):  # a wrong folder never rewrites SCALE.md
        scale.write_scale_report([(experiment, tmp_path / "nothing")], tmp_path / "out2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="holds none of the finished runs of"):
        scale.write_scale_report([(experiment, tmp_path / "empty")], tmp_path / "out2")
    no_points = tmp_path / "flat.yaml"
    no_points.write_text("profile: cpu\ndatasets: [synthetic]\nruns: [vae]\n")
    with pytest.raises(BenchError, match="has no points"):
        scale.main([f"{no_points}={results}"])
    with pytest.raises(BenchError, match="EXPERIMENT=RESULTS"):
        scale.main([str(experiment)])


def test_scale_md_is_never_replaced_by_one_with_fewer_runs_or_sections(tmp_path):
    experiment, results = tmp_path / "scale_toy.yaml", tmp_path / "results"
    experiment.write_text(EXPERIMENT)
    for seed in range(2):
        write_record(results, "vae", "short", seed, 0.0, 0, 0.001)
    scale.write_scale_report([(experiment, results), (experiment, results)], tmp_path / "out")
    before = (tmp_path / "out" / "SCALE.md").read_text()
    with pytest.raises(BenchError, match=r"would be replaced by less \(runs 4 -> 2; sections 2 -> 1\); pass --force"):
        scale.main([f"{experiment}={results}", "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "SCALE.md").read_text() == before  # whole, untouched
    scale.main([f"{experiment}={results}", "--out", str(tmp_path / "out"), "--force"])
    assert (tmp_path / "out" / "SCALE.md").read_text() != before
