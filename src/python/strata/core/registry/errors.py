"""A registry's failures, in the core's one hierarchy (strata.core.errors: exit code 1, one line):
each message names the registry, the repository and the object, never credentials or tokens."""

from strata.core.errors import StrataError


class RegistryError(StrataError):
    """A registry operation failed."""


class AuthenticationError(RegistryError):
    """HTTP 401: no credentials, or the registry (or its token server) rejected them."""


class AuthorizationError(RegistryError):
    """HTTP 403: authenticated, but not allowed."""


class NotFoundError(RegistryError):
    pass


class DigestMismatchError(RegistryError):
    pass


class UnsupportedMediaTypeError(RegistryError):
    pass
