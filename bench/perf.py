"""``python -m bench.perf``: the same as ``python -m bench perf`` (the specification's form)."""

if __name__ == "__main__":
    from bench.__main__ import alias
    alias("perf")
