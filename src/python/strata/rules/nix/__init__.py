"""Nix in the shell: `closure` (a `nix_closure`'s store paths from Nix, their NARs, the
`copy_to_root` links and the database), `kind` (the store paths as store nodes, and
`include_nix_db`) and `subsystem` (the `[nix]` options). The core's side is strata.core.nix
and the `nars` layer part."""
