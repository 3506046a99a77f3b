"""Validation curves streamed to TensorBoard while a run trains (optional: needs tensorboardX).

``python -m bench train --tensorboard DIR`` writes one event file per run under
``DIR/<profile>/<dataset>/<label>/seed<N>``; ``python -m bench sweep --tensorboard`` adds Ray
Tune's own ``TBXLoggerCallback``, which writes each trial's reported metrics beside Tune's state
(``RESULTS/.tune``). Either way: ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bench.core.errors import BenchError

INSTALL = "pip install tensorboardX (or pip install -e .[tensorboard])"


def require_tensorboardx() -> Any:
    try:
        import tensorboardX
    except ImportError:
        raise BenchError(f"--tensorboard needs the optional package tensorboardX: {INSTALL}") from None
    return tensorboardX


def epoch_writer(folder: Path) -> Callable[[Any], None]:
    """An ``on_epoch`` callback (bench.core.lifecycle.run) that writes the epoch's numbers from
    the trainer's curves (validation ELBO, KL, MI, AU, dispersion, training loss and speed) as
    scalars at step = epoch."""
    writer = require_tensorboardx().SummaryWriter(str(folder))

    def on_epoch(trainer) -> None:
        row = trainer.curves[-1]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(key, value, row["epoch"])
        writer.flush()
    return on_epoch
