#!/usr/bin/env bash
# Installs what Strowger needs to build and test, from Debian 12's packages, if missing.
# Safe to run again: it does nothing when everything is already there.
# Usage: scripts/install-deps.sh [fuzz]   (fuzz: also clang and libFuzzer, for scripts/fuzz.sh)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates python3
  libboost1.81-dev libboost-json1.81-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev libre2-dev
  libssl-dev openssl libsqlite3-dev sqlite3 libpq-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libre2-dev bubblewrap clang-format procps
  python3-jsonschema wrk lld
  libhowardhinnant-date-dev libtomlplusplus-dev tzdata
  zsh fish  # newcomer_test loads the shell completions in real shells
)
# Node.js and npm run the MCP servers of the tests (npm ci from tests/mcp_servers). Debian's,
# unless a node is already installed (e.g. from NodeSource, which bundles npm).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
# The fuzz preset (docs/testing.md): clang 14, its libFuzzer and sanitizer runtimes, and
# llvm-symbolizer for readable crash reports.
if [ "${1:-}" = "fuzz" ]; then
  packages+=(clang libclang-rt-14-dev llvm-14)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); else
    echo "install-deps: need root (or sudo) to apt-get install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
