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


def check_reward_server(out):
    m = re.search(r"^summary: (\d+) requests from (\d+) connections in ([0-9.]+) s, ([0-9.]+) requests/s; "
                  r"latency p50 ([0-9.]+) ms p90 ([0-9.]+) ms p99 ([0-9.]+) ms; server: (\d+) requests in flight "
                  r"at peak$", out, re.M)
    assert m, "no summary"
    requests, connections = int(m[1]), int(m[2])
    rps, p50, p90, p99, peak = float(m[4]), float(m[5]), float(m[6]), float(m[7]), int(m[8])
    assert rps > 0, f"requests/s is {rps}"
    assert 0 < p50 <= p90 <= p99, f"latency percentiles out of order: p50 {p50} p90 {p90} p99 {p99}"
    # The requests were really concurrent at the server, not one connection's at a time.
    assert peak >= max(2, connections // 2), f"at most {peak} requests were in flight at the server at once"
    batches = re.findall(r"^batch +\d+ +requests +\d+/\d+ +p50 ", out, re.M)
    assert len(batches) >= 10, f"expected a line per tenth of the requests, got {len(batches)}"

    a = re.search(r"^answers: (\d+) scored with a finite score, (\d+) malformed requests answered 400, "
                  r"(\d+) unexpected$", out, re.M)
    assert a, "no answers line"
    scored, rejected, unexpected = int(a[1]), int(a[2]), int(a[3])
    assert unexpected == 0, f"{unexpected} requests got an unexpected answer"
    assert rejected == requests // 20, f"expected {requests // 20} malformed requests answered 400, got {rejected}"
    assert scored + rejected == requests, f"{scored} scored + {rejected} rejected is not {requests}"

    # The judge's logprobs carry the score: completions in the style it was trained on beat random
    # letters after the same prompt by a wide margin, on the judge's part alone and on the score.
    s = re.search(r"^scores: likely completions ([0-9.eE+-]+) \(judge mean logprob ([0-9.eE+-]+)\), random letters "
                  r"([0-9.eE+-]+) \(judge mean logprob ([0-9.eE+-]+)\)$", out, re.M)
    assert s, "no scores line"
    likely_score, likely_lp, random_score, random_lp = (float(x) for x in s.groups())
    assert likely_lp > random_lp + 1.0, f"the judge does not prefer the likely completions: {likely_lp} vs {random_lp}"
    assert likely_score > random_score + 1.0, f"likely completions do not score higher: {likely_score} vs {random_score}"

    d = re.search(r"^determinism: (\d+)/(\d+) repeated requests scored the same$", out, re.M)
    assert d and int(d[2]) >= requests // 20, f"too few repeated requests: {d and d[0]}"
    assert d[1] == d[2], f"repeated requests scored differently: {d[0]}"

    # The CPU part ran on the pool, never on the loop; the loop's lag is reported, not asserted.
    lp = re.search(r"^loop: (\d+) ticks of a 1 ms timer, lag mean ([0-9.]+) ms max ([0-9.]+) ms; cpu part: (\d+) on "
                   r"pool threads, (\d+) on the loop thread$", out, re.M)
    assert lp, "no loop line"
    assert int(lp[1]) > 0, "the loop's timer never fired"
    assert int(lp[4]) == scored and int(lp[5]) == 0, f"the CPU part ran off the pool: {lp[0]}"


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
