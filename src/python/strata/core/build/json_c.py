"""JSON for layer Processes through the `_json` C accelerator alone.

The `json` package imports `re` (and with it `enum`): about 10 ms of CPU at every layer
Process's start-up, and every layer is a Process. A layer spec and layer.json need none of it:
`_json`'s scanner parses numbers itself, and layer.json is one flat object.
"""

import _json

_WHITESPACE = " \t\n\r"


class _Decoding:
    """What `_json`'s scanner reads from a json.JSONDecoder: the standard settings."""

    def __init__(self) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = _not_json
        self.memo: dict = {}


def _not_json(name: str):
    raise ValueError(f"not JSON: {name}")


def loads(text: str):
    """`json.loads(text)`, but NaN and Infinity, which are not JSON, are refused. Every error is
    a ValueError (the scanner's own are json.JSONDecodeError, which imports json then)."""
    scan = _json.make_scanner(_Decoding())
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = scan(text, start)
    except StopIteration as e:
        raise ValueError(f"not JSON: expecting a value at character {e.value}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"not JSON: extra data at character {end}")
    return value


def encode_string(text: str) -> str:
    """`json.dumps(text)`: a JSON string, ASCII only."""
    return _json.encode_basestring_ascii(text)


def dumps_flat(obj: dict) -> str:
    """`json.dumps(obj, indent=2)` of an object whose values are strings and integers."""
    items = []
    for key, value in obj.items():
        if isinstance(value, str):
            text = encode_string(value)
        elif type(value) is int:
            text = repr(value)
        else:
            raise TypeError(f"dumps_flat takes strings and integers, not {value!r}")
        items.append(f"  {encode_string(key)}: {text}")
    return "{\n" + ",\n".join(items) + "\n}" if items else "{}"
