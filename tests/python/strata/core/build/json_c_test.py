import json
import subprocess
import sys

import pytest

from strata.core.build import json_c

DOCUMENTS = [
    '{"settings": {"mtime": 1, "zstd": null}, "trees": [{"source": "rootfs", "dest": "",'
    ' "executables": ["bin/h\\u00e9llo", "sbin/x"]}], "entries": []}',
    ' [1, -2, 3.5, -4e-3, 1E+20, true, false, null, "", "tab\\tquote\\"", {}] \n',
    '"text"',
    "0",
    '{"a": {"b": {"c": [[], [{}]]}}}',
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_loads_reads_what_json_reads(text):
    assert json_c.loads(text) == json.loads(text)


@pytest.mark.parametrize("text", ["", "   ", "{", "[1,]", '{"a": 1} x', "NaN", "-Infinity",
                                  '"\\x"', '{"a" 1}', "[1 2]"])
def test_loads_refuses_what_is_not_json(text):
    with pytest.raises(ValueError):
        json_c.loads(text)


@pytest.mark.parametrize("obj", [
    {},
    {"diff_id": "sha256:" + "a" * 64, "size": 10240, "blob": "layer.tar.gz", "entries": 0},
    {"naïve \"quoted\"\n": "日本語", "big": 2**70, "negative": -1},
])
def test_dumps_flat_writes_what_json_writes_with_indent_2(obj):
    assert json_c.dumps_flat(obj) == json.dumps(obj, indent=2)


@pytest.mark.parametrize("value", [1.5, True, None, [1], {"a": 1}])
def test_dumps_flat_takes_only_strings_and_integers(value):
    with pytest.raises(TypeError):
        json_c.dumps_flat({"key": value})


def test_neither_imports_re():
    """The point of the module: `re` (and `enum`) cost every layer Process ~10 ms to import."""
    code = ("import sys; sys.path[:0] = sys.argv[1:]; from strata.core.build import json_c; "
            "json_c.dumps_flat({'a': json_c.loads('[1, 2.5, \"x\"]')[2]}); "
            "print(sorted({'re', 'enum', 'json'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-E", "-s", "-S", "-c", code, *sys.path],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
