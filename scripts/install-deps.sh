#!/usr/bin/env bash
# Installs the Debian 12 packages tinker-cpp needs to build and test; a no-op when all are present.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libboost1.81-dev libboost-json1.81-dev   # Asio, Beast, JSON (JSON is a compiled library)
  libssl-dev zlib1g-dev                    # TLS, gzip
  doctest-dev                              # tests
  protobuf-compiler python3 python3-protobuf  # cross-checking our protobuf codec against the real library
  openssl curl                             # certificates generated at test time; a second HTTP client
  nginx-light                              # TLS-terminating proxy in front of the local engine (tests)
  clang-format                             # the format check (tests/format)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
