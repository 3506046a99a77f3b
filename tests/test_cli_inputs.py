"""User mistakes get one line naming the problem and the fix (never a traceback). The fault
catalogue (tests/test_catalogue.py) holds the cases a table can state; these need more."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import compare, sweep, train
from bench.core.errors import BenchError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("arguments, expected", [
    (["--set", "modle.latent_dim=16"], "unknown settings section 'modle' (did you mean 'model'?)"),
    (["--set", "model.latnt_dim=16"], "--set model: unknown key 'latnt_dim' (did you mean 'latent_dim'?)"),
    (["--set", "model.latent_dim=abc"], "--set model latent_dim: expected an integer"),
    (["--set", "pooling.pooling=max"], "the run's method 'vae' has no 'pooling' part, so the setting would be ignored"),
])
def test_train_settings_mistakes_name_the_setting(tmp_path, arguments, expected):
    with pytest.raises(BenchError) as error:
        train.main(["--method", "vae", "--profile", "smoke", "--out", str(tmp_path), *arguments])
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("arguments, expected", [
    (["--datasets", "ptb"], "--datasets 'ptb': not in the experiment's datasets (synthetic)"),
    (["--seeds", ""], "--seeds expects integers separated by commas"),
    (["--seeds", "0,x"], "--seeds expects integers separated by commas"),
    (["--cpus", "0"], "--cpus must be >= 1"),
    (["--points", "len10"], "--points 'len10': not among the experiment's points (it has none)"),
])
def test_sweep_argument_mistakes_are_refused_before_anything_runs(tmp_path, arguments, expected):
    with pytest.raises(BenchError, match=None) as error:
        sweep.main([str(ROOT / "experiments" / "smoke.yaml"), "--results", str(tmp_path), *arguments])
    assert expected in str(error.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("settings, expected", [
    ("train: {max_epoch: 3}", "exp.yaml, run vae/synthetic/seed0, settings train: unknown key 'max_epoch' "
                              "(did you mean 'max_epochs'?)"),
    ("beta_vae: {betta: 0.2}", "exp.yaml, run beta_vae/synthetic/seed0, settings [beta_vae]: unknown key 'betta'"),
])
def test_experiment_settings_mistakes_name_the_file_and_run(tmp_path, settings, expected):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(f"profile: smoke\ndatasets: [synthetic]\nseeds: [0]\nruns: [vae, beta_vae]\n"
                          f"settings: {{{settings}}}\n")
    with pytest.raises(BenchError) as error:
        sweep.main([str(experiment), "--results", str(tmp_path / "results")])
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "results").exists()


def test_yaml_mistakes_give_file_line_and_column(tmp_path):
    experiment = tmp_path / "bad.yaml"
    experiment.write_text("profile: smoke\nruns: [vae\ndatasets: [synthetic]\n")
    with pytest.raises(BenchError, match=r"bad.yaml:3:9: not valid YAML \(expected ',' or ']'"):
        sweep.load_experiment(experiment)
    profile = tmp_path / "profile.yaml"
    profile.write_text("data:\n  batch_size: 3\n   x: 2\n")
    with pytest.raises(BenchError, match=r"profile.yaml:3:5: not valid YAML"):
        train.main(["--method", "vae", "--profile", str(profile)])


def test_compare_names_an_unknown_profile_or_dataset_and_what_is_there(tmp_path):
    from test_compare import write_record
    write_record(tmp_path, "vae", "synthetic", 0, 40.0, 0.0, 1.0)
    for arguments in (["--datasets", "synthetc", "--profile", "cpu"], ["--datasets", "synthetic", "--profile", "cpuu"]):
        with pytest.raises(BenchError) as error:
            compare.main([*arguments, "--results", str(tmp_path)])
        assert "present: profile cpu / synthetic" in str(error.value)
    assert "profile 'cpuu'" in str(error.value)


def run(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_shell_level_mistakes_are_one_line():
    missing = run("./run_all.sh --experiment")
    assert missing.returncode == 2 and missing.stderr.strip() == "error: --experiment needs a value (see ./run_all.sh --help)"
    piped = run(f"{sys.executable} -m bench compare --published-only --datasets yahoo,yelp --format table,md,csv,latex "
                "| head -1")
    assert piped.stdout.strip() and "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr
    closed = run(f"{sys.executable} -c 'from bench.core.errors import run_cli\n"
                 "def main():\n    raise BrokenPipeError\nrun_cli(main)'")  # what a closed pipe raises in print()
    assert closed.returncode == 0 and closed.stderr == ""
    download = run(f"{sys.executable} -m bench download --help")
    assert download.returncode == 0 and "usage: python -m bench download" in download.stdout and "{list,download}" in download.stdout


def test_the_front_door_lists_runs_and_refuses_commands():
    def bench(*args):
        return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)

    listing = bench()
    assert listing.returncode == 0 and all(name in listing.stdout for name in ("train", "sweep", "compare", "scale"))
    typo = bench("trian")
    assert typo.returncode == 2 and typo.stderr.strip().count("\n") == 0 and "(did you mean 'train'?)" in typo.stderr
    helped = bench("compare", "--help")
    assert helped.returncode == 0 and "usage: python -m bench compare" in helped.stdout


def test_run_all_refuses_a_missing_data_directory_before_anything_runs(tmp_path):
    result = subprocess.run([str(ROOT / "run_all.sh"), "--data-dir", str(tmp_path / "nonexistent"), "--results",
                             str(tmp_path / "results")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "data directory" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "results").exists()
