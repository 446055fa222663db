#!/usr/bin/env python3
"""Runs an example and checks the outcome it exists to show, not just its exit code.

usage: check_example.py [--server <tinker-local-server>] <name> <executable> [<argument>...]

With --server, the example runs unmodified against that server started as a separate process on a
free port, found through TINKER_BASE_URL and TINKER_API_KEY, as it would against any
Tinker-compatible server; otherwise it starts the engine in its own process.
"""
import math
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


def check_checkpoint_lifecycle(out):
    def line(number):
        m = re.search(rf"^{number}\. .*$", out, re.M)
        assert m, f"no step {number}"
        return m.group(0)

    def before_after(number):
        m = re.search(r"loss per token ([0-9.]+) before, ([0-9.]+) after", line(number))
        assert m, f"step {number} shows no losses: {line(number)}"
        return float(m.group(1)), float(m.group(2))

    def close(a, b):
        return abs(a - b) <= 1e-6 * max(1.0, abs(a))

    assert re.search(r"^1\. trained \d+ step\(s\): loss per token [0-9.]+ at step \d+$", out, re.M), "no training step"
    state = re.search(r"^2\. saved state (tinker://\S+/weights/(\S+)) \(ttl none\)$", out, re.M)
    sampler = re.search(r"^3\. saved sampler weights (tinker://\S+/sampler_weights/(\S+)) \(ttl \d+ s\)$", out, re.M)
    assert state and sampler, "the two checkpoints were not saved"
    # Resuming with the optimizer is the same next step as continuing; without it, the same weights
    # (the loss before the step) but a fresh Adam (a different loss after it).
    continued, resumed, restarted = before_after(4), before_after(5), before_after(6)
    assert close(resumed[0], continued[0]) and close(resumed[1], continued[1]), \
        f"resuming with the optimizer changed the next step: {resumed} vs {continued}"
    assert close(restarted[0], continued[0]), f"resuming changed the weights: {restarted} vs {continued}"
    assert abs(restarted[1] - continued[1]) > 1e-4, \
        f"resuming without the optimizer gave the same step as with it: {restarted} vs {continued}"
    # The sampler checkpoint holds the trained weights: the text is likelier than under the base model.
    m = re.search(r"^7\. sampled from tinker://\S+: mean logprob of the text (-?[0-9.]+) \(base model (-?[0-9.]+)\)$",
                  out, re.M)
    assert m, "no sampling from the sampler checkpoint"
    assert float(m.group(1)) > float(m.group(2)) + 0.1, f"the sampler checkpoint is no better than the base model: {m.group(0)}"
    samples = re.findall(r"^   sample \d+: \"ch.*\"$", out, re.M)
    assert len(samples) == 3, f"expected 3 samples, got {samples}"
    # The run's list holds both checkpoints; the user's holds them too.
    listing = re.search(r"^8\. run \S+ lists (\d+) checkpoint\(s\):\n((?:   .*\n)*)", out, re.M)
    assert listing, "no checkpoint list of the run"
    assert re.search(rf"^   weights/{re.escape(state.group(2))} +training +expires never +public no$", listing.group(2), re.M), \
        f"the run's list lacks the state: {listing.group(2)}"
    assert re.search(rf"^   sampler_weights/{re.escape(sampler.group(2))} +sampler +expires \d{{4}}-\S+ +public no$",
                     listing.group(2), re.M), f"the run's list lacks the expiring sampler weights: {listing.group(2)}"
    assert re.search(r"^9\. the user's checkpoints: \d+ in all, \d+ on the first page, 2 of them this run's$", out, re.M), \
        "the user's checkpoints lack this run's two"
    # A time to live set, then cleared; public, then private again: as listed by the server.
    assert re.search(r"^10\. set the ttl of weights/\S+ to \d+ s: expires \d{4}-\d\d-\d\dT[0-9:]+Z$", out, re.M), line(10)
    assert re.search(r"^11\. cleared the ttl of weights/\S+: expires never$", out, re.M), line(11)
    assert re.search(r"^12\. published weights/\S+: public yes$", out, re.M), line(12)
    assert re.search(r"^13\. unpublished weights/\S+: public no$", out, re.M), line(13)
    # The archive's files: the adapter's configuration and weights, each with its size.
    assert re.search(r"^14\. downloaded sampler_weights/\S+ into \S+: \d+ files, \d+ bytes$", out, re.M), line(14)
    files = dict(re.findall(r"^   (\S+) +(\d+) bytes$", out, re.M))
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert int(files.get(name, 0)) > 0, f"the archive lacks {name}: {files}"
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
