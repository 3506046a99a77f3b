"""Comparison tables from hand-made records: aggregation, published rows, formats, errors."""

import json
import re
import math
import shutil
import subprocess

import pytest

from bench.cli import compare
from bench.core.errors import BenchError


def write_record(results, label, dataset, seed, nll, kl, hours, profile="cpu", status="finished", gpu=None,
                 per_sentence=None, iw_sentences=2000, cpu_share=1.0, concurrent_trials=2, host_speed=None,
                 config=None):
    folder = results / profile / dataset / label / f"seed{seed}-{abs(hash((label, seed))) % 10**6:06d}"
    folder.mkdir(parents=True)
    if per_sentence is not None:  # a run's NLL is the mean over the sentences it scored
        nll, iw_sentences = sum(per_sentence) / len(per_sentence), len(per_sentence)
    record = {"label": label, "method": label, "dataset": dataset, "profile": profile, "seed": seed,
              "status": status, "environment": {"hardware": {"gpu": gpu, "torch_threads": 1}},
              "metrics": {"test": {"nll": nll, "kl": kl, "mi": kl / 2, "au": int(kl), "ppl": math.exp(nll / 50),
                                   "iw_samples": 100, "iw_sentences": iw_sentences,
                                   "nll_per_sentence": per_sentence}},
              "timing": {"train_hours": hours, **({} if cpu_share is None else {"train_cpu_share": cpu_share}),
                         **({} if host_speed is None else {"host_speed": host_speed})},
              "concurrent_trials": concurrent_trials, **({} if config is None else {"config": config})}
    (folder / "record.json").write_text(json.dumps(record))


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    write_record(root, "vae", "yahoo", 0, 330.0, 0.0, 1.0)
    write_record(root, "vae", "yahoo", 1, 332.0, 0.2, 3.0)
    write_record(root, "pooling", "yahoo", 0, 325.0, 8.0, 2.0)
    write_record(root, "pooling", "yahoo", 1, 327.0, 10.0, 2.0)
    write_record(root, "pooling", "yahoo", 2, 326.0, 12.0, 2.0)
    write_record(root, "aggressive", "yahoo", 0, 999.0, 5.0, 9.0, status="failed")  # never counted
    return root


def test_aggregation_mean_std_n_and_time_ratio(results):
    table = compare.aggregate(compare.load_records(results, ["yahoo"], None)).set_index("label")
    assert table.loc["vae", "nll_mean"] == 331.0 and table.loc["vae", "nll_std"] == pytest.approx(math.sqrt(2))
    assert table.loc["pooling", "kl_mean"] == 10.0 and table.loc["pooling", "kl_std"] == pytest.approx(2.0)
    assert table.loc["pooling", "n"] == 3 and "aggressive" not in table.index
    # geometric means: 2 h against the VAE's sqrt(1 h x 3 h); Welch on log hours, df = 1 (pooling has no spread)
    assert table.loc["pooling", "time_ratio"] == pytest.approx(2 / math.sqrt(3))
    half = 12.706205 * math.log(3) / 2  # t_{1, .975} x sd(log 1, log 3) / sqrt(2), sd = log 3 / sqrt(2)
    assert table.loc["pooling", "time_ratio_high"] == pytest.approx(2 / math.sqrt(3) * math.exp(half))
    # 95% t-interval over seeds: 326 +- t_{2, .975} * 1 / sqrt(3)
    assert table.loc["pooling", "nll_high"] - 326.0 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    # difference to the VAE paired by seed, over the seeds both have (0 and 1): -5 nats at each, exact
    assert table.loc["pooling", "d_nll"] == pytest.approx(-5.0)
    assert table.loc["pooling", "d_nll_low"] == table.loc["pooling", "d_nll_high"] == pytest.approx(-5.0)
    assert math.isnan(table.loc["vae", "d_nll"])


