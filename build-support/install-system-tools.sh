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
