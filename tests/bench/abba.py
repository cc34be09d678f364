#!/usr/bin/env python3
"""Compares the throughput of two URLs serving the same route, interleaved A B B A, B A A B, ...

On a small shared machine one run's throughput drifts by a third from minute to minute, so two
back-to-back runs say little. Interleaving short runs puts A and B through the same drift; the
per-cycle ratios and their median are the result.

usage: abba.py NAME URL_A URL_B [wrk options...]   (CYCLES and SECONDS from the environment)
Prints one line per cycle on stderr and a summary line on stdout.
"""
import os
import re
import statistics
import subprocess
import sys


def throughput(url, options, seconds):
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", *options, url], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not found:
        sys.exit(f"wrk printed no throughput:\n{out}")
    if "Non-2xx" in out:
        sys.exit(f"{url}: some responses were not 2xx; the comparison would be meaningless:\n{out}")
    return float(found.group(1))


def main():
    name, url_a, url_b, options = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    cycles = int(os.environ.get("CYCLES", "6"))
    seconds = int(os.environ.get("SECONDS_PER_RUN", "3"))
    ratios, total_a, total_b = [], 0.0, 0.0
    for cycle in range(cycles):
        order = [url_a, url_b, url_b, url_a] if cycle % 2 == 0 else [url_b, url_a, url_a, url_b]
        runs = {url_a: [], url_b: []}
        for url in order:
            runs[url].append(throughput(url, options, seconds))
        a, b = sum(runs[url_a]) / 2, sum(runs[url_b]) / 2
        total_a, total_b = total_a + a, total_b + b
        ratios.append(a / b)
        print(f"  {name} cycle {cycle}: A {a:8.0f}  B {b:8.0f}  A/B {a / b:6.1%}", file=sys.stderr, flush=True)
    print(
        f"{name:<34} A {total_a / cycles:8.0f} req/s  B {total_b / cycles:8.0f} req/s  "
        f"A/B median {statistics.median(ratios):6.1%}  (cycles {min(ratios):.1%}..{max(ratios):.1%})"
    )


if __name__ == "__main__":
    main()
