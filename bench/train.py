"""``python -m bench.train``: the same as ``python -m bench train`` (the specification's form)."""

if __name__ == "__main__":
    from bench.__main__ import alias
    alias("train")
