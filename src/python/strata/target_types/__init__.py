"""Strata's targets, one module per family: `image` (with `image_runtime_config` and
`image_customisation`), `layer`, `base`, `index` (indexes and bundles), `debian`, `python` and
`nix`; `fields` holds what their fields share. Each module's `target_types()` lists its targets,
which `strata.register.target_types` gathers."""
