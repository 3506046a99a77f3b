"""The memory estimate: parameters counted without allocating, the formula, the container's
limit, and a run that cannot fit refused before anything is written."""

import pytest
import torch

from bench.cli import train
from bench.core import memory
from bench.core.config import build_run_config
from bench.core.data import load_corpus
from bench.core.errors import BenchError
from bench.core.loop import build_model
from bench.core.method import build_method


@pytest.mark.parametrize("method", ["vae", "pooling", "skip_vae", "bn_vae", "lm"])
def test_parameters_are_counted_on_the_meta_device_without_touching_the_random_stream(method):
    config = build_run_config(method, "synthetic", "smoke", 0, {})
    built = build_method(config.method, config.methods)
    torch.manual_seed(0)
    counted = memory.count_parameters(built, 54, config)
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3), after)  # building on meta drew nothing from the generator
    assert counted == sum(p.numel() for p in build_model(built, 54, config).parameters())


def test_the_estimate_is_its_formula():
    config = build_run_config("vae", "synthetic", "smoke", 0, {})
    corpus = load_corpus("synthetic", config.data)
    found = memory.estimate(config, build_method(config.method, config.methods), corpus)
    m, vocab, batch = config.model, len(corpus.vocab), config.data.batch_size
    longest = max(len(s) for s in corpus.splits["train"]) + 2
    per_token = 2 * vocab + 2 * m.embed_dim + 10 * (m.encoder_hidden + m.decoder_hidden) + m.latent_dim  # 1 layer, 1 way
    assert found.state_bytes == 16 * found.parameters
    assert found.training_bytes == 4 * batch * longest * per_token
    longest_test = max(len(s) for s in corpus.splits["test"]) + 2
    chunk = min(config.eval.iw_max_elements, config.data.eval_batch_size * config.eval.iw_samples * longest_test * vocab)
    assert found.evaluation_bytes == 12 * chunk
    assert found.peak_bytes == memory.RUNTIME_BYTES + found.state_bytes + max(found.training_bytes,
                                                                              found.evaluation_bytes)


def test_a_container_limit_is_what_is_available(tmp_path, monkeypatch):
    (tmp_path / "max").write_text(f"{3 * 2**30}\n")
    (tmp_path / "current").write_text(f"{2**30}\n")
    monkeypatch.setattr(memory, "CGROUP_FILES", ((str(tmp_path / "max"), str(tmp_path / "current")),))
    have, source = memory.available_bytes(torch.device("cpu"))
    assert have == 2 * 2**30 and "container" in source
    (tmp_path / "max").write_text("max\n")  # no limit: the machine's available memory
    have, source = memory.available_bytes(torch.device("cpu"))
    assert have > 0 and "machine" in source


def test_a_run_that_cannot_fit_is_refused_in_one_line_before_anything_is_written(tmp_path):
    with pytest.raises(BenchError) as refused:
        train.main(["--method", "vae", "--profile", "smoke", "--out", str(tmp_path / "out"),
                    "--set", "model.latent_dim=1000000000"])  # terabytes: refused anywhere
    message = str(refused.value)
    assert message.startswith("this run needs about ") and "GiB at peak" in message and "\n" not in message
    assert "--set data.batch_size=N" in message and "model.latent_dim" in message
    assert not (tmp_path / "out").exists()


def test_a_sweep_asking_for_bfloat16_on_a_cpu_without_it_is_refused_before_ray_starts(tmp_path, monkeypatch):
    """On a CPU without bfloat16 instructions (faked here, so that the test holds on any host)
    a sweep with train.bf16 stops in one line before Ray starts, writing nothing."""
    from bench.cli import sweep
    from bench.core import loop
    monkeypatch.setattr(loop, "cpu_supports_bf16", lambda: False)
    (tmp_path / "exp.yaml").write_text("profile: smoke\ndatasets: [synthetic]\nseeds: [0]\n"
                                       "runs: [{label: vae_bf16, method: vae, settings: {train: {bf16: true}}}]\n")
    with pytest.raises(BenchError, match="run vae_bf16/synthetic/seed0: train.bf16 is set, but this CPU has no "
                                         "bfloat16 instructions .* unset train.bf16 or train on a GPU"):
        sweep.main([str(tmp_path / "exp.yaml"), "--results", str(tmp_path / "results"), "--cpus", "1"])
    assert not (tmp_path / "results").exists()
