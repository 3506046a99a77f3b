"""``python -m bench.download``: the same as ``python -m bench download`` (the specification's form)."""

if __name__ == "__main__":
    from bench.__main__ import alias
    alias("download")
