"""Debian's control-file format (deb822): a .deb's control file, and a mirror's Release and
Packages files, are paragraphs of `Field: value` lines."""

from typing import AbstractSet, Dict, Iterable, List, Optional


def parse_deb822(lines: Iterable[str], keep: Optional[AbstractSet[str]] = None
                 ) -> List[Dict[str, str]]:
    """Paragraphs of `Field: value` lines (control files, Packages, Release, .sources), keeping
    only the fields in `keep` when given.

    A value keeps its continuation lines, each after a newline with its leading whitespace, so
    a paragraph can be written back unchanged. `#` lines outside values are comments.
    """
    paragraphs: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    field: Optional[str] = None  # where continuation lines go; None for a dropped field
    in_field = False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, field, in_field = {}, None, False
        elif line[0] in " \t":
            if not in_field:
                raise ValueError(f"line {number}: continuation line outside a field: {line!r}")
            if field is not None:
                current[field] += "\n" + line
        elif line.startswith("#"):
            continue
        else:
            name, colon, value = line.partition(":")
            name = name.strip()
            if not colon or not name or " " in name:
                raise ValueError(f"line {number}: not a 'Field: value' line: {line!r}")
            in_field = True
            field = name if keep is None or name in keep else None
            if field is None:
                continue
            if field in current:
                raise ValueError(f"line {number}: field {field!r} repeated in one paragraph")
            current[field] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs
