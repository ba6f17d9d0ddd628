import shutil

import pytest

from strata_harness import require_tool
from strata_harness.tools import TOOLS


def test_require_tool_returns_absolute_paths():
    for name in TOOLS:
        assert require_tool(name).startswith("/"), name


def test_missing_tool_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install-system-tools.sh"):
        require_tool("skopeo")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="install-system-tools.sh"):
        require_tool("skopeo")


def test_dynamic_busybox_is_refused(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    dynamic = shutil.which("ls")
    monkeypatch.setattr(shutil, "which", lambda name: dynamic)
    with pytest.raises(pytest.skip.Exception, match="busybox-static"):
        require_tool("busybox")
