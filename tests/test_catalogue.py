"""The fault catalogue: user mistakes and damaged inputs, each run through the front door
(``python -m bench COMMAND``, in this process) and checked for its exit code, the words of its
one line on stderr, no traceback, and files: nothing written, every earlier file whole.

Cases that need a process of their own are tests beside this table: signals and a killed
trial (tests/test_faults.py: ``test_a_signal_stops_a_sweep...``, ``test_a_trial_process_that_dies...``),
a real full disk and a read-only file system (``test_a_real_full_disk...``,
``test_a_read_only_file_system...``), a closed pipe (``test_a_closed_pipe_never_stops_a_run``),
run_all.sh's own arguments (tests/test_cli_inputs.py). docs/faults.md is written from both.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main as bench_main
from bench.core.errors import run_cli

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "experiments" / "smoke.yaml")


def finished_record(folder: Path, label: str = "vae", seed: int = 0, profile: str = "cpu") -> None:
    run = folder / profile / "synthetic" / label / f"seed{seed}-0123456789ab"
    run.mkdir(parents=True)
    (run / "record.json").write_text(json.dumps({
        "run_id": "0123456789ab", "label": label, "method": label, "dataset": "synthetic", "profile": profile,
        "seed": seed, "status": "finished", "config": {}, "metrics": {"test": {"nll": 40.0, "kl": 0.1}}}))


def experiment(tmp: Path, text: str) -> None:
    (tmp / "exp.yaml").write_text(text)


def committed_report(tmp: Path) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "REPORT.md").write_text('report\n<!-- generated: {"profile": "cpu", "runs": 99} -->\n')
    finished_record(tmp / "results")


def committed_tables(tmp: Path) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "comparison.json").write_text('{"runs": 99, "profile": "cpu"}')
    (tmp / "out" / "comparison.md").write_text("the committed table\n")
    finished_record(tmp / "results")


def committed_scale(tmp: Path) -> None:
    (tmp / "SCALE.md").write_text('scale\n<!-- generated: {"runs": 72, "sections": 6} -->\n')
    (tmp / "empty").mkdir()


def committed_lagging_figure(tmp: Path) -> None:
    (tmp / "lagging.json").write_text(json.dumps({"profile": "cpu", "sample": 500}))


def damaged(content: bytes):
    def setup(tmp: Path) -> None:
        finished_record(tmp / "results")
        finished_record(tmp / "results", seed=1)
        (next((tmp / "results").rglob("record.json"))).write_bytes(content)
    return setup


def nothing(tmp: Path) -> None:
    pass


# (case, setup, command ({tmp} is the test's folder), exit code, words of the one line)
CATALOGUE = [
    # out of memory: refused before anything is allocated or written
    ("train: a model too large for the machine", nothing,
     "train --method vae --profile smoke --out {tmp}/out --set model.latent_dim=1000000000", 2,
     "this run needs about"),
    ("sweep: a run too large for the machine", lambda t: experiment(t, (
        "profile: smoke\ndatasets: [synthetic]\nseeds: [0]\nsettings: {model: {latent_dim: 1000000000}}\n"
        "runs: [vae]\n")), "sweep {tmp}/exp.yaml --results {tmp}/out", 2, "run vae/synthetic/seed0: this run needs about"),
    # committed results are never replaced by less
    ("report: fewer runs than the committed report", committed_report,
     "report --results {tmp}/results --profile cpu --out {tmp}/out", 2, "would be replaced by less (runs 99 -> 1)"),
    ("compare --out: fewer runs than the committed tables", committed_tables,
     "compare --datasets synthetic --results {tmp}/results --profile cpu --format md --out {tmp}/out", 2,
     "comparison.json would be replaced by less (runs 99 -> 1)"),
    ("scale: a results folder that does not exist", committed_scale,
     f"scale {ROOT}/experiments/scale_length.yaml={{tmp}}/nonexistent --out {{tmp}}", 2, "does not exist"),
    ("scale: a results folder without the experiment's runs", committed_scale,
     f"scale {ROOT}/experiments/scale_length.yaml={{tmp}}/empty --out {{tmp}}", 2, "none of"),
    ("diagnose: a smoke figure over the committed one", committed_lagging_figure,
     "diagnose lagging --profile smoke --sample 20 --out {tmp}", 2, "pass --force"),
    # experiment files that would run nothing, or twice
    ("sweep: an empty experiment file", lambda t: experiment(t, ""), "sweep {tmp}/exp.yaml", 2, "the file is empty"),
    ("sweep: no runs", lambda t: experiment(t, "profile: smoke\ndatasets: [synthetic]\n"), "sweep {tmp}/exp.yaml", 2,
     "no runs"),
    ("sweep: runs: []", lambda t: experiment(t, "profile: smoke\ndatasets: [synthetic]\nruns: []\n"),
     "sweep {tmp}/exp.yaml", 2, "no runs"),
    ("sweep: datasets: []", lambda t: experiment(t, "profile: smoke\ndatasets: []\nruns: [vae]\n"),
     "sweep {tmp}/exp.yaml", 2, "no datasets"),
    ("sweep: seeds: []", lambda t: experiment(t, "profile: smoke\ndatasets: [synthetic]\nseeds: []\nruns: [vae]\n"),
     "sweep {tmp}/exp.yaml", 2, "no seeds"),
    ("sweep: a seed twice in the file",
     lambda t: experiment(t, "profile: smoke\ndatasets: [synthetic]\nseeds: [0, 0]\nruns: [vae]\n"),
     "sweep {tmp}/exp.yaml", 2, "repeat a seed"),
    ("sweep: --seeds 0,0", nothing, f"sweep {SMOKE} --results {{tmp}}/out --seeds 0,0", 2, "repeats a seed"),
    ("sweep: points as a list", lambda t: experiment(t, (
        "profile: smoke\ndatasets: [synthetic]\nruns: [vae]\npoints: [a]\n")), "sweep {tmp}/exp.yaml", 2,
     "e.g. {len10: {data: {synthetic_length: 10}}}"),
    ("sweep: a misspelt point", nothing,
     f"sweep {ROOT}/experiments/scale_data.yaml --points ptb5kk --plan --results {{tmp}}/out", 2,
     "(did you mean 'ptb5k'?)"),
    ("sweep: a misspelt run label", nothing, f"sweep {SMOKE} --runs vea --plan --results {{tmp}}/out", 2,
     "'vea' (did you mean 'vae'?)"),
    ("sweep: nothing listening at --address", nothing, f"sweep {SMOKE} --results {{tmp}}/out --address 127.0.0.1:1", 2,
     "cannot reach a Ray cluster at 127.0.0.1:1"),
    # settings and arguments
    ("train: an unknown device", nothing, "train --method vae --profile smoke --out {tmp}/out --device tpu", 2,
     "--device tpu: unknown device; use auto, cpu or cuda"),
    ("train: a misspelt method", nothing, "train --method pooing --profile smoke --out {tmp}/out", 2,
     "unknown method 'pooing' (did you mean 'pooling'?)"),
    ("train: a misspelt profile", nothing, "train --method vae --profile smokee --out {tmp}/out", 2,
     "unknown profile 'smokee' (did you mean 'smoke'?)"),
    ("train: a profile file that does not exist", nothing,
     "train --method vae --profile {tmp}/missing.yaml --out {tmp}/out", 2, "missing.yaml not found"),
    ("train: an empty profile file", lambda t: (t / "empty.yaml").write_text(""),
     "train --method vae --profile {tmp}/empty.yaml --out {tmp}/out", 2, "is empty; a profile needs"),
    ("train: a training split smaller than one batch", lambda t: [
        (t / "data" / "tiny").mkdir(parents=True), *[(t / "data" / "tiny" / f"{s}.txt").write_text("a b\n")
                                                     for s in ("train", "valid", "test")]],
     "train --method vae --profile smoke --dataset tiny --data-dir {tmp}/data --out {tmp}/out", 2,
     "the training split has 1 sentences, fewer than one batch (16)"),
    ("train: --out is a file", lambda t: (t / "file").write_text("x"),
     "train --method vae --profile smoke --out {tmp}/file/run", 2, "is a file, not a folder"),
    ("perf: a --baseline that does not exist", nothing,
     "perf --profile smoke --baseline {tmp}/missing.json", 2, "missing.json: file not found"),
    ("perf: a --baseline of another profile", lambda t: (t / "other.json").write_text(
        '{"profile": "cpu_text", "measurements": {}}'), "perf --profile smoke --baseline {tmp}/other.json", 2,
     "measured the 'cpu_text' profile, not 'smoke'"),
    ("a misspelt command", nothing, "trian", 2, "(did you mean 'train'?)"),
    # readers
    ("compare: a results folder that does not exist", nothing,
     "compare --datasets synthetic --results {tmp}/nope", 2, "nope does not exist"),
    ("report: a results folder that is a file", lambda t: (t / "file").write_text("x"),
     "report --results {tmp}/file", 2, "is a file, not a folder"),
    ("compare: a misspelt dataset", lambda t: finished_record(t / "results"),
     "compare --datasets synthetc --results {tmp}/results", 2, "synthetc (did you mean 'synthetic'?)"),
    ("report: a misspelt profile", lambda t: finished_record(t / "results"),
     "report --results {tmp}/results --profile cpuu --out {tmp}/out", 2,
     "(did you mean 'cpu'?) (present: profile cpu / synthetic)"),
    ("compare: a misspelt point", lambda t: finished_record(t / "results", label="vae@ptb5k"),
     "compare --datasets synthetic --results {tmp}/results --point ptb5kk", 2, "(did you mean 'ptb5k'?)"),
    # damaged records: listed in one line each, the others read, exit 0
    ("compare: a record of binary bytes", damaged(b"\xff\xfe\x00binary"),
     "compare --datasets synthetic --results {tmp}/results --profile cpu", 0, "not text (binary bytes)"),
    ("compare: a finished record without metrics", damaged(b'{"status": "finished"}'),
     "compare --datasets synthetic --results {tmp}/results --profile cpu", 0, "says finished but has no"),
    ("compare: a truncated record", damaged(b'{"status": "fini'),
     "compare --datasets synthetic --results {tmp}/results --profile cpu", 0, "not valid JSON"),
]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case, setup, command, code, words", CATALOGUE, ids=[row[0] for row in CATALOGUE])
def test_the_catalogue(tmp_path, capsys, case, setup, command, code, words):
    setup(tmp_path)
    before = files_under(tmp_path)
    with pytest.raises(SystemExit) as ended:
        run_cli(lambda: bench_main(command.replace("{tmp}", str(tmp_path)).split()))
    err = capsys.readouterr().err
    assert ended.value.code == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and any(words in line for line in lines), err
    problem_lines = [line for line in lines if line.startswith(("error:", "warning:", "interrupted:"))]
    assert len(problem_lines) == 1, err  # one line naming the problem
    assert files_under(tmp_path) == before  # nothing written, every earlier file whole
