"""Files written so that a reader never sees a part of one: atomic replacement, output folders."""

from __future__ import annotations

import json
import os
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


def save_checkpoint_atomic(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` with the guarantees of :func:`write_json_atomic`."""
    import torch  # here, not at the top: reading results needs no torch
    _replace_atomically(path, lambda tmp: torch.save(state, tmp))


def _replace_atomically(path: Path, write: Callable[[str], None]) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise BenchError(f"cannot write {path} ({err.strerror or err}); free disk space or fix the folder's "
                         "permissions, then run the same command again (files already written are kept)") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
