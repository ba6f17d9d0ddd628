"""The layer's `nars` step against real Nix: store paths built by nix-build, dumped by
`nix-store --dump`, written by the `layer` subcommand, compared with the store on disk."""

import base64
import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from strata.core.build import layer
from strata.core.build.nar import MAGIC
from strata.core.cli import main
from strata.core.errors import InvalidInput
from strata.core.build.spec import LayerSettings, LayerSpec
from strata_harness.nix import busybox_expression, nix_command, nix_output, option_args

SETTINGS = {"mtime": 1, "uid": 0, "gid": 0, "uname": "root", "gname": "root",
            "compression": "none", "zstd": None}

# A nonce of this test's own: its store paths are not another test's.
EXPRESSION = busybox_expression("strata-nar-test-1", lets=r"""
  note = builtins.toFile "strata-nar-note" "a store path that is one file\n";
""", body=r"""{
  tree = build "strata-nar-tree" ''
    ${bb} mkdir -p $out/bin $out/share/doc/deep/er $out/empty-dir &&
    ${bb} printf '#!/bin/sh\necho hi\n' > $out/bin/hello && ${bb} chmod 755 $out/bin/hello &&
    ${bb} printf 'see ${note}\n' > $out/share/doc/README &&
    ${bb} touch $out/share/doc/empty &&
    ${bb} head -c 1500000 /dev/zero | ${bb} tr '\0' x > $out/share/doc/deep/er/big &&
    ${bb} ln -s $out/bin/hello $out/bin/absolute &&
    ${bb} ln -s ../share/doc/README $out/bin/relative &&
    ${bb} ln -s ${note} $out/note
  '';
  link = build "strata-nar-link" "${bb} ln -s /nix/store/does-not-matter $out";
}
""")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """{store path: sha256 hex of its NAR} for the expression's closure."""
    work = tmp_path_factory.mktemp("nix")
    (work / "test.nix").write_text(EXPRESSION)
    roots = nix_output([nix_command("nix-build"), str(work / "test.nix"), "-A", "tree",
                        "-A", "link", "--no-out-link", *option_args()]).split()
    infos = json.loads(nix_output([nix_command("nix"), "--extra-experimental-features",
                                   "nix-command", "path-info", "--json", "--recursive", *roots]))
    return {info["path"]: info["narHash"] for info in infos}


def dump(path: str, sandbox: Path) -> str:
    """The path's NAR in the sandbox (by `nix-store --dump`); its sandbox path."""
    name = f"nars/{os.path.basename(path)}.nar"
    (sandbox / "nars").mkdir(exist_ok=True)
    (sandbox / name).write_bytes(nix_output([nix_command("nix-store"), "--dump", path],
                                            text=False))
    return name


def nar_part(path: str, sandbox: Path) -> dict:
    source = dump(path, sandbox)
    digest = hashlib.sha256((sandbox / source).read_bytes()).hexdigest()
    return {"source": source, "store_path": path, "nar_hash": f"sha256:{digest}"}


def on_disk(top: str) -> dict:
    """{image path: (type, mode, contents or target)} of a store path as the store holds it."""
    found = {}
    pending = [top]
    while pending:
        path = pending.pop()
        st = os.lstat(path)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            found[path.lstrip("/")] = ("dir", mode, None)
            pending.extend(os.path.join(path, name) for name in os.listdir(path))
        elif stat.S_ISLNK(st.st_mode):
            found[path.lstrip("/")] = ("symlink", 0o777, os.readlink(path))
        else:
            found[path.lstrip("/")] = ("file", mode, Path(path).read_bytes())
    return found


def in_layer(blob: Path) -> dict:
    found = {}
    with tarfile.open(blob) as tar:
        for info in tar:
            path = info.name.rstrip("/")
            if info.isdir():
                found[path] = ("dir", info.mode, None)
            elif info.issym():
                found[path] = ("symlink", info.mode, info.linkname)
            else:
                assert info.isreg(), path
                found[path] = ("file", info.mode, tar.extractfile(info).read())
            assert (info.uid, info.gid, info.mtime) == (0, 0, 1), path
    return found


