#!/usr/bin/env bash
# Bootstraps what ./pants needs, idempotently and unattended:
#   1. CPython 3.9 from Debian bullseye (apt pin 100, so nothing else is upgraded from it),
#   2. a venv at a fixed path with Pants and its testutil, under a committed constraints file,
#   3. the pex CLI, built from PyPI into build-support/pex and checked against pants.toml.
# Each step is skipped when its result already exists. Run by ./pants; prints progress to stderr.
# The results must not depend on who runs it: the pex zip records file modes (some copied from
# the venv), so everything is written under umask 022, in a fixed locale, and the pex build sees
# neither HOME nor TMPDIR nor a shared PEX_ROOT.
set -euo pipefail
umask 022
export LC_ALL=C

STRATA_ROOT="${STRATA_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
# A fixed path on purpose: pex-based processes embed the interpreter path in their cache keys,
# so a per-checkout venv would stop two checkouts from sharing (remote) cache entries.
PANTS_VENV="${STRATA_PANTS_VENV:-/opt/strata/pants-venv-2.17.1}"
PANTS_CONSTRAINTS="$STRATA_ROOT/3rdparty/python/pants-constraints.txt"
PEX_BIN="$STRATA_ROOT/build-support/pex"
PEX_VERSION=2.1.137

say() { echo "strata bootstrap: $*" >&2; }
die() { echo "strata bootstrap: ERROR: $*" >&2; exit 1; }

need_root_apt() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || [ ! -r /etc/debian_version ]; then
    die "$1
Strata bootstraps on Debian as root. Elsewhere, install CPython 3.9 (python3.9 on PATH, with venv
and distutils) yourself, or point STRATA_PANTS_VENV at an existing venv that has
pantsbuild.pants==2.17.1 and pantsbuild.pants.testutil==2.17.1 (see $PANTS_CONSTRAINTS)."
  fi
}

# The mirror the machine's apt already uses for Debian (never a hard-coded host).
debian_mirror_uri() {
  local uri
  uri="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
          | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)"
  if [ -z "$uri" ]; then
    uri="$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | grep -E ' (bookworm|bullseye|trixie|stable)( |$)' | grep -v -- '-security' \
            | awk '{for (i=2;i<=NF;i++) if ($i !~ /^\[/) {print $i; exit}}' | head -n1 || true)"
  fi
  [ -n "$uri" ] || die "could not find a Debian mirror URI in /etc/apt/sources.list{,.d}"
  echo "$uri"
}

find_python39() {
  for candidate in /usr/bin/python3.9 /usr/local/bin/python3.9; do
    if [ -x "$candidate" ] && "$candidate" -c 'import sys, venv, distutils.util; assert sys.version_info[:2] == (3, 9)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

install_python39() {
  need_root_apt "python3.9 (with venv and distutils) is missing."
  local mirror; mirror="$(debian_mirror_uri)"
  say "adding Debian bullseye (pinned at priority 100) from the machine's mirror for CPython 3.9"
  echo "deb $mirror bullseye main" > /etc/apt/sources.list.d/strata-bullseye.list
  cat > /etc/apt/preferences.d/strata-bullseye <<PIN
Package: *
Pin: release n=bullseye
Pin-Priority: 100
PIN
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  say "installing python3.9 from bullseye"
  apt-get install -y -qq --no-install-recommends python3.9 python3.9-minimal libpython3.9-stdlib >&2
  # python3.9-venv cannot install next to bookworm's python3; its pieces (distutils, lib2to3)
  # are pure Python, so unpack bullseye's debs into the 3.9 stdlib directly.
  local tmp; tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -qq python3-distutils/bullseye python3-lib2to3/bullseye >&2)
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
  cp -a "$tmp/root/usr/lib/python3.9/." /usr/lib/python3.9/
  rm -rf "$tmp"
}

