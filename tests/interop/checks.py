"""The interop scripts' one assertion: `check` prints each passed check and exits 1 on the first
failed one; `summary` prints how many passed."""

import sys

passed = 0


def check(condition, what, detail=""):
    global passed
    if not condition:
        print(f"FAILED: {what} {detail}", file=sys.stderr)
        sys.exit(1)
    passed += 1
    print(f"ok: {what}")


def summary(what):
    print(f"{passed} {what} passed")
