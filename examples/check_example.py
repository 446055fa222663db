#!/usr/bin/env python3
"""Runs an example and checks the outcome it exists to show, not just its exit code.

usage: check_example.py <name> <executable> [<argument>...]
"""
import math
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


def check_dpo(out):
    rows = re.findall(r"^step +\d+ +dpo loss ([0-9.]+) +margin ([+-][0-9.]+) +accuracy ([0-9.]+)\b", out, re.M)
    assert len(rows) >= 10, f"expected a line per step, got {len(rows)}"
    loss = [float(r[0]) for r in rows]
    margin = [float(r[1]) for r in rows]
    accuracy = [float(r[2]) for r in rows]
    # The first step's policy is the reference itself: its margin is 0 and its loss log 2.
    assert abs(margin[0]) < 0.01, f"the first margin is not ~0 (policy == reference): {margin}"
    assert abs(loss[0] - math.log(2)) < 0.01, f"the first loss is not log 2: {loss}"
    # The preference is learned: the margin grows well past 0, the loss falls well below log 2, and
    # nearly every pair of the last steps ranks the chosen completion first.
    assert min(margin[-2:]) >= 1.0, f"the chosen-minus-rejected margin did not grow past 1: {margin}"
    assert max(loss[-2:]) <= math.log(2) - 0.3, f"the DPO loss did not fall below log 2 - 0.3: {loss}"
    assert min(accuracy[-2:]) >= 0.9, f"the preference accuracy did not reach 0.9: {accuracy}"
    # And the policy itself prefers the chosen answers: its most likely answer is the chosen one for
    # most prompts (a chance-level policy gets about 1 of 10 right).
    right = re.search(r"^summary: .*most likely answer is the chosen one for (\d+)/10 prompts$", out, re.M)
    assert right, "no summary with the most likely answers"
    assert int(right.group(1)) >= 8, f"the most likely answer is the chosen one for only {right.group(1)}/10 prompts"


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
