"""collapse-bench: a benchmark harness for posterior collapse in LSTM sequence VAEs.

Three wings, each importing only from the ones before it (``tests/test_architecture.py``):

- :mod:`bench.core`: the library: configuration, data, the LSTM VAE, estimators, the
  training loop, run records and the results layer. It knows no method by name; methods
  plug in through :mod:`bench.core.method`.
- :mod:`bench.cli`: the command-line fronts (train, sweep, compare, diagnose, perf, download).
- :mod:`bench.analysis`: the paper-specific analysis (the report's RQ1-RQ4, the scale study).

``python -m bench COMMAND ...`` runs any of their commands (:mod:`bench.__main__`).
"""

__version__ = "0.1.0"
