#!/usr/bin/env bash
# The executables end to end: tinker-local-server started as a process on a free port, the
# sft_and_sample example training against it as a remote server (through a model alias), and the
# tinker CLI listing, inspecting, downloading, publishing and deleting what the example made.
#
#   tools_test.sh <tinker-local-server> <tinker CLI> <sft_and_sample>
set -euo pipefail
server_bin=$1 cli_bin=$2 example_bin=$3
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$server_bin" --help | grep -q -- '--data-dir' || fail "server --help does not describe --data-dir"
"$server_bin" --no-such-flag 2>/dev/null && fail "server accepted an unknown flag"
"$cli_bin" --help | grep -q 'checkpoint download' || fail "CLI --help does not list checkpoint download"

key=tml-tools-test-key
# The server prints "listening on <url>" once it serves: read that line from a pipe (no sleeping).
mkfifo "$work/ready"
"$server_bin" --port 0 --data-dir "$work/data" --api-key "$key" --alias Qwen/Qwen3-8B=tinker-local/byte-lm-tiny \
  > "$work/ready" 2> "$work/server.log" &
server_pid=$!
exec 3< "$work/ready"
read -r -t 60 line <&3 || fail "the server did not report it was listening"
url=${line#listening on }
[[ $url == http://127.0.0.1:* ]] || fail "unexpected first line: $line"
echo "server at $url"

curl -sf "$url/api/v1/healthz" > /dev/null || fail "healthz"
status=$(curl -s -o /dev/null -w "%{http_code}" "$url/api/v1/get_server_capabilities")
[[ $status == 401 ]] || fail "no API key: expected 401, got $status"
curl -sf -H "X-API-Key: $key" "$url/api/v1/get_server_capabilities" | grep -q 'byte-lm' || fail "capabilities"

export TINKER_BASE_URL=$url TINKER_API_KEY=$key
"$example_bin" --remote > "$work/example.out" || { cat "$work/example.out"; fail "the example against the server"; }
cat "$work/example.out"
ckpt=$(sed -n 's/^saved training state: //p' "$work/example.out")
[[ $ckpt == tinker://*/weights/sft-final ]] || fail "no checkpoint path in the example's output"

"$cli_bin" run list | tee "$work/runs" | grep -q '(1 of 1)' || fail "run list"
"$cli_bin" checkpoint list | grep -q "$ckpt" || fail "checkpoint list"
"$cli_bin" checkpoint info "$ckpt" | grep -Eq '"base_model": ?"Qwen/Qwen3-8B"' || fail "checkpoint info"
"$cli_bin" checkpoint download "$ckpt" "$work/adapter" 2> "$work/progress" > "$work/files" || fail "download"
[[ -s $work/adapter/adapter_model.safetensors && -s $work/adapter/adapter_config.json ]] || fail "downloaded files"
grep -q '100.0%' "$work/progress" || fail "no finished progress bar"
"$cli_bin" checkpoint publish "$ckpt" > /dev/null || fail "publish"
"$cli_bin" --json checkpoint list | grep -Eq '"public": ?true' || fail "published flag"
"$cli_bin" checkpoint set-ttl "$ckpt" 3600 > /dev/null || fail "set-ttl"
"$cli_bin" checkpoint delete "$ckpt" > /dev/null || fail "delete"
if "$cli_bin" checkpoint info "$ckpt" 2> "$work/err"; then fail "info after delete succeeded"; fi
grep -qi 'not found\|404' "$work/err" || fail "no clear error after delete: $(cat "$work/err")"
if "$cli_bin" checkpoint info "not-a-path" 2> "$work/err"; then fail "a malformed path was accepted"; fi
grep -q 'tinker://' "$work/err" || fail "the malformed path error does not say what is expected"
if grep -rq "$key" "$work/err" "$work/server.log" "$work/progress"; then fail "the API key was printed"; fi
echo "tools: all checks passed"
