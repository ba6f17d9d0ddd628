"""Strata: reproducible, layered OCI/Docker images as Pants build artifacts."""


def target_types():
    return []


def rules():
    return []
