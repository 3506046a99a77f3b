"""Faults a long benchmark meets, each injected: what was finished is kept, nothing trains
twice, and the user reads one line (docs/faults.md)."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.core import files, records, runlock
from bench.core.errors import BenchError
from bench.core.lifecycle import run

ROOT = Path(__file__).resolve().parent.parent
SLOW_EPOCHS = ["--set", "data.synthetic_train=3000", "--set", "data.max_train_sentences=3000",
               "--set", "train.max_epochs=4"]  # a few seconds per epoch: time to interrupt one


def quiet(message):
    pass


def default_sigint() -> None:
    """In the child: Ctrl-C's default disposition. A process started in the background of a
    non-interactive shell inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt; the tests that send SIGINT would see a run that cannot be stopped."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def python(*arguments, **kwargs):
    return subprocess.Popen([sys.executable, *arguments], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint, **kwargs)


def wait_for(condition, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def smoke_sweep(tmp_path, seeds: str, runs: str, sentences: int, epochs: int = 2) -> list[str]:
    """A smoke-profile experiment file; returns the arguments of a sweep of it into tmp_path/results."""
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(f"profile: smoke\ndatasets: [synthetic]\nseeds: {seeds}\nresources: {{cpu: 1, gpu: 0}}\n"
                          f"settings: {{data: {{synthetic_train: {sentences}, max_train_sentences: {sentences}}}, "
                          f"train: {{max_epochs: {epochs}}}}}\nruns: {runs}\n")
    return ["-m", "bench.cli.sweep", str(experiment), "--results", str(tmp_path / "results")]


def test_two_sweeps_started_together_train_each_run_once(tmp_path):
    command = smoke_sweep(tmp_path, "[0, 1]", "[vae, lm, pooling, beta_vae]", 1500)
    results = tmp_path / "results"
    sweeps = [python(*command) for _ in range(2)]
    outputs = [sweep.communicate(timeout=600) for sweep in sweeps]
    assert [sweep.returncode for sweep in sweeps] == [0, 0], outputs
    log = "".join(out for out, _ in outputs)
    found = sorted(results.rglob(records.RECORD_NAME))
    assert len(found) == 8
    for path in found:
        record = json.loads(path.read_text())
        assert record["status"] == "finished" and len(record["sessions"]) == 1  # one training, never resumed
    assert log.count("done ") == 8  # each run reported done by exactly one of the two sweeps
    assert "not trained here" in log  # the sweeps did meet on a run (else this test proves nothing)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_sweep_with_one_line_and_a_rerun_finishes_it(tmp_path, signum):
    """Ray installs its own SIGTERM handler (a stack dump) and its own Ctrl-C handler (which
    ends the Tune loop and returns as if all were well): the sweep's own exit must win."""
    command = smoke_sweep(tmp_path, "[0]", "[vae]", 6000, epochs=6)
    results = tmp_path / "results"
    sweep = python(*command)
    wait_for(lambda: any(results.rglob(records.CHECKPOINT_NAME)) or sweep.poll() is not None, seconds=300)
    assert sweep.poll() is None, sweep.communicate()  # still training: its first epoch is checkpointed
    sweep.send_signal(signum)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 128 + signum, out + err
    assert "interrupted: " in err and "SIGTERM received" not in out + err and "Traceback" not in out + err
    again = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "1 finished" in again.stdout, again.stdout + again.stderr


def test_a_trial_process_that_dies_leaves_a_failed_record_naming_the_cause(tmp_path):
    """The OOM killer or a segfault ends a trial without an exception: the driver writes the
    failed record (with the run's memory estimate), and a rerun resumes the run."""
    command = smoke_sweep(tmp_path, "[0]", "[vae]", 6000, epochs=6)
    results = tmp_path / "results"
    sweep = python(*command)
    wait_for(lambda: any(results.rglob(records.CHECKPOINT_NAME)) or sweep.poll() is not None, seconds=300)
    folder = next(results.rglob(records.CHECKPOINT_NAME)).parent
    os.kill(runlock.read_owner(folder)["pid"], signal.SIGKILL)  # the trial's process, as the OOM killer would
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 1 and "Traceback" not in out + err, out + err
    assert "FAILED vae/synthetic/seed0: the trial process died" in out
    record = json.loads((folder / records.RECORD_NAME).read_text())
    assert record["status"] == "failed" and "the trial process died" in record["error"]
    assert "GiB at peak" in record["error"] and record["run_id"] in folder.name
    again = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "1 finished" in again.stdout, again.stdout + again.stderr


def test_a_live_lock_is_respected_and_a_dead_holders_lock_is_taken_over(tmp_path, smoke_config):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = python("-c", "import sys, time; from bench.core import runlock\n"
                          f"with runlock.hold({str(folder)!r}):\n    print('held', flush=True); time.sleep(600)")
    assert holder.stdout.readline().strip() == "held"
    assert runlock.is_locked(folder)
    with pytest.raises(runlock.RunLocked, match=f"process {holder.pid} on "):
        with runlock.hold(folder, log=quiet):
            pass
    holder.kill()  # kill -9: no clean-up runs in the holder
    holder.wait()
    messages = []
    with runlock.hold(folder, log=messages.append) as touch:
        touch(3)
        assert runlock.read_owner(folder)["pid"] == os.getpid() and runlock.read_owner(folder)["epoch"] == 3
    assert len(messages) == 1 and f"process {holder.pid}" in messages[0] and "stopped before finishing" in messages[0]
    assert not runlock.is_locked(folder) and runlock.read_owner(folder) is None


def test_a_run_held_by_another_process_is_not_trained(tmp_path, smoke_config):
    config = smoke_config("vae")
    first = run(config, tmp_path, log=quiet)
    folder = next(tmp_path.rglob(records.RECORD_NAME)).parent
    (folder / records.RECORD_NAME).unlink()  # as if it were still training
    holder = python("-c", "import time; from bench.core import runlock\n"
                          f"with runlock.hold({str(folder)!r}):\n    print('held', flush=True); time.sleep(600)")
    assert holder.stdout.readline().strip() == "held"
    try:
        done = subprocess.run([sys.executable, "-m", "bench.cli.train", "--method", "vae", "--profile", "smoke", "--out", str(tmp_path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert f"being trained by process {holder.pid}" in done.stderr and "not trained twice" in done.stderr
    assert not (folder / records.RECORD_NAME).exists() and first["status"] == "finished"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_an_epoch_keeps_the_last_checkpoint_and_the_run_resumes(tmp_path, signum):
    command = ["-m", "bench.cli.train", "--method", "vae", "--profile", "smoke", "--out", str(tmp_path), *SLOW_EPOCHS]
    training = python(*command)
    wait_for(lambda: any(tmp_path.rglob(records.CHECKPOINT_NAME)))
    time.sleep(0.5)  # inside the next epoch
    training.send_signal(signum)
    _, stderr = training.communicate(timeout=120)
    assert training.returncode == 128 + signum
    message = stderr.strip().splitlines()[-1]  # after the run's own log lines
    assert "Traceback" not in stderr and message.startswith("interrupted: ") and "run the same command again" in message
    checkpoint = next(tmp_path.rglob(records.CHECKPOINT_NAME))
    epoch = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= epoch < 4 and f"the checkpoint of epoch {epoch} is kept" in message
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(records.RECORD_NAME))
    assert not runlock.is_locked(checkpoint.parent)
    resumed = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and f"resuming from epoch {epoch}" in resumed.stdout + resumed.stderr
    record = json.loads(next(tmp_path.rglob(records.RECORD_NAME)).read_text())
    assert record["status"] == "finished" and [s["from_epoch"] for s in record["sessions"]] == [0, epoch]


def disk_full(after_calls: int):
    """A stand-in writer that works ``after_calls`` times, then writes half a file and fails
    as a full disk does."""
    calls = {"n": 0}

    def write(original):
        def failing(payload, target, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] > after_calls:
                Path(target if isinstance(target, (str, Path)) else target.name).write_bytes(b"half a file")
                raise OSError(errno.ENOSPC, "No space left on device")
            return original(payload, target, *args, **kwargs)
        return failing
    return write


def test_a_full_disk_leaves_no_partial_file_and_the_previous_checkpoint_intact(tmp_path, smoke_config, monkeypatch):
    config = smoke_config("vae", train={"max_epochs": 3})
    save = torch.save
    monkeypatch.setattr(torch, "save", disk_full(after_calls=1)(save))
    with pytest.raises(BenchError) as failure:
        run(config, tmp_path, log=quiet)
    message = str(failure.value)
    assert "cannot write" in message and "checkpoint.pt (No space left on device)" in message
    assert "\n" not in message and "run the same command again" in message
    folder = next(tmp_path.rglob(records.CHECKPOINT_NAME)).parent
    assert records.load_checkpoint(folder / records.CHECKPOINT_NAME, "cpu")["epoch"] == 1  # epoch 1's, whole
    assert not list(folder.glob("*.tmp"))
    assert json.loads((folder / records.RECORD_NAME).read_text())["status"] == "failed"

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(files.json, "dump", disk_full(after_calls=0)(json.dump))  # the final record fails
    with pytest.raises(BenchError, match="record.json .No space left on device."):
        run(config, tmp_path, log=quiet)
    assert json.loads((folder / records.RECORD_NAME).read_text())["status"] == "failed"  # the old file, whole
    assert not list(folder.glob("*.tmp")) and (folder / records.CHECKPOINT_NAME).is_file()

    monkeypatch.undo()
    record = run(config, tmp_path, log=quiet)  # space again: nothing finished is redone
    assert record["status"] == "finished" and [s["from_epoch"] for s in record["sessions"]] == [0, 1, 3]


def test_a_checkpoint_of_another_configuration_or_code_version_is_refused(tmp_path, smoke_config):
    config = smoke_config("vae", train={"max_epochs": 3})

    def stop_after_first_epoch(message):
        if message.startswith("epoch   1"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path, log=stop_after_first_epoch)
    checkpoint = next(tmp_path.rglob(records.CHECKPOINT_NAME))
    original = torch.load(checkpoint, weights_only=True)
    for change, expected in [({"run_id": "0123456789ab"}, "belongs to another configuration"),
                             ({"checkpoint_format": 1}, "written by another version of the code"),
                             ({"model": {}}, "does not fit this run's model")]:
        torch.save({**original, **change}, checkpoint)
        with pytest.raises(BenchError, match=expected) as refused:
            run(config, tmp_path, log=quiet)
        assert "--restart" in str(refused.value) and "\n" not in str(refused.value)
    record = run(config, tmp_path, log=quiet, resume=False)  # --restart
    assert record["status"] == "finished" and [s["from_epoch"] for s in record["sessions"]] == [0]


def test_torchs_own_write_error_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """On a full disk torch's zip writer raises RuntimeError, not OSError: the same one line."""
    import torch
    from bench.core import files
    from bench.core.errors import BenchError
    path = tmp_path / "checkpoint.pt"
    files.save_checkpoint_atomic(path, {"epoch": 1})

    def full_disk(state, target):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(BenchError, match=r"cannot write .*checkpoint.pt \(\[enforce fail"):
        files.save_checkpoint_atomic(path, {"epoch": 2})
    assert torch.load(path, weights_only=True) == {"epoch": 1} and len(list(tmp_path.iterdir())) == 1


TINY_FS_SCRIPT = """
import pathlib, sys, torch
from bench.core import files
from bench.core.errors import BenchError
folder = pathlib.Path(sys.argv[1])
files.save_checkpoint_atomic(folder / "checkpoint.pt", {"w": torch.zeros(2000)})  # about 9 KB: fits
(folder / "filler").write_bytes(b"x" * 40_000)  # the disk is now nearly full
try:
    files.save_checkpoint_atomic(folder / "checkpoint.pt", {"w": torch.ones(8000)})
except BenchError as err:
    print("ERROR", err)
print("PREVIOUS", float(torch.load(folder / "checkpoint.pt", weights_only=True)["w"].sum()))
print("FILES", sorted(p.name for p in folder.iterdir()))
"""


def on_a_tiny_file_system(kib: int, *command: str, options: str = "") -> subprocess.CompletedProcess:
    """Run ``command`` with ``{fs}`` replaced by a fresh tmpfs of ``kib`` KiB: a real full disk,
    not a mocked error. Mounted in a private mount namespace (``unshare``), as root or as a
    user where user namespaces are allowed; skipped where neither is."""
    import shlex
    import shutil
    folder = "/tmp/bench-tiny-fs"
    if not shutil.which("unshare"):
        pytest.skip("no unshare here to mount a tiny file system; the mocked errors above cover it")
    body = " ".join(shlex.quote(part.replace("{fs}", folder)) for part in command)
    script = f"mkdir -p {folder} && mount -t tmpfs -o size={kib}k{options} tmpfs {folder} || exit 99; {body}"
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    if done.returncode == 99 or "unshare failed" in done.stderr or "Operation not permitted" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()[:80]}); the mocked errors above cover it")
    return done


def test_a_real_full_disk_is_one_line_and_keeps_the_previous_checkpoint():
    done = on_a_tiny_file_system(64, sys.executable, "-c", TINY_FS_SCRIPT, "{fs}")
    assert "Traceback" not in done.stderr, done.stderr
    error = next(line for line in done.stdout.splitlines() if line.startswith("ERROR"))
    assert "checkpoint.pt (No space left on device: " in error and "run the same command again" in error
    assert "PREVIOUS 0.0" in done.stdout  # the first checkpoint, whole
    assert "FILES ['checkpoint.pt', 'filler']" in done.stdout  # no temporary file left behind


def test_a_run_on_a_full_disk_ends_with_one_line():
    done = on_a_tiny_file_system(48, sys.executable, "-m", "bench", "train", "--method", "vae", "--profile",
                                 "smoke", "--out", "{fs}/run")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write ") and "No space left on device" in last


@pytest.mark.parametrize("command", [
    ["train", "--method", "vae", "--profile", "smoke", "--out", "{fs}/run"],
    ["compare", "--datasets", "yahoo", "--published-only", "--format", "md", "--out", "{fs}/tables"],
    ["report", "--results", str(ROOT / "results"), "--profile", "cpu", "--out", "{fs}/report"],
    ["sweep", str(ROOT / "experiments" / "smoke.yaml"), "--results", "{fs}/results"],
], ids=["train", "compare", "report", "sweep"])
def test_a_read_only_file_system_is_one_line_from_every_writer(command):
    """A folder no one may write (root included: permissions do not stop root, a read-only mount does)."""
    done = on_a_tiny_file_system(64, sys.executable, "-m", "bench", *command, options=",ro")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot ") and "Read-only file system" in last, done.stderr


def test_diagnose_never_overwrites_the_committed_figure_with_a_smaller_one(tmp_path):
    import json
    from bench.cli import diagnose
    from bench.core.errors import BenchError
    (tmp_path / "lagging.json").write_text(json.dumps({"profile": "cpu", "sample": 500}))
    with pytest.raises(BenchError, match="holds the cpu profile's figure .* pass --force"):
        diagnose.main(["lagging", "--profile", "smoke", "--sample", "20", "--out", str(tmp_path)])


def test_a_closed_pipe_never_stops_a_run(tmp_path):
    """`python -m bench train ... 2>&1 | head -1`: the reader goes away after one line; the run
    trains on, finishes its record, and exits 0 without a traceback."""
    command = (f"{sys.executable} -m bench train --method vae --profile smoke --out {tmp_path} 2>&1 | head -1; "
               "exit ${PIPESTATUS[0]}")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout
    record = json.loads(next(tmp_path.rglob("record.json")).read_text())
    assert record["status"] == "finished"