def test_a_layer_of_store_paths_is_the_store_on_disk(store, tmp_path, monkeypatch):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    parts = [nar_part(path, sandbox) for path in sorted(store)]
    for part in parts:  # the hash Nix recorded is the hash of what nix-store --dump wrote
        sri = base64.b64encode(bytes.fromhex(part["nar_hash"][len("sha256:"):])).decode()
        assert store[part["store_path"]] == f"sha256-{sri}"
    (sandbox / "spec.json").write_text(json.dumps({"settings": SETTINGS, "nars": parts}))
    monkeypatch.chdir(sandbox)
    assert main(["layer", "--spec", "spec.json", "--out", "out"]) == 0

    expected = {"nix": ("dir", 0o755, None), "nix/store": ("dir", 0o755, None)}
    for path in store:
        expected.update(on_disk(path))
    assert in_layer(sandbox / "out/layer.tar") == expected
    # What the expression made is there: kinds of entries the comparison must have seen.
    kinds = {(kind, mode) for kind, mode, _ in expected.values()}
    assert {("dir", 0o555), ("file", 0o444), ("file", 0o555), ("symlink", 0o777)} <= kinds
    sizes = [len(content) for kind, _, content in expected.values() if kind == "file"]
    assert 0 in sizes and max(sizes) == 1500000
    singles = [p for p in store if not os.path.isdir(p)]
    assert len(singles) == 2  # toFile's file and the store path that is a symlink
    assert not [name for name in os.listdir(sandbox) if name.startswith(".strata-scratch")]


def nar_string(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data + bytes(-len(data) % 8)


def nar(*words: bytes) -> bytes:
    return b"".join(nar_string(word) for word in (MAGIC, *words))


def regular(contents: bytes) -> tuple:
    return (b"(", b"type", b"regular", b"contents", contents, b")")


def directory(*entries) -> tuple:
    words = [b"(", b"type", b"directory"]
    for name, node in entries:
        words += [b"entry", b"(", b"name", name, b"node", *node, b")"]
    return (*words, b")")


def test_the_test_encoder_writes_what_nix_store_dump_writes(tmp_path):
    (tmp_path / "d/b").mkdir(parents=True)
    (tmp_path / "d/a").write_bytes(b"12345678x")
    (tmp_path / "d/b/c").write_bytes(b"")
    expected = nar(*directory((b"a", regular(b"12345678x")),
                              (b"b", directory((b"c", regular(b""))))))
    assert nix_output([nix_command("nix-store"), "--dump", str(tmp_path / "d")],
                      text=False) == expected


STORE_PATH = "/nix/store/" + "0" * 32 + "-crafted"


def build_crafted(tmp_path: Path, data: bytes, nar_hash: str = None):
    (tmp_path / "crafted.nar").write_bytes(data)
    digest = nar_hash or "sha256:" + hashlib.sha256(data).hexdigest()
    spec = {"settings": SETTINGS,
            "nars": [{"source": "crafted.nar", "store_path": STORE_PATH, "nar_hash": digest}]}
    return layer.build_layer(LayerSpec.from_json(spec), tmp_path, tmp_path / "out")


def test_a_crafted_nar_is_read_as_nix_store_dump_writes_it(tmp_path):
    build_crafted(tmp_path, nar(*directory((b"a", regular(b"12345678x")),
                                           (b"b", directory((b"c", regular(b"")))))))
    with tarfile.open(tmp_path / "out/layer.tar") as tar:
        assert [(i.name, i.mode) for i in tar] == [
            ("nix", 0o755), ("nix/store", 0o755), (STORE_PATH[1:], 0o555),
            (STORE_PATH[1:] + "/a", 0o444), (STORE_PATH[1:] + "/b", 0o555),
            (STORE_PATH[1:] + "/b/c", 0o444)]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".strata-scratch")]


def test_a_nar_whose_hash_is_not_nar_hash_names_the_store_path(tmp_path):
    wrong = "sha256:" + "ab" * 32
    with pytest.raises(InvalidInput, match=rf"nars\[0\]: the NAR of {STORE_PATH} "
                                           rf"\(crafted.nar\) has sha256 sha256:[0-9a-f]{{64}}, "
                                           rf"not the {wrong} Nix recorded for it"):
        build_crafted(tmp_path, nar(*regular(b"x")), wrong)
    assert not (tmp_path / "out/layer.tar").exists()


