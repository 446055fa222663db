#!/usr/bin/env bash
# Runs the official tinker Python SDK (a source checkout of thinking-machines-lab/tinker; nothing
# of it is copied here) against tinker-local-server: official_sdk_loop.py trains, samples and
# walks the REST surface through the SDK's own public API.
#
#   run_official_sdk.sh <tinker-local-server> <sdk checkout (holds src/tinker)>
#
# The SDK's dependencies come from the Python on PATH or, where it lacks one, from Debian's
# python3-* packages (install-deps.sh --python-sdk installs them). Two are not packaged in
# Debian 12 and get stand-ins in a scratch directory: orjson (the standard json module behind the
# same two calls) and the package metadata the SDK reads its version from. pyqwest is not needed:
# the engine advises the stock httpx transport through client/config.
set -euo pipefail
server_bin=$1 sdk_dir=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

[[ -f $sdk_dir/src/tinker/__init__.py ]] || fail "$sdk_dir is not a checkout of the tinker SDK (no src/tinker)"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$sdk_dir/pyproject.toml" | head -1)
[[ -n $version ]] || fail "no version in $sdk_dir/pyproject.toml"

# Stand-ins and Debian modules the Python on PATH lacks.
mkdir -p "$work/path/tinker-$version.dist-info"
printf 'Metadata-Version: 2.1\nName: tinker\nVersion: %s\n' "$version" > "$work/path/tinker-$version.dist-info/METADATA"
if ! "$python" -c 'import orjson' 2>/dev/null; then
  cat > "$work/path/orjson.py" <<'PY'
import json
JSONDecodeError = json.JSONDecodeError
def loads(data): return json.loads(data)
def dumps(obj, default=None, option=None): return json.dumps(obj, default=default, separators=(",", ":")).encode()
PY
fi
debian=/usr/lib/python3/dist-packages
for module in httpx httpcore h11 h2 hpack hyperframe anyio sniffio distro numpy zstandard rich markdown_it mdurl \
              pygments rfc3986 certifi idna click google; do
  if ! "$python" -c "import $module" 2>/dev/null && [[ -e $debian/$module ]]; then ln -s "$debian/$module" "$work/path/"; fi
done
export PYTHONPATH="$sdk_dir/src:$work/path"
"$python" -c 'import tinker' || fail "the SDK does not import with $python (see above); install-deps.sh --python-sdk"

mkfifo "$work/ready"
"$server_bin" --port 0 --data-dir "$work/data" > "$work/ready" 2> "$work/server.log" &
server_pid=$!
exec 3< "$work/ready"
read -r -t 60 line <&3 || fail "the server did not report it was listening"
url=${line#listening on }

export TINKER_TELEMETRY=0 TINKER_BASE_URL=$url TINKER_API_KEY=tml-official-sdk
timeout 600 "$python" "$here/official_sdk_loop.py" "$url" ||
  { cat "$work/server.log" >&2; fail "the official SDK loop failed against $url"; }

# The SDK's own CLI on what the loop left behind: list, inspect, download and extract.
cli() { timeout 120 "$python" -m tinker.cli "$@"; }
cli -f json run list > "$work/runs.json" || fail "tinker run list"
grep -q '"training_run_id"' "$work/runs.json" || fail "tinker run list shows no runs: $(cat "$work/runs.json")"
cli -f json checkpoint list > "$work/checkpoints.json" || fail "tinker checkpoint list"
path=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["checkpoints"][0]["tinker_path"])' \
  "$work/checkpoints.json") || fail "no checkpoint in: $(cat "$work/checkpoints.json")"
cli checkpoint info "$path" > /dev/null || fail "tinker checkpoint info $path"
mkdir "$work/download"
(cd "$work/download" && cli checkpoint download "$path" > /dev/null) || fail "tinker checkpoint download $path"
find "$work/download" -name adapter_config.json | grep -q . || fail "the download holds no adapter_config.json"
find "$work/download" -name adapter_model.safetensors | grep -q . || fail "the download holds no adapter_model.safetensors"
echo "OFFICIAL SDK CLI OK (run list, checkpoint list/info/download)"
