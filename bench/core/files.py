"""Files written so that a reader never sees a part of one: atomic replacement, output folders."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from bench.core.errors import BenchError


def make_output_dir(folder: Path) -> None:
    """Create an output folder, or say in one line which part of its path is not a folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise BenchError(f"cannot create output folder {folder}: {blocking} is a file, not a folder; "
                         "pass a folder (--out / --results)") from None
    except OSError as err:  # a read-only file system, no permission, a full disk
        raise BenchError(f"cannot create output folder {folder} ({err.strerror or err}); pass a folder you can "
                         "write (--out / --results), or free disk space") from None


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write (then remove) a file in it, so that a folder no one may write
    is one line before a long job starts, not an error deep inside a library."""
    make_output_dir(folder)
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise BenchError(f"cannot write in {folder} ({err.strerror or err}); pass a folder you can write "
                         "(--out / --results)") from None


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to a temporary file in the same folder, then rename it into place: a reader
    sees the old file or the new one, never a part; a failed write (a full disk) leaves the old
    file as it was and raises one line."""
    make_output_dir(path.parent)

    def write(tmp: str) -> None:
        with open(tmp, "w") as out:
            json.dump(payload, out, indent=1, sort_keys=False, default=str)
            out.flush()
            os.fsync(out.fileno())

    _replace_atomically(path, write)


def write_text_atomic(path: Path, text: str) -> None:
    """A text file with the guarantees of :func:`write_json_atomic`."""
    make_output_dir(path.parent)
    _replace_atomically(path, lambda tmp: Path(tmp).write_text(text))


def save_checkpoint_atomic(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` with the guarantees of :func:`write_json_atomic`."""
    import torch  # here, not at the top: reading results needs no torch
    _replace_atomically(path, lambda tmp: torch.save(state, tmp))


def _replace_atomically(path: Path, write: Callable[[str], None]) -> None:
    tmp = None
    try:
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # RuntimeError: torch's zip writer on a full disk
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise BenchError(f"cannot write {path} ({write_failure(err, path.parent)}); free disk space or fix the "
                         "folder's permissions, then run the same command again (files already written are kept)") from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise


def write_failure(err: Exception, folder: Path) -> str:
    """Why a write failed, in words: the OS's reason, or for torch's writer (whose RuntimeError
    reads "unexpected pos 44224 vs 44112" on a full disk) the free space that explains it."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return reason
    return f"No space left on device: {free:,} bytes free; {reason}" if free < 1 << 20 else reason


GENERATED = re.compile(r"<!-- generated: (\{.*\}) -->")
COUNTS = ("runs", "sections")  # what a generated report must not lose without --force


def generated_facts(path: Path) -> dict[str, Any]:
    """What a generated file said it was built from (its last ``<!-- generated: {...} -->`` line)."""
    try:
        found = GENERATED.findall(path.read_text(errors="replace"))
        return json.loads(found[-1]) if found else {}
    except (OSError, ValueError):
        return {}


def refuse_to_replace_with_less(path: Path, facts: dict[str, Any], force: bool) -> None:
    """A committed report or figure is never replaced by one built from fewer finished runs or
    sections, or from another profile, unless ``force``: one line saying what would be lost."""
    if force or not path.is_file():
        return
    old = generated_facts(path) if path.suffix == ".md" else json_facts(path)
    losses = [f"{key} {old[key]} -> {facts.get(key, 0)}" for key in COUNTS
              if isinstance(old.get(key), int) and facts.get(key, 0) < old[key]]
    if old.get("profile") and facts.get("profile") and old["profile"] != facts["profile"]:
        losses.append(f"profile {old['profile']} -> {facts['profile']}")
    if losses:
        raise BenchError(f"{path} would be replaced by less ({'; '.join(losses)}); pass --force to replace it, or "
                         "--out DIR to write elsewhere")


def json_facts(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_generated(path: Path, text: str, facts: dict[str, Any], force: bool = False) -> None:
    """Write a generated Markdown file atomically, stamped with what it was built from, unless it
    would replace one built from more (:func:`refuse_to_replace_with_less`)."""
    refuse_to_replace_with_less(path, facts, force)
    write_text_atomic(path, text.rstrip("\n") + f"\n\n<!-- generated: {json.dumps(facts, sort_keys=True)} -->\n")
