"""The core library: configuration, data, the LSTM VAE, estimators, the training loop, run
records and the results layer. It knows no method by name: methods (``methods/``) plug in
through :mod:`bench.core.method`, and nothing here imports the command-line fronts or the
analysis."""
