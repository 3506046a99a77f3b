"""Comparison tables from hand-made records: aggregation, published rows, formats, errors."""

import json
import re
import math
import shutil
import subprocess

import pytest

from bench import compare
from bench.errors import BenchError


def write_record(results, label, dataset, seed, nll, kl, hours, profile="cpu", status="finished", gpu=None,
                 per_sentence=None):
    folder = results / profile / dataset / label / f"seed{seed}-{abs(hash((label, seed))) % 10**6:06d}"
    folder.mkdir(parents=True)
    record = {"label": label, "method": label, "dataset": dataset, "profile": profile, "seed": seed,
              "status": status, "environment": {"hardware": {"gpu": gpu, "torch_threads": 1}},
              "metrics": {"test": {"nll": nll, "kl": kl, "mi": kl / 2, "au": int(kl), "ppl": math.exp(nll / 50),
                                   "iw_samples": 100, "nll_per_sentence": per_sentence}},
              "timing": {"train_hours": hours}}
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
    assert table.loc["pooling", "time_ratio"] == pytest.approx(1.0)  # 2 h against the VAE's mean of 2 h
    assert table.loc["vae", "time_ratio"] == 1.0
    # 95% t-interval over seeds: 326 +- t_{2, .975} * 1 / sqrt(3)
    assert table.loc["pooling", "nll_high"] - 326.0 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    # difference to the VAE without per-sentence values: Welch (-5 nats)
    assert table.loc["pooling", "d_nll"] == pytest.approx(-5.0)
    assert table.loc["pooling", "d_nll_low"] < -5.0 < table.loc["pooling", "d_nll_high"]
    assert math.isnan(table.loc["vae", "d_nll"])


def test_nll_difference_is_paired_by_sentence(tmp_path):
    root = tmp_path / "results"
    hardness = [30.0 + 7 * ((i * 37) % 11) for i in range(200)]  # sentences differ by up to 70 nats
    for seed, offset in enumerate((0.0, 0.1, -0.1)):
        write_record(root, "vae", "d", seed, 0, 0.0, 1.0, per_sentence=[h + offset for h in hardness])
        write_record(root, "better", "d", seed, 0, 1.0, 1.0, per_sentence=[h - 0.5 + offset for h in hardness])
    table = compare.aggregate(compare.load_records(root, ["d"], None)).set_index("label")
    low, high = table.loc["better", "d_nll_low"], table.loc["better", "d_nll_high"]
    assert low < -0.5 < high and high < 0 and high - low < 0.4  # -0.5 nats, distinguishable despite the spread

def test_published_rows_and_differences_are_labelled(results, capsys):
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "md"])
    out = re.sub(r" +", " ", capsys.readouterr().out)
    assert "| pooling | measured | 3 | **326.00 ± 2.48** | -5.00 [" in out  # best NLL emphasised; 95% interval
    assert "| 10.00 ± 4.97 |" in out
    assert "| vae | published he2019_submission | | 328.8 | | 0.0 | 0.0 |" in out
    assert "| vae | ours − published | | 2.20 | | 0.10 | 0.05 |" in out  # 331.0 - 328.8, 0.1 - 0.0, ...
    assert "REDUCED 'cpu' profile, not comparable to published numbers" in out


def test_latex_is_booktabs_and_balanced(results, tmp_path):
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "latex", "--out", str(tmp_path / "t")])
    tex = (tmp_path / "t" / "comparison.tex").read_text()
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 1
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\midrule" in tex
    assert r"\textbf{326.00 $\pm$ 2.48}" in tex
    columns = tex.split(r"\begin{tabular}{")[1].split("}")[0]
    for line in tex.splitlines():
        if line.endswith(r"\\"):
            assert line.count("&") == len(columns) - 1, line  # every row fills every column
    assert "_" not in tex.replace(r"\_", "")  # underscores escaped
    if shutil.which("pdflatex"):
        document = tmp_path / "doc.tex"
        document.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n" + tex +
                            "\\end{document}\n")
        build = subprocess.run(["pdflatex", "-interaction=nonstopmode", document.name], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
        assert build.returncode == 0, build.stdout[-2000:]


def test_csv_has_measured_and_published_rows(results, tmp_path):
    compare.main(["--datasets", "yahoo", "--results", str(results), "--format", "csv", "--out", str(tmp_path)])
    text = (tmp_path / "comparison.csv").read_text()
    assert text.count(",measured,") == 2 and ",published," in text
    header = text.splitlines()[0].split(",")
    assert {"nll_low", "nll_high", "mi_low", "mi_high", "d_nll_low", "d_nll_high", "d_mi_low", "d_mi_high"} <= set(header)


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
