#!/usr/bin/env python3
"""Runs an example and checks the outcome it exists to show, not just its exit code.

usage: check_example.py <name> <executable> [<argument>...]
"""
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
    # Learning, not noise: the last two iterations against the random player beat the first two by
    # a wide margin, and the policy makes far fewer illegal moves.
    first, last = sum(win[:2]) / 2, sum(win[-2:]) / 2
    assert last >= first + 0.2, f"the win rate against a random player did not rise by 0.2: {win}"
    assert sum(illegal[-2:]) / 2 <= sum(illegal[:2]) / 2 - 0.2, f"illegal moves did not fall by 0.2: {illegal}"
    assert re.search(r"^summary: ", out, re.M), "no summary"


def check_rl_async(out):
    header = re.search(r"groups more than (\d+) versions old dropped$", out, re.M)
    assert header, "no first line naming max_steps_off_policy"
    max_off = int(header.group(1))
    rows = re.findall(r"^step +\d+ +reward ([0-9.]+) +staleness mean ([0-9.]+) max (\d+) +dropped (\d+) "
                      r"+samples/s (\d+) +queue (\d+)/(\d+) +sampling (\d+) +waiting (\d+)$", out, re.M)
    assert len(rows) >= 10, f"expected a line per step, got {len(rows)}"
    reward = [float(r[0]) for r in rows]
    stale_mean = [float(r[1]) for r in rows]
    stale_max = [int(r[2]) for r in rows]
    # Off-policy for real: the workers kept sampling while the trainer trained, so groups sampled
    # with older weights were trained on, in most steps; but never one older than the limit.
    assert sum(m > 0 for m in stale_mean) >= len(rows) // 2, f"too few steps trained on stale groups: {stale_mean}"
    assert max(stale_max) <= max_off, f"a group more than {max_off} versions old was used: {stale_max}"
    # The bounded queue never held more than its capacity.
    assert all(int(r[5]) <= int(r[6]) for r in rows), "the queue outgrew its capacity"
    # Learning despite the staleness: the last steps' reward well above the first steps'.
    first, last = sum(reward[:3]) / 3, sum(reward[-3:]) / 3
    assert last >= first + 0.25, f"the reward did not rise by 0.25: {reward}"
    summary = re.search(r"^summary: .*staleness mean ([0-9.]+) max (\d+);.*workers stopped (\d+)/(\d+)$", out, re.M)
    assert summary, "no summary"
    assert int(summary.group(2)) <= max_off, f"summary: staleness max {summary.group(2)} > {max_off}"
    # A clean shutdown: every worker returned (and the program exited, or this would not run).
    assert summary.group(3) == summary.group(4), f"workers stopped {summary.group(3)}/{summary.group(4)}"


def main():
    name, exe = sys.argv[1], sys.argv[2]
    run = subprocess.run([exe] + sys.argv[3:], capture_output=True, text=True, timeout=280)
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    if run.returncode != 0:
        sys.exit(f"{name} exited with {run.returncode}")
    check = globals()[f"check_{name}"]
    try:
        check(run.stdout)
    except AssertionError as e:
        sys.exit(f"{name}: {e}")
    print(f"{name}: outcome checked")


if __name__ == "__main__":
    main()