def test_nll_difference_is_over_seeds_and_paired_by_sentence(tmp_path):
    root = tmp_path / "results"
    hardness = [30.0 + 7 * ((i * 37) % 11) for i in range(200)]  # sentences differ by up to 70 nats
    for seed, offset in enumerate((0.0, 0.1, -0.1)):  # one seed's luck moves every sentence
        write_record(root, "vae", "d", seed, 0, 0.0, 1.0, per_sentence=[h + offset for h in hardness])
        write_record(root, "better", "d", seed, 0, 1.0, 1.0, per_sentence=[h - 0.5 + offset for h in hardness])
    table = compare.aggregate(compare.load_records(root, ["d"], None)).set_index("label")
    low, high = table.loc["better", "d_nll_low"], table.loc["better", "d_nll_high"]
    assert table.loc["better", "d_nll"] == pytest.approx(-0.5)
    # paired by seed: the 70-nat spread of sentences cancels (same sentences), and so does the seed's luck
    assert (low, high) == (pytest.approx(-0.5), pytest.approx(-0.5))
    unpaired = compare.welch_difference([-0.5 + o for o in (0.0, 0.1, -0.1)], [0.0, 0.1, -0.1])
    assert unpaired.low < -0.6  # Welch on the per-seed means would carry the seed's luck


def test_time_ratios_only_between_runs_timed_alike(tmp_path):
    """A ratio needs recorded conditions, one condition on both sides, and cores the runs had to themselves."""
    root = tmp_path / "results"
    for seed in (0, 1):
        write_record(root, "vae", "d", seed, 40.0, 0.0, 1.0 + seed)
        write_record(root, "alike", "d", seed, 40.0, 0.0, 2.0 + seed)
        write_record(root, "beside_other_work", "d", seed, 40.0, 0.0, 2.0, cpu_share=0.5 + 0.5 * seed)
        write_record(root, "packed", "d", seed, 40.0, 0.0, 2.0, concurrent_trials=4)
        write_record(root, "unrecorded", "d", seed, 40.0, 0.0, 2.0, cpu_share=None)
    frame = compare.load_records(root, ["d"], None)
    ratio, condition = compare.time_ratio(frame, "d", "alike", "vae")
    assert ratio.estimate == pytest.approx(math.sqrt(6) / math.sqrt(2)) and condition == "CPU x1, 2 trial(s) at once, own cores"
    for label, reason in (("beside_other_work", "different conditions"), ("packed", "different conditions"),
                          ("unrecorded", "not recorded")):
        ratio, why = compare.time_ratio(frame, "d", label, "vae")
        assert ratio is None and reason in why, (label, why)
    table = compare.aggregate(frame).set_index("label")
    assert math.isnan(table.loc["packed", "time_ratio"]) and not math.isnan(table.loc["alike", "time_ratio"])
    shared = frame.assign(timing_condition="CPU x1, 2 trial(s) at once, shared cores")
    assert "shared the cores" in compare.time_ratio(shared, "d", "alike", "vae")[1]
    assert "train_hours" not in compare.best_values(table.reset_index())  # mixed conditions: no fastest row


