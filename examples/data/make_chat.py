#!/usr/bin/env python3
"""Writes chat.jsonl, the conversations the `sft` example trains on (run it from this directory).

The assistant's answers are regular enough for a model that predicts each byte from the two bytes
before it: counting up to 9, the capital letters up to Z, and "yes."/"no.". Deterministic: the same
file every time.
"""
import json
import random

rng = random.Random(20260101)


def count_up(n):
    ask = rng.choice(["count up from {}", "count from {} to 9", "please count up from {}"]).format(n)
    return ask, " ".join(str(i) for i in range(n, 10)) + "."


def alphabet(c):
    ask = rng.choice(["say the alphabet from {}", "letters from {} to Z", "continue the alphabet: {}"]).format(c)
    return ask, " ".join(chr(i) for i in range(ord(c), ord("Z") + 1)) + "."


def compare(a, b):
    ask = rng.choice(["is {} more than {}?", "is {} bigger than {}?", "{} > {}?"]).format(a, b)
    return ask, "yes." if a > b else "no."


def exchange():
    kind = rng.randrange(3)
    if kind == 0:
        return count_up(rng.randrange(0, 9))
    if kind == 1:
        return alphabet(chr(rng.randrange(ord("A"), ord("Y"))))
    a, b = rng.sample(range(10), 2)
    return compare(a, b)


with open("chat.jsonl", "w") as out:
    for _ in range(120):
        messages = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": "You are a terse assistant."})
        for _ in range(rng.choice([1, 1, 2])):
            ask, answer = exchange()
            messages.append({"role": "user", "content": ask})
            messages.append({"role": "assistant", "content": answer})
        out.write(json.dumps({"messages": messages}) + "\n")
