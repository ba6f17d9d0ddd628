"""`//app:image`, built as a user would (`pants package`) in a scratch copy of the repo."""

import json
import shutil
import tarfile
from pathlib import Path

from strata_harness.images import assert_valid_image
from strata_harness.scratch import ScratchRepo

# In a test sandbox, `files` dependencies sit at their paths from the build root.
DEMO_FILES = ("app/BUILD", "app/hello/__init__.py", "app/hello/main.py")


def layers_of(archive: Path) -> dict:
    """{history comment: diff_id} of a docker-archive."""
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        config = json.load(tar.extractfile(manifest["Config"]))
    comments = [entry["comment"] for entry in config["history"]]
    return dict(zip(comments, config["rootfs"]["diff_ids"]))


def demo_repo(root: Path) -> ScratchRepo:
    repo = ScratchRepo(
        root,
        config={
            "source": {"root_patterns": ["/app"]},
            "python": {
                "requirement_constraints": "3rdparty/python/constraints.txt",
                "resolve_all_constraints": False,
            },
        },
    )
    for rel in DEMO_FILES:
        (repo.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rel, repo.root / rel)
    (repo.root / "app/hello/BUILD").write_text(
        'python_sources(interpreter_constraints=["CPython==3.11.*"])\n'
    )
    for rel in ("3rdparty/python/constraints.txt", "3rdparty/python/app-requirements.txt"):
        (repo.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rel, repo.root / rel)
    repo.write(
        {
            "3rdparty/python/BUILD": """
                python_requirements(name="app", source="app-requirements.txt")
            """
        }
    )
    return repo


def test_app_image_is_valid_and_a_code_change_touches_only_the_code_layer(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path / "repo")
    repo.run("package", "app:image")
    image = repo.root / "dist/app/image.tar"
    assert_valid_image(image)
    before = layers_of(image)
    # Bootstrap, one layer per wheel, the app's own code, then the customisation layer.
    assert list(before) == [
        "app:bin#.bootstrap",
        "app:bin#python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
        "app:bin#six-1.17.0-py2.py3-none-any.whl",
        "app:bin",
        "customisation layer",
    ]

    main = repo.root / "app/hello/main.py"
    main.write_text(main.read_text().replace("Hello from Strata", "Hi from Strata"))
    repo.run("package", "app:image")
    after = layers_of(image)
    changed = sorted(c for c in before if before[c] != after[c])
    assert changed == ["app:bin"]