def test_time_ratios_only_between_hosts_of_one_speed(tmp_path):
    """One hardware label, one condition, but a host twice as slow: no ratio; within the
    tolerance a ratio; a host speed on one side only (a record made before it was): no ratio."""
    root = tmp_path / "results"
    for seed in (0, 1):
        write_record(root, "vae", "d", seed, 40.0, 0.0, 1.0 + seed, host_speed=20000.0 + seed)
        write_record(root, "near", "d", seed, 40.0, 0.0, 2.0 + seed, host_speed=18000.0)  # 1.11x apart
        write_record(root, "slow_host", "d", seed, 40.0, 0.0, 4.0, host_speed=10000.0)  # 2x apart
        write_record(root, "unprobed", "d", seed, 40.0, 0.0, 2.0)
    frame = compare.load_records(root, ["d"], None)
    ratio, _ = compare.time_ratio(frame, "d", "near", "vae")
    assert ratio.estimate == pytest.approx(math.sqrt(6) / math.sqrt(2))
    ratio, why = compare.time_ratio(frame, "d", "slow_host", "vae")
    assert ratio is None and "hosts of different speed (reference step 10,000 to 20,001" in why
    ratio, why = compare.time_ratio(frame, "d", "unprobed", "vae")
    assert ratio is None and "host speed recorded for some runs only" in why
    table = compare.aggregate(frame).set_index("label")
    assert math.isnan(table.loc["slow_host", "time_ratio"]) and not math.isnan(table.loc["near", "time_ratio"])
    assert "train_hours" not in compare.best_values(table.reset_index())  # 2x apart: no fastest row
    alike = table.drop(index=["slow_host", "unprobed"]).reset_index()
    assert "train_hours" in compare.best_values(alike)


def test_one_seed_or_different_test_sentences_give_no_interval(tmp_path, capsys):
    root = tmp_path / "results"
    write_record(root, "vae", "d", 0, 40.0, 0.0, 1.0)
    write_record(root, "pooling", "d", 0, 40.3, 0.0, 1.0)
    for seed in (0, 1):
        write_record(root, "other", "d", seed, 39.0 + seed, 0.0, 1.0, iw_sentences=200)  # other test sentences
    table = compare.aggregate(compare.load_records(root, ["d"], None)).set_index("label")
    assert table.loc["pooling", "d_nll"] == pytest.approx(0.3) and math.isnan(table.loc["pooling", "d_nll_low"])
    assert math.isnan(table.loc["other", "d_nll"])  # scored on other sentences: not compared
    compare.main(["--datasets", "d", "--results", str(root), "--format", "md"])
    out = capsys.readouterr().out
    pooling_row = next(line for line in out.splitlines() if line.startswith("| pooling "))
    assert "+0.30 (n=1)" in pooling_row and "[" not in pooling_row


def test_precisions_are_compared_only_for_one_configuration_against_itself(tmp_path):
    """float32 against bfloat16 is the bfloat16 check's own comparison (one method trained both
    ways); any other comparison across precisions is refused, in tables and in verdicts."""
    from bench.analysis import verdicts
    root = tmp_path / "results"

    def config(seed, bf16, hidden=128):
        return {"seed": seed, "model": {"encoder_hidden": hidden}, "train": {"lr": 1.0, "bf16": bf16}}
    for seed in (0, 1, 2):
        write_record(root, "vae", "d", seed, 40.0 + seed, 0.0, 1.0, config=config(seed, False))
        write_record(root, "vae_bf16", "d", seed, 40.1 + seed, 0.0, 1.0, config=config(seed, True))
        write_record(root, "wide_bf16", "d", seed, 39.0 + seed, 0.0, 1.0, config=config(seed, True, hidden=512))
    frame = compare.load_records(root, ["d"], None)
    assert compare.difference(frame, "d", "vae_bf16", "vae", "nll").estimate == pytest.approx(0.1)
    assert compare.difference(frame, "d", "wide_bf16", "vae", "nll") is None  # another model, another precision
    assert compare.difference(frame, "d", "wide_bf16", "vae_bf16", "nll").estimate == pytest.approx(-1.1)
    test, reason = verdicts.paired(frame.assign(clean=True), "wide_bf16", "vae", "nll")
    assert test is None and reason == "trained at different precisions (float32 and bfloat16)"


def test_published_rows_and_differences_are_labelled(results, capsys):
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "md"])
    out = re.sub(r" +", " ", capsys.readouterr().out)
    assert "| pooling † | measured | 3 | **326.00 ± 2.48** | -5.00 [-5.00, -5.00]" in out  # best NLL emphasised;
    # the paired interval over seeds 0 and 1; † a record that does not say its tree was clean
    assert "| 10.00 ± 4.97 |" in out
    assert "| vae | published he2019_submission | | 328.8 | | 0.0 | 0.0 |" in out
    assert "| vae | ours − published | | 2.20 | | 0.10 | 0.05 |" in out  # 331.0 - 328.8, 0.1 - 0.0, ...
    assert "REDUCED 'cpu' profile, not comparable to published numbers" in out


