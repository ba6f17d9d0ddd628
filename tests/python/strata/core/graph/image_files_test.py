"""An image's paths from its layers' path lists: symlinks followed inside the image, and the
programs a container would run found (or why not) as the kernel and runc find them."""

from __future__ import annotations

from strata.core.graph.image_files import (
    ImageFiles,
    PathEntry,
    find_program,
    program_problem,
    read_path_list,
)

FILE, EXE = PathEntry("file", 0o644), PathEntry("file", 0o755)


def link(target: str) -> PathEntry:
    return PathEntry("symlink", 0o777, target)


# Debian's python3.11 under merged-/usr, a venv linking to it, and a customisation layer on top.
DEBIAN = {"usr": PathEntry("dir", 0o755), "usr/bin": PathEntry("dir", 0o755),
          "usr/bin/python3.11": EXE, "usr/share/doc/x": FILE}
VENV = {"opt/venv/bin/python": link("/usr/bin/python3.11"),
        "opt/venv/bin/http": EXE, "opt/venv/bin/loop": link("loop2"),
        "opt/venv/bin/loop2": link("loop"), "opt/venv/bin/up": link("../../../usr/bin/python3.11"),
        "opt/venv/bin/above": link("../../../../../usr/bin/python3.11"),
        "opt/venv/bin/gone": link("/usr/local/bin/python3.11"), "opt/venv/README": FILE}
TOP = {"bin": link("usr/bin"), "usr/local/bin/tool": link("/bin/python3.11")}
IMAGE = ImageFiles([DEBIAN, VENV, TOP])


def test_symlinks_resolve_inside_the_image() -> None:
    assert IMAGE.resolve("/bin/python3.11") == ("/usr/bin/python3.11", EXE)
    assert IMAGE.resolve("/opt/venv/bin/python") == ("/usr/bin/python3.11", EXE)
    assert IMAGE.resolve("/usr/local/bin/tool") == ("/usr/bin/python3.11", EXE)
    assert IMAGE.resolve("/opt/venv/bin/up") == ("/usr/bin/python3.11", EXE)
    # `..` stops at the root, as the kernel's does.
    assert IMAGE.resolve("/opt/venv/bin/above") == ("/usr/bin/python3.11", EXE)
    assert IMAGE.resolve("/opt/venv/bin/gone") == ("/usr/local/bin/python3.11", None)
    assert IMAGE.resolve("/opt/venv/bin/loop")[1] is None


def test_an_upper_layer_wins() -> None:
    files = ImageFiles([{"app/run": EXE}, {"app/run": FILE}])
    assert files.entry("app/run") == FILE


def test_program_problems_say_what_is_there_and_where_links_led() -> None:
    assert program_problem(IMAGE, "/opt/venv/bin/python") is None
    assert program_problem(IMAGE, "/opt/venv/bin/gone") == (
        "/opt/venv/bin/gone is not in the image (it leads to /usr/local/bin/python3.11)"
    )
    assert program_problem(IMAGE, "/usr/local/bin/python3.11") == (
        "/usr/local/bin/python3.11 is not in the image"
    )
    assert program_problem(IMAGE, "/opt/venv/README") == (
        "/opt/venv/README is not executable (mode 0644)"
    )
    assert program_problem(IMAGE, "/bin") == (
        "/bin is a directory, not a program (it leads to /usr/bin)"
    )


def test_a_bare_name_is_searched_on_the_image_path() -> None:
    assert find_program(IMAGE, "python3.11", []) == (
        "/usr/bin/python3.11", [
            "/usr/local/sbin/python3.11 is not in the image",
            "/usr/local/bin/python3.11 is not in the image",
            "/usr/sbin/python3.11 is not in the image",
        ]
    )
    assert find_program(IMAGE, "http", ["LANG=C", "PATH=/opt/venv/bin:/usr/bin"])[0] == (
        "/opt/venv/bin/http"
    )
    found, problems = find_program(IMAGE, "http", [])
    assert found is None and len(problems) == 6


def test_a_relative_program_is_found_from_the_working_directory() -> None:
    assert find_program(IMAGE, "bin/http", [], "/opt/venv") == ("/opt/venv/bin/http", [])
    assert find_program(IMAGE, "./bin/http", [], "/usr") == (
        None, ["/usr/bin/http is not in the image"]
    )


def test_a_directory_no_layer_lists_is_looked_through() -> None:
    # A base's layer may hold /app/run without an entry for /app.
    files = ImageFiles([{"app/run": EXE}])
    assert files.resolve("/app/run") == ("/app/run", EXE)
    assert files.resolve("/nothing/run") == ("/nothing/run", None)


def test_path_lists_read_as_the_layer_subcommand_writes_them() -> None:
    assert read_path_list([["usr/bin/python3", "symlink", 511, "python3.11"],
                           ["usr", "dir", 493, ""]]) == {
        "usr/bin/python3": link("python3.11"), "usr": PathEntry("dir", 0o755)
    }
