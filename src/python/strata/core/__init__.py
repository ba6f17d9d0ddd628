"""Strata's pure core: standard library only, never imports Pants (see docs/architecture.md)."""
