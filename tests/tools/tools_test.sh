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

# --help describes every --fault-* flag the server parses (read from its source, so a new flag
# without help fails here).
source_file=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tools/tinker_local_server.cpp
help_text=$("$server_bin" --help)
fault_flags=$(grep -o 'flag == "--fault-[a-z0-9-]*"' "$source_file" | sed 's/^flag == "//; s/"$//' | sort -u)
[[ $(wc -w <<< "$fault_flags") -ge 10 ]] || fail "found only these fault flags in $source_file: $fault_flags"
for flag in $fault_flags; do
  grep -q -- "$flag " <<< "$help_text" || fail "server --help does not describe $flag"
done
for flag in --fault-402 --fault-sample-step-time --fault-fail-route --create-via-load; do
  grep -q -- "$flag" <<< "$fault_flags $help_text" || fail "server does not know $flag"
  grep -q -- "$flag " <<< "$help_text" || fail "server --help does not describe $flag"
done
# Values that cannot work are refused before anything starts.
for hold in 0 40001 -5; do
  if "$server_bin" --long-poll-hold-ms "$hold" 2> "$work/err"; then fail "--long-poll-hold-ms $hold was accepted"; fi
  grep -q -- '--long-poll-hold-ms' "$work/err" || fail "no clear error for --long-poll-hold-ms $hold: $(cat "$work/err")"
done
for bad in "--fault-402 2" "--fault-fail-route optim_step=bogus" "--fault-fail-route no_such_route=user" \
           "--fault-fail-route optim_step" "--fault-sample-step-time soon"; do
  # shellcheck disable=SC2086  # the flag and its value are two words
  if "$server_bin" $bad 2> "$work/err"; then fail "$bad was accepted"; fi
  grep -q -- "${bad%% *}" "$work/err" || fail "no clear error for $bad: $(cat "$work/err")"
done

