"""What a layer Process imports, and nothing else: the shell ships this package (with
`strata/core/__init__.py` and `errors.py`) to layer sandboxes and runs `python -m
strata.core.build`, so a change elsewhere in the core leaves cached layers valid."""
