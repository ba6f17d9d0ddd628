"""Python in the shell: `venv` (a `python_venv` as store nodes: distributions, sources,
skeleton; its interpreter and entrypoint) and `packed_pex` (a packed PEX split per wheel). The
core's side is the `venvs`, `wheels` and `python_sources` layer parts."""
