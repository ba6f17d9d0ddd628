"""Debian in the shell: `lock` (a `debian_packages` target's lockfile and the `debian-lock`
goal), `kind` (its packages as store nodes, the merged-/usr symlinks and the CA bundle) and
`subsystem` (the `[debian]` options). The core's side is strata.core.debian and the `debs`
layer part."""
