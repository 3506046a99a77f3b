"""``python -m bench.scale``: the same as ``python -m bench scale`` (the specification's form)."""

if __name__ == "__main__":
    from bench.__main__ import alias
    alias("scale")
