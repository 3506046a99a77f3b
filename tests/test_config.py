"""Profiles, overrides and validation errors."""

import pytest

from bench.core.config import available_profiles, build_run_config, parse_overrides
from bench.core.errors import BenchError


def test_profiles_resolve_and_paper_has_the_published_architecture():
    assert {"paper", "cpu", "smoke"} <= set(available_profiles())
    paper = build_run_config("vae", "yahoo", "paper")
    assert (paper.model.embed_dim, paper.model.encoder_hidden, paper.model.decoder_hidden,
            paper.model.latent_dim) == (512, 1024, 1024, 32)
    assert (paper.train.lr, paper.train.clip_grad_norm, paper.data.batch_size) == (1.0, 5.0, 32)
    assert paper.eval.iw_samples == 500 and paper.train.max_epochs == 100


def test_overrides_are_typed_and_nested():
    overrides = parse_overrides(["model.latent_dim=8", "kl_anneal.warm_up=2.5", "train.max_train_minutes=null"])
    config = build_run_config("kl_anneal", "synthetic", "smoke", 3, overrides)
    assert config.model.latent_dim == 8 and config.seed == 3
    assert config.methods["kl_anneal"]["warm_up"] == 2.5


@pytest.mark.parametrize("overrides, fragment", [
    (["model.latent_dims=8"], "unknown key 'latent_dims' (did you mean 'latent_dim'?)"),
    (["model.latent_dim=eight"], "expected an integer"),
    (["model.dropout_in=1.5"], "dropout_in must be in [0, 1)"),
    (["train.lr=-1"], "lr must be positive"),
    (["latent_dim=3"], "SECTION.KEY=VALUE"),
])
def test_bad_settings_name_the_key(overrides, fragment):
    with pytest.raises(BenchError, match=None) as err:
        build_run_config("vae", "synthetic", "smoke", 0, parse_overrides(overrides))
    assert fragment in str(err.value)


def test_bad_profile_file_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  hidden: 3\n")
    with pytest.raises(BenchError, match=r"mine.yaml \[model\]: unknown key 'hidden'"):
        build_run_config("vae", "synthetic", str(path))
    path.write_text("model: [1, 2\n")
    with pytest.raises(BenchError, match="not valid YAML"):
        build_run_config("vae", "synthetic", str(path))
    with pytest.raises(BenchError, match="unknown profile 'cpuu' \\(did you mean 'cpu'\\?\\)"):
        build_run_config("vae", "synthetic", "cpuu")


def test_an_override_that_a_profile_cap_would_undo_is_refused():
    # the cpu_text profile keeps the first 2,000 training sentences: asking for 5,000 would silently do nothing
    with pytest.raises(BenchError, match=r"data.synthetic_train=5000 has no effect.*max_train_sentences=2000"):
        build_run_config("vae", "synthetic", "cpu_text", 0, parse_overrides(["data.synthetic_train=5000"]))
    config = build_run_config("vae", "synthetic", "cpu_text", 0, parse_overrides(
        ["data.synthetic_train=5000", "data.max_train_sentences=5000"]))
    assert config.data.synthetic_train == 5000 and config.data.max_train_sentences == 5000
    build_run_config("vae", "synthetic", "cpu_text", 0, parse_overrides(["data.synthetic_train=1000"]))


def test_method_sections_read_the_same_at_the_top_level_or_under_methods(tmp_path):
    """One nesting for method settings in profiles, experiments and --set; older profiles still read."""
    from bench.core.config import build_run_config
    top, old = tmp_path / "top.yaml", tmp_path / "old.yaml"
    top.write_text("train: {max_epochs: 2}\nkl_anneal: {warm_up: 3}\n")
    old.write_text("train: {max_epochs: 2}\nmethods:\n  kl_anneal: {warm_up: 3}\n")
    configs = [build_run_config("kl_anneal", "synthetic", str(path), 0, {}) for path in (top, old)]
    assert configs[0].methods == configs[1].methods == {"kl_anneal": {"warm_up": 3}}
    assert configs[0].to_dict() == {**configs[1].to_dict(), "profile": "top"}  # same run, other profile name
    overridden = build_run_config("kl_anneal", "synthetic", str(top), 0, {"kl_anneal": {"warm_up": 5}})
    assert overridden.methods["kl_anneal"] == {"warm_up": 5}
