import os
from pathlib import Path

from strata_harness import Dockerd, Symlink, make_busybox_image
from strata_harness.cgroups import cgroup_mounts
from strata_harness.dockerd import _HARD_CODED_DIRS

# Where dockerd and containerd put state unless told otherwise.
DEFAULT_STATE = tuple(
    Path(p)
    for p in ("/etc/docker/key.json", "/opt/containerd", "/var/lib/docker", "/var/lib/containerd")
)


def test_load_and_run_busybox_without_network(dockerd, tmp_path):
    image = make_busybox_image(
        tmp_path / "bb.tar",
        entrypoint=["/bin/sh", "-c"],
        files={"bin/sh": Symlink("busybox"), "bin/ls": Symlink("busybox")},
    )
    loaded = dockerd("load", "--input", str(image)).stdout.decode()
    assert loaded.strip() == "Loaded image: strata-test/handmade:latest"
    assert dockerd.run("strata-test/handmade:latest", "echo hello; exit 3") == (3, "hello\n")
    assert dockerd.run("strata-test/handmade:latest", "ls /sys/class/net") == (0, "lo\n")
    assert dockerd("ps", "--all", "--quiet").stdout == b""


def test_state_stays_in_its_root(dockerd):
    info = dockerd("info", "--format", "{{.DockerRootDir}} {{.Driver}}").stdout.decode().split()
    assert info == [str(dockerd.root / "root"), "vfs"]
    versions = dockerd("version", "--format", "{{.Client.Version}} {{.Server.Version}}")
    client, server = versions.stdout.decode().split()
    assert client == server


def test_stop_leaves_nothing_behind(tmp_path):
    existed = {d: d.exists() for d in (*_HARD_CODED_DIRS, *DEFAULT_STATE)}
    daemon = Dockerd(tmp_path / "d").start()
    daemon("load", "--input", str(make_busybox_image(tmp_path / "bb.tar")))
    assert daemon.run("strata-test/handmade:latest") == (0, "hello\n")
    pids = [p.pid for p in daemon._processes]
    daemon.stop()

    assert not daemon.root.exists()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    with open("/proc/self/mountinfo") as f:
        assert str(daemon.root) not in f.read()
    for mount in cgroup_mounts():
        assert not (mount / daemon.cgroup_parent.lstrip("/")).exists()
    for d in DEFAULT_STATE:
        assert existed[d] or not d.exists(), d
    for d in _HARD_CODED_DIRS:  # unless another daemon on this host uses it
        assert existed[d] or not d.exists() or os.listdir(d), d