create_pants_venv() {
  local python="$1"
  say "creating the Pants venv at $PANTS_VENV"
  # The marker file is written last, so an interrupted bootstrap is redone from scratch.
  rm -rf "$PANTS_VENV"
  mkdir -p "$(dirname "$PANTS_VENV")"
  "$python" -m venv --without-pip "$PANTS_VENV"
  local wheel; wheel="$(ls /usr/share/python-wheels/pip-*.whl 2>/dev/null | head -n1 || true)"
  [ -n "$wheel" ] || die "no pip wheel in /usr/share/python-wheels to seed the venv: apt-get install python3-pip-whl"
  "$PANTS_VENV/bin/python" "$wheel/pip" install -q --no-index "$wheel" >&2
  say "installing pantsbuild.pants==2.17.1 and pantsbuild.pants.testutil==2.17.1 (pinned by ${PANTS_CONSTRAINTS#$STRATA_ROOT/})"
  PIP_CONSTRAINT= "$PANTS_VENV/bin/python" -m pip install -q -c "$PANTS_CONSTRAINTS" \
    pantsbuild.pants==2.17.1 pantsbuild.pants.testutil==2.17.1 "pex==$PEX_VERSION" >&2
  install_native_client
  cp "$PANTS_CONSTRAINTS" "$PANTS_VENV/.strata-constraints"
}

# Pants' native (Rust) client, shipped in the wheel without its executable bit: it hands a run
# to a running pantsd in a fraction of the Python client's start-up time, and execs the Python
# client (named by _PANTS_SERVER_EXE) when no pantsd runs or pantsd is off.
install_native_client() {
  local native; native="$(ls "$PANTS_VENV"/lib/python3*/site-packages/pants/bin/native_client)"
  install -m 0755 "$native" "$PANTS_VENV/bin/pants-native-client"
}

# A venv that an older bootstrap made under a restrictive umask: unusable by other users, and
# pex would copy its files' modes into build-support/pex.
venv_unreadable() {
  [ -d "$PANTS_VENV" ] && [ -n "$(find "$PANTS_VENV" ! -type l ! -perm -0444 -print -quit)" ]
}

pex_expected_sha256() {
  sed -n 's/^ *"v[0-9.]*|linux_x86_64|\([0-9a-f]\{64\}\)|.*/\1/p' "$STRATA_ROOT/pants.toml" | head -n1
}

build_pex_cli() {
  local expected; expected="$(pex_expected_sha256)"
  say "building the pex CLI (pex==$PEX_VERSION) into build-support/pex"
  local tmp; tmp="$(mktemp -d)"
  # The wheel comes through the machine's pip configuration (its index or mirror); pex then
  # builds offline in a clean environment, with a PEX_ROOT of its own: installed wheels cached
  # in ~/.pex keep the modes of the umask they were made under.
  PIP_CONSTRAINT= "$PANTS_VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: \
    -d "$tmp/wheels" "pex==$PEX_VERSION" >&2
  mkdir "$tmp/home"
  env -i PATH=/usr/bin:/bin LC_ALL=C HOME="$tmp/home" TMPDIR="$tmp" PEX_ROOT="$tmp/pex-root" \
    "$PANTS_VENV/bin/pex" --no-pypi --find-links "$tmp/wheels" "pex==$PEX_VERSION" -c pex \
    -o "$tmp/pex" >&2
  local actual; actual="$(sha256sum "$tmp/pex" | cut -d' ' -f1)"
  if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
    rm -rf "$tmp"
    die "built pex has sha256 $actual, but pants.toml [pex-cli] known_versions expects $expected"
  fi
  mv "$tmp/pex" "$PEX_BIN"
  rm -rf "$tmp"
}

main() {
  if [ ! -x "$PANTS_VENV/bin/pants" ] || ! cmp -s "$PANTS_CONSTRAINTS" "$PANTS_VENV/.strata-constraints" \
     || venv_unreadable; then
    local python
    if ! python="$(find_python39)"; then
      install_python39
      python="$(find_python39)" || die "python3.9 is still not usable after installing it"
    fi
    create_pants_venv "$python"
  fi
  [ -x "$PANTS_VENV/bin/pants-native-client" ] || install_native_client
  [ -f "$PEX_BIN" ] || build_pex_cli
}

main "$@"
