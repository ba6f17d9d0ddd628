from strata_harness import Symlink, make_busybox_image, require_tool, run_tool


def test_run_image_echoes_hello(run_image, tmp_path):
    image = make_busybox_image(tmp_path / "bb.tar", entrypoint=["/bin/busybox", "echo", "hello"])
    assert run_image(image) == (0, "hello\n")


def test_run_image_as_nobody(run_image, tmp_path):
    image = make_busybox_image(tmp_path / "bb.tar")
    assert run_image(image, user=65534) == (0, "hello\n")
    assert run_image(image, ["-u"], user=65534, entrypoint=["/bin/busybox", "id"]) == (0, "65534\n")


def test_run_image_args_exit_code_and_no_network(run_image, tmp_path):
    image = make_busybox_image(
        tmp_path / "bb.tar",
        entrypoint=["/bin/sh", "-c"],
        files={"etc/motd": b"from the image\n", "bin/cat": Symlink("busybox")},
    )
    assert run_image(image, ["cat /etc/motd; exit 3"]) == (3, "from the image\n")
    code, out = run_image(image, ["ls /sys/class/net"])
    assert code == 0 and out.split() == ["lo"]


def test_run_image_from_oci_layout_and_oci_archive(run_image, tmp_path):
    image = make_busybox_image(tmp_path / "bb.tar")
    copy = [
        require_tool("skopeo"),
        "--insecure-policy",
        "copy",
        "--quiet",
        f"docker-archive:{image}",
    ]
    run_tool([*copy, f"oci:{tmp_path / 'layout'}:x"])
    run_tool([*copy, f"oci-archive:{tmp_path / 'oci.tar'}:y"])
    assert run_image(tmp_path / "layout", fmt="oci") == (0, "hello\n")
    assert run_image(tmp_path / "oci.tar", fmt=None) == (0, "hello\n")


def test_podman_state_stays_in_its_root(podman, tmp_path):
    image = make_busybox_image(tmp_path / "bb.tar")
    assert podman.run_image(image) == (0, "hello\n")
    assert podman("ps", "--all", "--quiet").stdout == b""
    assert str(podman.root) in podman("info", "--format", "{{.Store.GraphRoot}}").stdout.decode()