ARTICLE_TEXT_WIDTH_PT = 345.0  # \textwidth of a plain 10pt article
STACKED = r"\begin{tabular}[t]{@{}r@{}}"  # a compact cell: the value, its interval under it


def estimated_table_width_pt(tex: str) -> float:
    r"""The tabular's natural width estimated without a TeX engine: each cell measured with
    Computer Modern metrics (matplotlib's cmr10, the font pdflatex uses; digits 0.5 em) at \small
    (9 pt), a \scriptsize second line at 7 pt, bold cells 15% wider (cmbx is ~10% wider),
    plus 2 x \tabcolsep (6 pt) per column. ± and Δ are measured as '+' and 'D' (same widths
    in CM to within 0.5 pt); \cite{...} as '[99]'."""
    import os
    import re as regex

    import matplotlib
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath
    measure = TextToPath()
    font = FontProperties(fname=os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "cmr10.ttf"))

    def width(text, size):
        text = regex.sub(r"\\cite\{[^}]*\}", "[99]", text)
        text = text.replace(r"$\pm$", "+").replace(r"$\Delta$", "D").replace(r"$-$", "-").replace("\\_", "-")
        font.set_size(size)
        return measure.get_text_width_height_descent(text, font, ismath=False)[0]

    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    header = tex.split(r"\toprule", 1)[1].split(r"\midrule")[0]
    columns = {}
    for line in (header + body).splitlines():
        if not line.endswith(r"\\"):
            continue
        for index, cell in enumerate(line[:-2].split(" & ")):
            bold = 1.15 if r"\bfseries" in cell else 1.0
            cell = cell.replace(r"\bfseries ", "").strip()
            if cell.startswith(STACKED):
                main, detail = cell[len(STACKED):-len(r"\end{tabular}")].split(r"\\\scriptsize ")
                size = max(width(main, 9), width(detail, 7))
            else:
                size = width(cell, 9)
            columns[index] = max(columns.get(index, 0.0), bold * size)
    return sum(columns.values()) + 12.0 * len(columns)


def test_latex_is_booktabs_and_balanced(results, tmp_path):
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "latex", "--out", str(tmp_path / "t")])
    tex = (tmp_path / "t" / "comparison.tex").read_text()
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 1
    assert r"\toprule" in tex and r"\bottomrule" in tex and tex.count(r"\midrule") == 2  # and before published
    assert rf"\bfseries {STACKED}326.00\\\scriptsize $\pm$ 2.48\end{{tabular}}" in tex  # best bold, interval below
    columns = tex.split(r"\begin{tabular}{")[1].split("}")[0]
    for line in tex.splitlines():
        if line.endswith(r"\\") and STACKED not in line:
            assert line.count(" & ") == len(columns) - 1, line  # every row fills every column
    assert "_" not in tex.replace(r"\_", "") and "Δ" not in tex and "±" not in tex  # escaped for pdflatex