# Numeric flags out of range (negative, beyond 16 or 64 bits, NaN fractions, counts, durations):
# exit code 2, and the message names the flag and the value.
for bad in "--port -1" "--port 70000" "--fault-step-time -5" "--fault-latency forward=-10" "--fault-429 nan" \
           "--fault-500 1.5" "--session-timeout-s 99999999999999999999" "--compute-threads -2" \
           "--fault-try-again -1" "--max-request-dense-elements 0"; do
  code=0
  # shellcheck disable=SC2086  # the flag and its value are two words
  "$server_bin" $bad 2> "$work/err" || code=$?
  [[ $code == 2 ]] || fail "$bad: expected exit code 2, got $code"
  value=${bad#* }
  value=${value#*=}
  grep -qF -- "${bad%% *}" "$work/err" || fail "$bad: the error does not name the flag: $(cat "$work/err")"
  grep -qF -- "'$value'" "$work/err" || fail "$bad: the error does not quote the value: $(cat "$work/err")"
done

key=tml-tools-test-key
other_key=tml-tools-other-tenant
# The server prints "listening on <url>" once it serves: read that line from a pipe (no sleeping).
mkfifo "$work/ready"
"$server_bin" --port 0 --data-dir "$work/data" --api-key "$key" --api-key "$other_key" --alias Qwen/Qwen3-8B=tinker-local/byte-lm-tiny \
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
# The other key is another tenant: it sees none of these runs or checkpoints.
run_id=${ckpt#tinker://}
run_id=${run_id%%/*}
grep -qF -- "$run_id" "$work/runs" || fail "run list does not show $run_id"
TINKER_API_KEY=$other_key "$cli_bin" run list > "$work/other-runs" || fail "run list as the other tenant"
grep -q '(0 of 0)' "$work/other-runs" || fail "the other tenant sees runs: $(cat "$work/other-runs")"
if grep -qF -- "$run_id" "$work/other-runs"; then fail "the other tenant sees $run_id"; fi
if TINKER_API_KEY=$other_key "$cli_bin" checkpoint list "$run_id" > "$work/other-ckpts" 2>&1 &&
   grep -qF -- "$ckpt" "$work/other-ckpts"; then fail "the other tenant lists $ckpt"; fi
"$cli_bin" checkpoint list | grep -q "$ckpt" || fail "checkpoint list"
"$cli_bin" checkpoint info "$ckpt" | grep -Eq '"base_model": ?"Qwen/Qwen3-8B"' || fail "checkpoint info"
# Into a file: only the extracted files, one per line, and no progress bar anywhere.
"$cli_bin" checkpoint download "$ckpt" "$work/adapter" 2> "$work/progress" > "$work/files" || fail "download"
[[ -s $work/adapter/adapter_model.safetensors && -s $work/adapter/adapter_config.json ]] || fail "downloaded files"
grep -qx "$work/adapter/adapter_model.safetensors" "$work/files" || fail "download did not list its files: $(cat "$work/files")"
if grep -q '%' "$work/files" "$work/progress"; then fail "a progress bar was drawn into a file"; fi
# On a terminal (a pseudo-terminal from script(1)): the bar with bytes, rate and ETA, finished.
script -qec "'$cli_bin' checkpoint download '$ckpt' '$work/adapter-tty'" /dev/null > "$work/tty" || fail "download on a tty"
grep -q '100.0%' "$work/tty" || fail "no finished progress bar on a terminal: $(cat -v "$work/tty")"
grep -q 'ETA 0:00' "$work/tty" || fail "the progress bar shows no ETA: $(cat -v "$work/tty")"
grep -q '/s ' "$work/tty" || fail "the progress bar shows no rate: $(cat -v "$work/tty")"
# Every command says what it did, in words (not derived from the command's name).
expect_output() {  # expect_output "<expected line>" <cli args...>
  local want=$1; shift
  local got
  got=$("$cli_bin" "$@") || fail "tinker $*"
  [[ $got == "$want" ]] || fail "tinker $*: expected '$want', got '$got'"
}
expect_output "published $ckpt" checkpoint publish "$ckpt"
"$cli_bin" --json checkpoint list | grep -Eq '"public": ?true' || fail "published flag"
expect_output "unpublished $ckpt" checkpoint unpublish "$ckpt"
"$cli_bin" --json checkpoint list | grep -Eq '"public": ?false' || fail "unpublished flag"
if "$cli_bin" --json checkpoint list | grep -Eq '"public": ?true'; then fail "still public after unpublish"; fi
expect_output "set the ttl of $ckpt to 3600 s" checkpoint set-ttl "$ckpt" 3600
"$cli_bin" --json checkpoint list | grep -q '"expires_at": *"' || fail "set-ttl did not set expires_at"
expect_output "removed the ttl of $ckpt" checkpoint set-ttl "$ckpt" none
"$cli_bin" version | grep -Eq '^tinker-cpp [0-9]+\.[0-9]+\.[0-9]+ ' || fail "version"
# run info: the run, then its checkpoints; --json: the run's object with a "checkpoints" array.
"$cli_bin" run info "$run_id" > "$work/run-info" || fail "run info"
grep -qx "run          $run_id" "$work/run-info" || fail "run info does not name the run: $(cat "$work/run-info")"
grep -qF -- "$ckpt " "$work/run-info" || fail "run info does not list $ckpt: $(cat "$work/run-info")"
"$cli_bin" --json run info "$run_id" > "$work/run-info.json" || fail "run info --json"
python3 - "$work/run-info.json" "$run_id" "$ckpt" <<'PY' || fail "run info --json: $(cat "$work/run-info.json")"
import json, sys
info = json.load(open(sys.argv[1]))
assert info["training_run_id"] == sys.argv[2]
assert sys.argv[3] in [c["tinker_path"] for c in info["checkpoints"]]
PY
"$cli_bin" session list > "$work/sessions" || fail "session list"
session_id=${run_id%%:*}
grep -qxF -- "$session_id" "$work/sessions" || fail "session list does not show $session_id: $(cat "$work/sessions")"
"$cli_bin" session info "$session_id" | grep -qF -- "$run_id" || fail "session info does not name $run_id"

# A checkpoint name that must be percent-encoded in a URL (a space, '|', '{', '"', non-ASCII
# letters), saved through the raw API, then managed through the CLI by its tinker:// path.
odd_name='run 1 | {draft} "ünï"'
api_main() { curl -s -H "X-API-Key: $key" -H 'Content-Type: application/json' "$@"; }
save=$(api_main -X POST -d '{"model_id":"'"$run_id"'","path":"run 1 | {draft} \"ünï\"","type":"save_weights"}' \
       "$url/api/v1/save_weights")
request=$(sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p' <<< "$save")
[[ -n $request ]] || fail "save_weights with an odd name: $save"
for i in $(seq 1 30); do  # long polls: each waits for the result up to the engine's hold
  answer=$(api_main -X POST -d '{"request_id":"'"$request"'"}' "$url/api/v1/retrieve_future")
  grep -q '"try_again"' <<< "$answer" || break
done
grep -q '"path"' <<< "$answer" || fail "save_weights with an odd name did not complete: $answer"
odd="tinker://$run_id/weights/$odd_name"
"$cli_bin" checkpoint list "$run_id" | grep -qF -- "$odd" || fail "checkpoint list does not show '$odd'"
"$cli_bin" checkpoint info "$odd" | grep -q '"base_model"' || fail "checkpoint info of '$odd'"
expect_output "published $odd" checkpoint publish "$odd"
expect_output "unpublished $odd" checkpoint unpublish "$odd"
expect_output "set the ttl of $odd to 60 s" checkpoint set-ttl "$odd" 60
"$cli_bin" checkpoint download "$odd" "$work/odd-adapter" 2> /dev/null > /dev/null || fail "download of '$odd'"
[[ -s $work/odd-adapter/adapter_model.safetensors ]] || fail "downloaded files of '$odd'"
expect_output "deleted $odd" checkpoint delete "$odd"
if "$cli_bin" checkpoint list "$run_id" | grep -qF -- "$odd"; then fail "'$odd' still listed after delete"; fi

expect_output "deleted $ckpt" checkpoint delete "$ckpt"
if "$cli_bin" checkpoint info "$ckpt" 2> "$work/err"; then fail "info after delete succeeded"; fi
grep -qi 'not found\|404' "$work/err" || fail "no clear error after delete: $(cat "$work/err")"
if "$cli_bin" checkpoint info "not-a-path" 2> "$work/err"; then fail "a malformed path was accepted"; fi
grep -q 'tinker://' "$work/err" || fail "the malformed path error does not say what is expected"
if grep -rq "$key" "$work/err" "$work/server.log" "$work/progress"; then fail "the API key was printed"; fi

# Fault injection end to end: a second server whose first two polls of every future answer
# try_again and whose telemetry route always answers 500.
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
mkfifo "$work/ready2"
"$server_bin" --port 0 --api-key "$key" --fault-try-again 2 --fault-500 1 --fault-routes telemetry \
  --fault-fail-route optim_step=user --fault-sample-step-time 0 --fault-402 0 --create-via-load \
  --long-poll-hold-ms 20000 > "$work/ready2" 2> "$work/server2.log" &
server_pid=$!
exec 4< "$work/ready2"
read -r -t 60 line <&4 || fail "the fault-injecting server did not report it was listening"
url=${line#listening on }
api() { curl -s -H "X-API-Key: $key" -H 'Content-Type: application/json' "$@"; }
status=$(api -o /dev/null -w "%{http_code}" -X POST -d '{"events":[]}' "$url/api/v1/telemetry")
[[ $status == 500 ]] || fail "--fault-500 on telemetry: expected 500, got $status"
status=$(api -o /dev/null -w "%{http_code}" "$url/api/v1/get_server_capabilities")
[[ $status == 200 ]] || fail "--fault-routes telemetry also hit get_server_capabilities: $status"
session=$(api -X POST -d '{"tags":[],"user_metadata":{},"sdk_version":"0.25.0"}' "$url/api/v1/create_session" |
          sed -n 's/.*"session_id":"\([^"]*\)".*/\1/p')
[[ -n $session ]] || fail "create_session on the fault-injecting server"
request=$(api -X POST -d '{"session_id":"'"$session"'","model_seq_id":0,"base_model":"tinker-local/byte-lm-tiny","lora_config":{"rank":4}}' \
          "$url/api/v1/create_model" | sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p')
[[ -n $request ]] || fail "create_model on the fault-injecting server"
poll() { api -X POST -d '{"request_id":"'"$request"'","allow_metadata_only":true}' "$url/api/v1/retrieve_future"; }
for i in 1 2; do
  poll | grep -q '"type":"try_again"' || fail "--fault-try-again 2: poll $i did not answer try_again"
done
poll | grep -q '"model_id":"'"$session"':train:0"' || fail "--fault-try-again 2: the third poll did not carry the result"
api -X POST -d '{"sdk_version":"0.25.0"}' "$url/api/v1/client/config" | grep -q '"create_model_via_load_weights":true' ||
  fail "--create-via-load is not advertised in client/config"
# --fault-fail-route optim_step=user: the optim_step future fails with category user (after the
# two try_again polls every future gets here).
request=$(api -X POST -d '{"adam_params":{"learning_rate":0.001,"beta1":0.9,"beta2":0.95,"eps":1e-12},"model_id":"'"$session"':train:0","seq_id":1,"type":"optim_step"}' \
          "$url/api/v1/optim_step" | sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p')
[[ -n $request ]] || fail "optim_step on the fault-injecting server"
for i in 1 2; do poll > /dev/null; done
answer=$(poll)
grep -q '"category":"user"' <<< "$answer" || fail "--fault-fail-route optim_step=user: got $answer"
grep -q 'injected failure' <<< "$answer" || fail "--fault-fail-route: the failure does not say it was injected: $answer"
echo "tools: all checks passed"
