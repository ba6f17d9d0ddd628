"""README's layout table names the root BUILD, and only paths the repository holds."""

import re
from pathlib import Path

from strata_harness.scratch import strata_root

ROW = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def test_every_path_in_the_readme_layout_table_exists():
    readme = Path("README.md").read_text(encoding="utf-8")  # from the //:readme dependency
    table = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    paths = ROW.findall(table)
    assert "BUILD" in paths
    assert [path for path in paths if not (strata_root() / path).exists()] == []
