"""collapse-bench core: data, the LSTM VAE, estimators, training and records.

The core knows no method by name; methods plug in through :mod:`bench.method`.
"""

__version__ = "0.1.0"
