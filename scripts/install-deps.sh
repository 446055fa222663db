#!/usr/bin/env bash
# Installs the Debian 12 packages tinker-cpp needs to build and test; a no-op when all are present.
#   install-deps.sh [--python-sdk]   --python-sdk: also what the official Python SDK needs for the
#                                    opt-in conformance test (tests/sdk, TINKER_OFFICIAL_SDK_DIR)
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libboost1.81-dev libboost-json1.81-dev   # Asio, Beast, JSON (JSON is a compiled library)
  libssl-dev zlib1g-dev                    # TLS, gzip
  doctest-dev                              # tests
  protobuf-compiler python3 python3-protobuf  # cross-checking our protobuf codec against the real library
  openssl curl                             # certificates generated at test time; a second HTTP client
  nginx-light                              # TLS-terminating proxy in front of the local engine (tests)
  bsdutils                                 # script(1): a pseudo-terminal for the CLI progress bar test
  gnuplot-nox                              # the demo's plot (scripts/plot_metrics.py)
  clang-format                             # the format check (tests/format)
  clang libclang-rt-14-dev                 # libFuzzer for the fuzz targets (scripts/fuzz.sh)
)
if [[ ${1:-} == --python-sdk ]]; then
  # The SDK's own dependencies as Debian packages. It also needs typing_extensions >= 4.10 and
  # pydantic, which a Python of its own (pyenv, venv) provides where Debian's are too old.
  packages+=(python3-httpx python3-h2 python3-anyio python3-sniffio python3-distro python3-numpy python3-zstandard
             python3-rich python3-click python3-pydantic python3-typing-extensions)
fi

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
