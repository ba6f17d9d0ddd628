"""A registry that builds images of Debian packages when they are pulled, as Nixery does for
Nix: `podman pull HOST/shell/curl` is an image of bash, coreutils and curl from one pinned
snapshot of the archive, layered as `pants package` layers it (see docs/architecture.md, "The
registry that builds on pull")."""
