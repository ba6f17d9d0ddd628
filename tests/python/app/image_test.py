"""`//app:image`, built as a user would (`pants package`) in a scratch copy of the repo."""

import json
import tarfile
import time
import uuid
from pathlib import Path

from strata_harness.demo import demo_repo
from strata_harness.images import assert_valid_image
from strata_harness.scratch import executed_processes, ran_processes


def layers_of(archive: Path) -> dict:
    """{history comment: diff_id} of a docker-archive."""
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        config = json.load(tar.extractfile(manifest["Config"]))
    comments = [entry["comment"] for entry in config["history"]]
    return dict(zip(comments, config["rootfs"]["diff_ids"]))


def file_modes(archive: Path) -> dict:
    """{path: mode} of every regular file in a docker-archive's layers."""
    modes = {}
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        for name in manifest["Layers"]:
            with tarfile.open(fileobj=tar.extractfile(name)) as layer:
                modes.update((m.name, m.mode) for m in layer if m.isfile())
    return modes


def test_app_image_runs_and_a_code_change_touches_only_the_code_layer(
    tmp_path: Path, run_image
) -> None:
    repo = demo_repo(tmp_path / "repo")
    # Through pantsd, as users edit and rebuild: its memo also keeps the interpreter and tool
    # searches that a fresh Pants process repeats, so the rebuild's process count is exact.
    try:
        check_demo_image(repo, tmp_path, run_image)
    finally:
        repo.stop_pantsd()


def check_demo_image(repo, tmp_path: Path, run_image) -> None:
    repo.run("--stats-log", "package", "app:image", pantsd=True)
    image = repo.root / "dist/app/image.tar"
    assert_valid_image(image, unpack_to=tmp_path / "unpacked")
    rootfs = tmp_path / "unpacked" / "rootfs"
    # Generated from the ca-certificates package at build time (its postinst never runs).
    assert (rootfs / "etc/ssl/certs/ca-certificates.crt").read_text().count("BEGIN CERT") > 100
    assert (rootfs / "var/lib/dpkg/status.d/libc6").read_text().startswith("Package: libc6")
    assert (rootfs / "bin").is_symlink() and (rootfs / "usr/bin/python3.11").is_file()
    # Modes as the Digest and the .debs record them, also for files of 512 KiB or more (which
    # Pants hardlinks into sandboxes from its store, mode 0555): venv files, Debian files.
    site = "app/venv/lib/python3.11/site-packages"
    modes = file_modes(image)
    assert {path: modes[path] for path in (
        f"{site}/dateutil/zoneinfo/dateutil-zoneinfo.tar.gz",
        f"{site}/hello/main.py",
        "app/venv/bin/hello",
        "usr/lib/x86_64-linux-gnu/libcrypto.so.3",  # 4.7 MB
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "usr/bin/python3.11",
    )} == {
        f"{site}/dateutil/zoneinfo/dateutil-zoneinfo.tar.gz": 0o644,
        f"{site}/hello/main.py": 0o644,
        "app/venv/bin/hello": 0o755,
        "usr/lib/x86_64-linux-gnu/libcrypto.so.3": 0o644,
        "usr/lib/x86_64-linux-gnu/libc.so.6": 0o755,
        "usr/bin/python3.11": 0o755,
    }
    # Bytecode was compiled at build time, so nothing is written when a container starts.
    assert f"{site}/hello/__pycache__/main.cpython-311.pyc" in modes
    assert f"{site}/six-1.17.0.dist-info/RECORD" in modes
    assert run_image(image, ["Ada"]) == (0, "Hello from Strata, Ada! (layers dated 1970-01-01)\n")
    assert run_image(image, ["Bob"], user="nobody")[1].startswith("Hello from Strata, Bob!")
    assert run_image(image, ["Cy"], read_only=True)[1].startswith("Hello from Strata, Cy!")
    before = layers_of(image)
    # Debian's closure sinks to the bottom (libc6 among the first layers), each distribution
    # gets its own layer, the app's own code sits above them, the customisation layer on top.
    comments = list(before)
    assert "debian:libc6" in comments[:3]
    assert {"app:hello#python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
            "app:hello#six-1.17.0-py2.py3-none-any.whl", "app:hello#sources",
            "app:hello"} <= set(comments)
    assert comments[-1] == "customisation layer"

    main = repo.root / "app/hello/main.py"
    # A greeting no earlier run has built, so the code layer cannot come from the cache.
    main.write_text(main.read_text().replace("Hello from Strata", f"Hi ({uuid.uuid4()})"))
    time.sleep(1)  # let pantsd's watcher see it
    rebuild = repo.run("--stats-log", "package", "app:image", pantsd=True)
    after = layers_of(image)
    changed = sorted(c for c in before if before[c] != after[c])
    assert changed == ["app:hello#sources"]
    # Only the code layer's Process ran again, and the image's assembly: no PEX, no
    # requirements resolve, no other layer (those came from the cache).
    rebuilt = ran_processes(rebuild, "Building app:image: layer")
    assert len(rebuilt) == 1 and rebuilt[0].endswith("(app:hello#sources)"), rebuilt
    assert executed_processes(rebuild) == 2, rebuild.stderr[-3000:]


def test_a_deb_that_does_not_match_its_lock_is_rejected(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path / "repo")
    lock_path = repo.root / "app/debian.lock.json"
    lock = json.loads(lock_path.read_text())
    # What a tampered mirror would not match.
    lock["architectures"]["amd64"]["packages"]["libc6"]["sha256"] = "0" * 64
    lock_path.write_text(json.dumps(lock))
    result = repo.run("package", "app:image", check=False)
    assert result.returncode != 0
    assert "0" * 64 in result.stderr
    assert not (repo.root / "dist/app/image.tar").exists()
