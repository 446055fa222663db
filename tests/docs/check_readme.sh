#!/usr/bin/env bash
# The README's code must be real. Every ```cpp block follows one of two marks:
#   <!-- example: examples/<file>.cpp -->            the block is that file, byte for byte (the
#                                                    examples are compiled and run as tests)
#   <!-- fragment: tests/docs/<file>.cpp <n> -->      the block is the lines of <file> between
#                                                    `// README fragment <n>` and `// end of fragment`
#                                                    (less their indentation); <file> is compiled
#                                                    and run as a test
#   <!-- excerpt: examples/<file>.cpp -->            the block's lines (ignoring leading blanks on
#                                                    each) are consecutive lines of that example, so
#                                                    a few lines of a longer program stay true to it
# A block with none of these marks fails the check. Usage: check_readme.sh <source dir>
set -euo pipefail
root="$1"
python3 - "$root" <<'PY'
import difflib, pathlib, re, sys, textwrap
root = pathlib.Path(sys.argv[1])
readme = (root / "README.md").read_text()
failed = False

def differs(what, expected, shown):
    global failed
    failed = True
    print(f"README.md: the code block marked {what} differs from it:", file=sys.stderr)
    sys.stderr.writelines(difflib.unified_diff(expected.splitlines(True), shown.splitlines(True), what, "README.md"))

blocks = list(re.finditer(r"```cpp\n(.*?)```\n", readme, re.S))
if not blocks:
    sys.exit("README.md: no C++ code block found")
for block in blocks:
    code = block.group(1)
    before = readme[: block.start()].rstrip("\n").rsplit("\n", 1)[-1]
    line = readme.count("\n", 0, block.start()) + 1
    if m := re.fullmatch(r"<!-- example: (\S+) -->", before):
        path = m.group(1)
        source = (root / path).read_text()
        if code != source:
            differs(path, source, code)
        else:
            print(f"README.md:{line} shows {path} exactly")
    elif m := re.fullmatch(r"<!-- fragment: (\S+) (\d+) -->", before):
        path, n = m.group(1), m.group(2)
        source = (root / path).read_text()
        f = re.search(rf"^[ \t]*// README fragment {n}\n(.*?)^[ \t]*// end of fragment\n", source, re.S | re.M)
        if not f:
            failed = True
            print(f"README.md:{line}: {path} has no fragment {n}", file=sys.stderr)
            continue
        expected = textwrap.dedent(f.group(1))
        if code != expected:
            differs(f"{path} fragment {n}", expected, code)
        else:
            print(f"README.md:{line} shows fragment {n} of {path} exactly")
    elif m := re.fullmatch(r"<!-- excerpt: (\S+) -->", before):
        path = m.group(1)
        source = [l.strip() for l in (root / path).read_text().splitlines()]
        shown = [l.strip() for l in code.splitlines()]
        if not any(source[i : i + len(shown)] == shown for i in range(len(source) - len(shown) + 1)):
            failed = True
            print(f"README.md:{line}: the block marked as an excerpt of {path} is not a run of its lines:", file=sys.stderr)
            print(code, file=sys.stderr)
        else:
            print(f"README.md:{line} shows lines of {path}")
    else:
        failed = True
        print(f"README.md:{line}: a C++ block with no '<!-- example: ... -->', '<!-- fragment: ... -->' or "
              "'<!-- excerpt: ... -->' mark "
              "(code in the README must be compiled by a test)", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
