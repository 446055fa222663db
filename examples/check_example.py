#!/usr/bin/env python3
"""Runs an example and checks the outcome it exists to show, not just its exit code.

usage: check_example.py [--server <tinker-local-server>] <name> <executable> [<argument>...]

With --server, the example runs unmodified against that server started as a separate process on a
free port, found through TINKER_BASE_URL and TINKER_API_KEY, as it would against any
Tinker-compatible server; otherwise it starts the engine in its own process.
"""
import os
import re
import subprocess
import sys


def numbers(pattern, out):
    return [float(m) for m in re.findall(pattern, out, re.M)]


def check_quickstart(out):
    losses = numbers(r"^step +\d+ +loss ([0-9.eE+-]+)$", out)
    assert len(losses) == 4, f"expected 4 loss lines, got {losses}"
    assert losses[-1] < losses[0] / 2, f"the loss did not fall by half: {losses}"
    samples = re.findall(r"^hello\|.*$", out, re.M)
    assert len(samples) == 3, f"expected 3 samples, got {samples}"


def check_sft_and_sample(out):
    losses = numbers(r"^step +\d+ +loss per token ([0-9.eE+-]+)$", out)
    assert len(losses) >= 5, f"expected the loss at several steps, got {losses}"
    assert losses[-1] < losses[0] / 4, f"the loss per token did not fall to a quarter: {losses}"
    assert re.search(r"^saved training state: tinker://\S+/weights/sft-final$", out, re.M), "no saved state"
    completions = re.findall(r"^  the .*\|.*$", out, re.M)
    assert len(completions) == 3, f"expected 3 completions, got {completions}"


def check_rl_loop(out):
    rewards = numbers(r"^iteration +\d+ +mean reward ([0-9.eE+-]+)$", out)
    assert len(rewards) >= 3, f"expected the reward at several iterations, got {rewards}"
    assert rewards[-1] > rewards[0], f"the mean reward did not rise: {rewards}"
    assert rewards[-1] >= 0.5, f"the final mean reward is below 0.5: {rewards}"


def check_self_play(out):
    rows = re.findall(r"^iteration +\d+ +vs random: win ([0-9.]+) loss ([0-9.]+) +illegal moves ([0-9.]+) "
                      r"+samples (\d+) +peak in flight (\d+)", out, re.M)
    assert len(rows) >= 6, f"expected a line per iteration, got {len(rows)}"
    win = [float(r[0]) for r in rows]
    illegal = [float(r[2]) for r in rows]
    peak = max(int(r[4]) for r in rows)
    # Hundreds of games at once: many sample calls must really have been in flight together.
    assert peak >= 100, f"at most {peak} sample calls were in flight at once"
    # Learning, not noise: over the last two iterations the policy beats the random player far more
    # often than a random player would (about half) and far more often than in the first two, and
    # it does not move illegally more often than at the start.
    first, last = sum(win[:2]) / 2, sum(win[-2:]) / 2
    assert last >= 0.7, f"the win rate against a random player did not reach 0.7: {win}"
    assert last >= first + 0.3, f"the win rate against a random player did not rise by 0.3: {win}"
    assert sum(illegal[-2:]) <= sum(illegal[:2]), f"illegal moves rose: {illegal}"
    assert re.search(r"^summary: ", out, re.M), "no summary"


def start_server(server_exe):
    """Starts the server on a free port; returns the process and its base URL."""
    server = subprocess.Popen([server_exe, "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    match = re.match(r"listening on (http://\S+)", line)
    if not match:
        server.kill()
        sys.exit(f"the server did not report where it listens: {line!r}")
    return server, match.group(1)


def main():
    args = sys.argv[1:]
    server, env = None, dict(os.environ)
    if args[0] == "--server":
        server, url = start_server(args[1])
        env.update(TINKER_BASE_URL=url, TINKER_API_KEY="tml-example-check")
        args = args[2:]
    name, exe = args[0], args[1]
    try:
        run = subprocess.run([exe] + args[2:], capture_output=True, text=True, timeout=280, env=env)
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    if run.returncode != 0:
        sys.exit(f"{name} exited with {run.returncode}")
    if server and "in-process" in run.stdout:
        sys.exit(f"{name} started its own engine instead of using TINKER_BASE_URL")
    check = globals()[f"check_{name}"]
    try:
        check(run.stdout)
    except AssertionError as e:
        sys.exit(f"{name}: {e}")
    print(f"{name}: outcome checked" + (f" against a separate server at {url}" if server else ""))


if __name__ == "__main__":
    main()
