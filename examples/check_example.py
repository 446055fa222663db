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


def check_sft(out):
    train = numbers(r"^epoch +\d+ +step +\d+ +train loss per assistant token ([0-9.eE+-]+)$", out)
    evals = re.findall(r"^epoch +(\d+) +eval loss per assistant token ([0-9.eE+-]+)(?: +checkpoint (\S+))?", out, re.M)
    assert len(train) >= 6, f"expected a train loss at every step, got {train}"
    # Learning the assistant's answers, not noise: the last steps' loss far below the first steps'.
    first, last = sum(train[:2]) / 2, sum(train[-2:]) / 2
    assert last < first / 3, f"the train loss did not fall to a third: {train}"
    # The held-out loss (epoch 0 is before training) falls with the epochs, by a clear margin overall.
    assert len(evals) >= 3, f"expected a held-out loss before training and after each epoch, got {evals}"
    held = [float(e[1]) for e in evals]
    assert held[-1] < held[0] / 3, f"the held-out loss did not fall to a third: {held}"
    assert held[-1] < 0.6 * held[1], f"the held-out loss did not keep falling after the first epoch: {held}"
    # A checkpoint per epoch, each with its own path.
    checkpoints = [e[2] for e in evals[1:]]
    assert all(c.startswith("tinker://") for c in checkpoints), f"an epoch without a checkpoint: {evals}"
    assert len(set(checkpoints)) == len(checkpoints), f"epochs share a checkpoint: {checkpoints}"
    samples = re.findall(r"^sample +user: .* assistant: .*$", out, re.M)
    assert len(samples) >= 2, f"expected samples from the final weights, got {samples}"
    assert re.search(r"^summary: ", out, re.M), "no summary"


def check_prompt_distillation(out):
    rows = re.findall(r"^step +\d+ +student logprob per token of the teacher's replies +([0-9.eE+-]+) +agreement "
                      r"([0-9.]+)$", out, re.M)
    assert len(rows) >= 6, f"expected a line per step, got {len(rows)}"
    logprob = [float(r[0]) for r in rows]
    agreement = [float(r[1]) for r in rows]
    # The teacher's behaviour must come from the system prompt: it cries with it and not without it,
    # and the student, a copy of the teacher, does not agree with it before distillation.
    setup = re.search(r"^setup: the teacher's replies with the system prompt: (\d+)% cries; without it: (\d+)% cries",
                      out, re.M)
    assert setup, "no line on the teacher's replies with and without the system prompt"
    assert int(setup[1]) >= 80 and int(setup[2]) <= 20, f"the system prompt does not set the teacher's style: {setup[0]}"
    assert agreement[0] <= 0.2, f"the student agreed with the teacher before distillation: {agreement}"
    # The student moves towards the teacher: the teacher's replies become likely under the student
    # and most of the student's own replies are ones the teacher gave.
    assert logprob[-1] >= logprob[0] + 1.0, f"the logprob of the teacher's replies did not rise by 1 nat: {logprob}"
    assert sum(agreement[-2:]) / 2 >= agreement[0] + 0.5, f"the agreement did not rise by 0.5: {agreement}"
    assert re.search(r"^summary: ", out, re.M), "no summary"


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
