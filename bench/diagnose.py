"""``python -m bench.diagnose``: the same as ``python -m bench diagnose`` (the specification's form)."""

if __name__ == "__main__":
    from bench.__main__ import alias
    alias("diagnose")
