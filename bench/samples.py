"""``python -m bench.samples``: the same as ``python -m bench samples`` (the specification's form)."""

if __name__ == "__main__":
    from bench.__main__ import alias
    alias("samples")
