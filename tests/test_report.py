"""Report and figures from real (smoke) records, and the lagging diagnostic end to end."""

import json

from bench.diagnose import lagging
from bench.report import answers, write_report
from bench.train import run


def quiet(message):
    pass


def test_report_has_every_question_tables_and_figures(tmp_path, smoke_config):
    results = tmp_path / "results"
    for method in ("vae", "pooling", "lm", "aggressive+kl_anneal"):
        run(smoke_config(method), results, log=quiet)
    report = write_report(results, None)
    text = report.read_text()
    for heading in ("RQ1", "RQ2 (synthetic)", "RQ3 (synthetic)", "RQ4 (synthetic)", "REDUCED 'smoke' profile"):
        assert heading in text, heading
    figures = results / "figures"
    for name in ("curves_synthetic_epoch", "curves_synthetic_time", "time_synthetic", "dispersion"):
        assert (figures / f"{name}.png").stat().st_size > 5000 and (figures / f"{name}.pdf").is_file()
        assert f"figures/{name}.png" in text


def test_rq2_paragraph_follows_the_numbers(tmp_path, smoke_config):
    import pandas as pd
    summary = pd.DataFrame([
        {"label": "vae", "dataset": "d", "nll": 100.0, "kl": 0.01, "mi": 0.0, "au": 0, "train_hours": 1.0,
         "feature_cosine_distance": 0.1},
        {"label": "pooling", "dataset": "d", "nll": 98.0, "kl": 6.0, "mi": 2.5, "au": 9, "train_hours": 1.1,
         "feature_cosine_distance": 0.5},
        {"label": "aggressive+kl_anneal", "dataset": "d", "nll": 98.2, "kl": 5.0, "mi": 2.9, "au": 7,
         "train_hours": 3.0, "feature_cosine_distance": 0.4}])
    text = " ".join(answers(summary, "paper"))
    assert "pooling prevented collapse where the VAE collapsed" in text
    assert "pooling / aggressive+kl_anneal = 0.37: pooling is faster, as claimed" in text
    assert "not distinguishable" in text and "one seed" in text  # one seed: no claim of a difference
    seeds = pd.concat([summary.assign(seed=0), summary.assign(seed=1, nll=summary["nll"] + 0.1)])
    text = " ".join(answers(seeds, "paper"))
    assert "a better log-likelihood from the simple change, as claimed" in text and "one seed" not in text


def test_lagging_diagnostic_writes_traces_and_figure(tmp_path):
    traces = lagging(["vae", "pooling"], "smoke", {"train": {"max_epochs": 1}}, snapshots=3, sample=20,
                     out=tmp_path, device="cpu", seed=0, log=quiet)
    assert set(traces) == {"vae", "pooling"} and len(traces["vae"]) == 3
    saved = json.loads((tmp_path / "lagging.json").read_text())
    assert len(saved["traces"]["pooling"][-1]["true"]) == 20
    assert (tmp_path / "lagging.png").stat().st_size > 5000 and (tmp_path / "lagging.pdf").is_file()