MALFORMED = [
    (nar(*regular(b"x")).replace(b"nix-archive-1", b"nix-archive-2"),
     "expected 'nix-archive-1', found b'nix-archive-2'"),
    (nar(*directory((b"b", regular(b"")), (b"a", regular(b"")))),
     r"entry names not sorted or repeated \(b'b', then b'a'\)"),
    (nar(*directory((b"a", regular(b"")), (b"a", regular(b"")))),
     r"entry names not sorted or repeated \(b'a', then b'a'\)"),
    (nar(*directory((b"a/b", regular(b"")))), r"invalid directory entry name b'a/b'"),
    (nar(*directory((b"..", regular(b"")))), r"invalid directory entry name b'\.\.'"),
    (nar(*directory((b"", regular(b"")))), r"invalid directory entry name b''"),
    (nar(*regular(b"0123456789"))[:-20], r"the NAR ends early \(truncated\)"),
    (nar(*regular(b"x")) + b"\0", "bytes after the NAR's root node"),
    (nar(b"(", b"type", b"fifo", b")"), r"unknown node type b'fifo'"),
    (nar(b"(", b"type", b"symlink", b"target", b"", b")"), "invalid symlink target b''"),
    (nar(*regular(b"x"))[:-16] + nar_string(b"y"), r"expected '\)', found b'y'"),
    (nar(*regular(b"x")).replace(b"x" + bytes(7), b"x" + bytes(6) + b"!"),
     "non-zero padding after a string"),
]


@pytest.mark.parametrize("data, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_nars_are_refused_naming_the_store_path(tmp_path, data, message):
    with pytest.raises(InvalidInput, match=rf"nars\[0\]: the NAR of {STORE_PATH} "
                                           rf"\(crafted.nar\): .*{message}"):
        build_crafted(tmp_path, data)


def test_a_long_string_is_refused_before_it_is_read(tmp_path):
    data = nar(b"(", b"type", b"symlink", b"target")
    data += (1 << 40).to_bytes(8, "little")
    with pytest.raises(InvalidInput, match="a 1099511627776-byte name, target or token"):
        build_crafted(tmp_path, data)


def test_two_store_paths_cannot_be_one_image_path(tmp_path):
    data = nar(*regular(b"x"))
    (tmp_path / "a.nar").write_bytes(data)
    (tmp_path / "b.nar").write_bytes(nar(*regular(b"y")))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    spec = {"settings": SETTINGS, "nars": [
        {"source": "a.nar", "store_path": STORE_PATH, "nar_hash": digest},
        {"source": "b.nar", "store_path": STORE_PATH,
         "nar_hash": "sha256:" + hashlib.sha256(nar(*regular(b"y"))).hexdigest()}]}
    with pytest.raises(ValueError, match=f"conflicting entries for '{STORE_PATH[1:]}'"):
        layer.build_layer(LayerSpec.from_json(spec), tmp_path, tmp_path / "out")


@pytest.mark.parametrize("store_path", [
    "/nix/store/" + "0" * 32,  # no name
    "/nix/store/" + "0" * 31 + "-short-hash",
    "/nix/store/" + "e" * 32 + "-e-is-not-base32",
    "/nix/store/" + "0" * 32 + "-x/bin",  # inside a store path
    "/gnu/store/" + "0" * 32 + "-x",
])
def test_a_nar_part_names_a_top_level_store_path(tmp_path, store_path):
    spec = {"nars": [{"source": "a.nar", "store_path": store_path,
                      "nar_hash": "sha256:" + "0" * 64}]}
    with pytest.raises(ValueError, match=r"nars\[0\].store_path: .* is not a Nix store path"):
        LayerSpec.from_json(spec)


def test_layers_without_nars_keep_their_spec():
    # A spec the rules write without nars has no `nars` key: other layers' cache keys stay.
    spec = LayerSpec(LayerSettings(), parts=(("nars", ()),))
    assert spec.to_json() == {"settings": LayerSettings().to_json()}