def test_default_latex_fits_a_plain_article(results, tmp_path):
    r"""The default (compact) table fits \textwidth: compiled without an overfull box when pdflatex is
    present, and by a conservative width estimate always; the wide layout with every column would
    not. The wide layout of the default columns fits both columns of a two-column article."""
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "latex", "--out", str(tmp_path)])
    tex = (tmp_path / "comparison.tex").read_text()
    assert estimated_table_width_pt(tex) < ARTICLE_TEXT_WIDTH_PT
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "latex", "--out", str(tmp_path / "w"),
                  "--columns", ",".join(compare.ALL_COLUMNS), "--layout", "wide"])
    wide = (tmp_path / "w" / "comparison.tex").read_text()
    assert r"\begin{table*}" in wide and estimated_table_width_pt(wide) > ARTICLE_TEXT_WIDTH_PT  # the estimate can fail
    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex not installed: checked by the width estimate only")
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "latex", "--out",
                  str(tmp_path / "w2"), "--layout", "wide"])  # the default columns, one line each
    for options, folder in (("", tmp_path), ("twocolumn", tmp_path / "w2")):  # compact in a column, wide across
        document = folder / "doc.tex"
        document.write_text(f"\\documentclass[{options}]{{article}}\\usepackage{{booktabs}}\\begin{{document}}\n"
                            "\\input{comparison}\n\\end{document}\n")
        build = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name], cwd=folder,
                               capture_output=True, text=True, timeout=120)
        assert build.returncode == 0, build.stdout[-2000:]
        assert "Overfull \\hbox" not in (folder / "doc.log").read_text(), options


def test_latex_with_a_method_published_twice(results, tmp_path):
    """Two baselines publish the VAE on Yahoo under the same citation key: a repeated label."""
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "latex", "--layout", "wide",
                  "--include-unverified", "--out", str(tmp_path)])
    tex = (tmp_path / "comparison.tex").read_text()
    assert [line.startswith(r"vae \cite{he2019lagging} &") for line in tex.splitlines()].count(True) == 2


def test_csv_has_measured_and_published_rows(results, tmp_path):
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "csv", "--out", str(tmp_path)])
    text = (tmp_path / "comparison.csv").read_text()
    assert text.count(",measured,") == 2 and ",published," in text
    header = text.splitlines()[0].split(",")
    assert {"nll_low", "nll_high", "mi_low", "mi_high", "d_nll_low", "d_nll_high", "d_mi_low", "d_mi_high"} <= set(header)


def test_tables_are_never_replaced_by_ones_from_fewer_runs(results, tmp_path):
    out = tmp_path / "tables"
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "md,csv", "--out", str(out)])
    before = {path.name: path.read_text() for path in out.iterdir()}
    runs = json.loads((out / "comparison.json").read_text())["runs"]
    assert runs == 5  # the fixture's finished runs
    with pytest.raises(BenchError, match=rf"comparison.json would be replaced by less \(runs {runs} -> 0\).*--force"):
        compare.main(["--datasets", "yahoo", "--published-only", "--format", "md,csv", "--out", str(out)])
    assert {path.name: path.read_text() for path in out.iterdir()} == before  # every file as it was
    compare.main(["--datasets", "yahoo", "--published-only", "--format", "md", "--out", str(out), "--force"])
    assert json.loads((out / "comparison.json").read_text())["runs"] == 0


def test_bad_input_is_one_clear_line(results, tmp_path):
    with pytest.raises(BenchError, match="no finished records for yelp.*--published-only"):
        compare.main(["--datasets", "yelp", "--results", str(results)])
    compare.main(["--datasets", "yelp", "--results", str(results), "--published-only"])
    with pytest.raises(BenchError, match="no finished records for method 'poolin'"):
        compare.main(["--datasets", "yahoo", "--results", str(results), "--methods", "poolin"])
    with pytest.raises(BenchError, match="unknown format 'pdf'"):
        compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "pdf"])
    write_record(results, "vae", "yahoo", 0, 300.0, 1.0, 1.0, profile="paper")
    with pytest.raises(BenchError, match="several profiles \\(cpu, paper\\).*--profile"):
        compare.main(["--datasets", "yahoo", "--results", str(results)])
    compare.main(["--datasets", "yahoo", "--results", str(results), "--profile", "paper"])


