"""Nix store closures: what `nix-build` made and its closure (`closure.py`), and the Nix
database that registers a closure in an image (`db.py`)."""
