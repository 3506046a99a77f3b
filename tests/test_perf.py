"""The throughput benchmark runs and writes comparable measurements (speed is never asserted)."""

import json

from bench import perf


def test_perf_reports_methods_and_ratios(tmp_path, capsys):
    out = tmp_path / "perf.json"
    perf.main(["--profile", "smoke", "--methods", "vae,pooling", "--steps", "2", "--json", str(out)])
    again = tmp_path / "again.json"
    perf.main(["--profile", "smoke", "--methods", "vae", "--steps", "2", "--baseline", str(out), "--json", str(again),
               "--bf16"])
    text = capsys.readouterr().out
    assert "profile smoke: embed 16" in text and "vocab 200" in text and "train vs baseline" in text
    measured = json.loads(out.read_text())["measurements"]
    assert set(measured) == {"vae", "pooling"} and all(v["train_tokens_per_s"] > 0 for v in measured.values())
    bf16 = json.loads(again.read_text())["measurements"]["vae"]
    assert bf16["iw_bf16_sentences_per_s"] > 0 and bf16["iw_bf16_max_nll_change"] >= 0 and "bf16 IW speed" in text
    assert bf16["train_bf16_tokens_per_s"] > 0 and "of matmul rate" in text
    assert json.loads(again.read_text())["matmul_gflop_per_s"] > 0
