"""The command-line fronts, built on :mod:`bench.core`; each module's ``main`` is a command of
``python -m bench``."""
