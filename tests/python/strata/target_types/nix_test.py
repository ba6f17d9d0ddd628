"""`nix_closure`: built or given, and its store paths and links checked."""

import re

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException, InvalidTargetException

from strata.target_types.nix import NixClosureTarget, NixPathsToLinkField, NixStorePathsField

CLOSURE = Address("nix", target_name="closure")


STORE_PATH = "/nix/store/" + "0123456789abcdfghijklmnpqrsvwxyz" + "-hello-2.12"


@pytest.mark.parametrize("fields, message", [
    ({}, "needs either `source` and `attributes` (what nix-build builds) or `store_paths` "
         "(existing store paths), not neither"),
    ({"source": "closure.nix", "attributes": ["hello"], "store_paths": [STORE_PATH]},
     "not both"),
    ({"source": "closure.nix"}, "The `attributes` field of nix_closure nix:closure is needed "
                                "with `source`"),
    ({"store_paths": [STORE_PATH], "attributes": ["hello"]},
     "The `attributes` field of nix_closure nix:closure is needed with `source`, and only there"),
])  # fmt: skip
def test_a_nix_closure_is_built_or_given_not_both_nor_neither(fields, message):
    with pytest.raises(InvalidTargetException, match=re.escape(message)):
        NixClosureTarget(fields, CLOSURE)


@pytest.mark.parametrize("path", [
    "/nix/store/hello",  # no hash
    "/nix/store/" + "e" * 32 + "-x",  # 'e' is not in Nix's base32
    STORE_PATH + "/bin/hello",  # inside a store path
    "nix/store/" + "0" * 32 + "-x",  # relative
])
def test_store_paths_must_be_top_level_store_paths(path):
    with pytest.raises(InvalidFieldException, match=re.escape(
            f"The 'store_paths' field in target nix:closure is invalid: store path: {path!r} "
            "is not a Nix store path")):
        NixStorePathsField.compute_value([path], CLOSURE)


@pytest.mark.parametrize("name", ["usr/bin", "..", "."])
def test_paths_to_link_are_directory_names(name):
    with pytest.raises(InvalidFieldException, match=re.escape(
            f"The 'paths_to_link' field in target nix:closure holds {name!r}")):
        NixPathsToLinkField.compute_value([name], CLOSURE)


def test_good_nix_closures_pass():
    assert NixClosureTarget({"store_paths": [STORE_PATH]}, CLOSURE)
    assert NixClosureTarget({"source": "closure.nix", "attributes": ["hello"]}, CLOSURE)
    assert NixPathsToLinkField.compute_value(None, CLOSURE) == ("bin", "lib", "etc", "share")
