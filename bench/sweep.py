"""``python -m bench.sweep``: the same as ``python -m bench sweep`` (the specification's form)."""

if __name__ == "__main__":
    from bench.__main__ import alias
    alias("sweep")
