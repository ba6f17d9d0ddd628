"""Debian: resolving and locking packages from a mirror's index, and the root files that
maintainer scripts would have written."""
