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
  fakeroot:fakeroot
  oci-image-tool:oci-image-tool
  nix-store:nix-bin
  gpgv:gpgv
  zstd:zstd
  htpasswd:apache2-utils
  dockerd:docker.io
)

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
