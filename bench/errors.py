"""User-facing errors and the CLI wrapper that turns them into one line."""

from __future__ import annotations

import sys
from typing import Callable


class BenchError(Exception):
    """A mistake the user can fix (bad config, missing data, unknown method).

    The message is one line naming the problem and the fix; CLIs print it without a
    traceback and exit with status 2.
    """


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main`` and turn a :class:`BenchError` into ``error: ...`` on stderr."""
    try:
        code = main()
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: results already written are kept", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
