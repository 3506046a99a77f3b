"""``python -m bench.report``: the same as ``python -m bench report`` (the specification's form)."""

if __name__ == "__main__":
    from bench.__main__ import alias
    alias("report")
