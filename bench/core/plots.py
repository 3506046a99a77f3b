"""Shared matplotlib set-up: a headless backend and saving every figure as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

from bench.core.files import make_output_dir


def pyplot():
    """matplotlib.pyplot on the Agg backend (no screen on the project machines)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(figure, stem: Path) -> str:
    """Write ``stem``.png and ``stem``.pdf, close the figure, return the PNG's file name."""
    make_output_dir(stem.parent)
    figure.tight_layout(rect=(0, 0, 1, 0.92))  # leave room for the suptitle
    for suffix in (".png", ".pdf"):  # no creation date in the PDF: the same figure gives the same file
        figure.savefig(stem.with_suffix(suffix), dpi=130, bbox_inches="tight",
                       metadata={"CreationDate": None} if suffix == ".pdf" else None)
    pyplot().close(figure)
    return stem.with_suffix(".png").name
