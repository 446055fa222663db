#!/usr/bin/env bash
# The README's code must be real: every ```cpp block that follows a line
#   <!-- example: examples/<file>.cpp -->
# must be that file, byte for byte (and the file is compiled and run as a test). Usage:
#   check_readme.sh <source dir>
set -euo pipefail
root="$1"
python3 - "$root" <<'PY'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1])
readme = (root / "README.md").read_text()
blocks = re.findall(r"<!-- example: (\S+) -->\n```cpp\n(.*?)```\n", readme, re.S)
if not blocks:
    sys.exit("README.md: no '<!-- example: ... -->' code block found")
failed = False
for path, code in blocks:
    source = (root / path).read_text()
    if code != source:
        failed = True
        print(f"README.md: the code block marked {path} differs from {path}:", file=sys.stderr)
        import difflib
        sys.stderr.writelines(difflib.unified_diff(source.splitlines(True), code.splitlines(True), path, "README.md"))
    else:
        print(f"README.md shows {path} exactly")
sys.exit(1 if failed else 0)
PY
