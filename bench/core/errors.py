"""User-facing errors and the CLI wrapper that turns them into one line."""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable


class BenchError(Exception):
    """A mistake the user can fix (bad config, missing data, unknown method).

    The message is one line naming the problem and the fix; CLIs print it without a
    traceback and exit with status 2.
    """


def did_you_mean(word: str, options) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options`` to a misspelt ``word``, else ''."""
    import difflib
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, with a one-line message saying what was kept; ``exit_code`` is
    128 + the signal number, as a shell reports a process ended by that signal."""

    def __init__(self, message: str = "interrupted", exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


_SIGNALLED: list[int] = []  # SIGTERM received (a library may turn our exception into a plain Ctrl-C)


def _terminate(signum, frame) -> None:
    _SIGNALLED.append(signum)
    raise Interrupted("terminated (SIGTERM)", 128 + signum)


def printer(stream=None) -> Callable[[str], None]:
    """``print`` to ``stream`` (default stderr) that outlives its reader: once the pipe is closed
    (``python -m bench train ... 2>&1 | head -3``) further lines are dropped and the work goes on,
    instead of a BrokenPipeError stopping a run halfway."""
    closed = []

    def write(message: str) -> None:
        if closed:
            return
        target = stream or sys.stderr
        try:
            print(message, file=target, flush=True)
        except BrokenPipeError:
            closed.append(True)
            try:  # a later write to this descriptor (e.g. at exit) must not raise either
                os.dup2(os.open(os.devnull, os.O_WRONLY), target.fileno())
            except (OSError, ValueError):
                pass
    return write


def handle_sigterm() -> None:
    """SIGTERM raises :class:`Interrupted` (handled as Ctrl-C). Called again after a library
    that installs its own handler (``ray.init`` prints a stack dump and exits) so that ours wins."""
    signal.signal(signal.SIGTERM, _terminate)


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main`` and turn a :class:`BenchError` into ``error: ...`` on stderr, and Ctrl-C or
    SIGTERM into ``interrupted: ...`` (SIGTERM is handled as Ctrl-C, so that both stop at the
    same places and keep the same files)."""
    handle_sigterm()
    try:
        code = main()
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        if not isinstance(err, Interrupted) and _SIGNALLED:  # e.g. Ray Tune re-raised our SIGTERM as Ctrl-C
            err = Interrupted("terminated (SIGTERM); results already written are kept", 128 + _SIGNALLED[0])
        print(f"interrupted: {err if isinstance(err, Interrupted) else 'results already written are kept'}",
              file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 130))
    except BrokenPipeError:  # `... | head` closed the pipe: nothing more to print, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    sys.exit(code or 0)
