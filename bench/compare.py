"""``python -m bench.compare``: the same as ``python -m bench compare`` (the specification's form)."""

if __name__ == "__main__":
    from bench.__main__ import alias
    alias("compare")