def test_caption_says_when_no_method_keeps_an_active_unit(tmp_path, capsys):
    root = tmp_path / "results"
    for label in ("vae", "pooling"):
        write_record(root, label, "d", 0, 100.0, 0.5, 1.0)  # kl 0.5 -> au int(0.5) = 0
    compare.main(["--datasets", "d", "--results", str(root)])
    assert "NO METHOD KEEPS AN ACTIVE UNIT HERE" in capsys.readouterr().out
    write_record(root, "bn_vae", "d", 0, 100.0, 2.0, 1.0)  # au 2
    compare.main(["--datasets", "d", "--results", str(root)])
    assert "NO METHOD KEEPS" not in capsys.readouterr().out


def test_published_only_latex_has_rows_and_a_bib_with_every_cited_key(tmp_path):
    compare.main(["--datasets", "yahoo,yelp", "--published-only", "--format", "latex,csv", "--out", str(tmp_path),
                  "--results", str(tmp_path / "none")])
    tex = (tmp_path / "comparison.tex").read_text()
    cited = set(re.findall(r"\\cite\{([^}]+)\}", tex))
    assert len(re.findall(r"\\\\$", tex, flags=re.M)) >= 4 and cited  # rows, not an empty tabular
    bib = (tmp_path / "comparison.bib").read_text()
    assert cited == set(re.findall(r"@\w+\{([^,]+),", bib))
    assert "bibtex" not in (tmp_path / "comparison.csv").read_text().splitlines()[0]


def test_runs_scored_on_other_test_sentences_get_their_own_table(tmp_path, capsys):
    root = tmp_path / "results"
    for seed in (0, 1):
        write_record(root, "vae", "d", seed, 40.0 + seed, 0.0, 1.0)
        write_record(root, "beta", "d", seed, 41.0 + seed, 0.0, 1.0)
    write_record(root, "beta_3x", "d", 0, 30.0, 2.0, 3.0, iw_sentences=200)  # a better NLL on other sentences
    compare.main(["--datasets", "d", "--results", str(root), "--format", "md"])
    first, second = capsys.readouterr().out.split("\nd: ")
    assert "beta_3x" not in first and "**40.50 ± " in first  # the best NLL among runs on the same sentences
    assert "| beta_3x " in second and "A separate table" in second
    assert "(n=1)" not in second and "[" not in second.split("| beta_3x ")[1]  # nothing relative to the VAE


def test_csv_comes_with_tidy_run_rows(results, tmp_path):
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "csv", "--out", str(tmp_path)])
    import pandas as pd
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert list(runs.columns) == ["label", "dataset", "profile", "seed", "run_id", "evaluation", "metric", "value"]
    nll = runs[(runs["metric"] == "nll") & (runs["label"] == "pooling")].sort_values("seed")["value"].tolist()
    assert nll == [325.0, 327.0, 326.0]  # one row per finished run (the failed aggressive is not there)
    assert set(runs["label"]) == {"vae", "pooling"} and (runs.groupby(["label", "seed", "metric"]).size() == 1).all()


def test_one_scale_point_is_compared_under_its_method_labels(tmp_path, capsys):
    root = tmp_path / "results"
    write_record(root, "vae", "d", 0, 50.0, 0.0, 1.0)  # the default table: the unlabelled runs
    for point, nll in (("small", 60.0), ("large", 40.0)):
        write_record(root, f"vae@{point}", "d", 0, nll, 0.0, 1.0)
        write_record(root, f"beta@{point}", "d", 0, nll + 1, 3.0, 1.0)
    compare.main(["--datasets", "d", "--results", str(root), "--format", "md"])
    default = capsys.readouterr().out
    assert "| vae " in default and "beta" not in default and "@" not in default
    compare.main(["--datasets", "d", "--results", str(root), "--format", "md", "--point", "small"])
    small = capsys.readouterr().out
    assert "scale-study point small" in small and "@" not in small
    assert "**60.00**" in small and "| beta " in small and "61.00" in small and "41.00" not in small
    with pytest.raises(BenchError, match="--point medium: no finished records .* points present: large, small"):
        compare.main(["--datasets", "d", "--results", str(root), "--point", "medium"])
