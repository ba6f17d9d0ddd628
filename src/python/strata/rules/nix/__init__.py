"""Nix in the shell: `closure` (a `nix_closure`'s store paths from Nix, their NARs, the
`copy_to_root` links and the database) and `kind` (the store paths as store nodes, and
`include_nix_db`). The core's side is strata.core.nix and the `nars` layer part."""
