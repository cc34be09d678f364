#!/usr/bin/env python3
"""Token issuance at production cardinality: wrk -t2 -c64 with tests/bench/clients.lua against
each TARGET (a name and a base URL) and each clients file, in ROUNDS rounds whose order rotates,
so every configuration sees the same drift of a shared machine. Prints tokens/s and p99 per run,
then per target and file the median tokens/s, the worst p99, and the median ratio to the first
file (one client) of the same target and round.

usage: cardinality.py NAME=URL [NAME=URL ...] -- FILE [FILE ...]   (ROUNDS, SECONDS from the environment)
"""
import os
import re
import statistics
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients.lua")


def run(url, clients, seconds):
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "-s", SCRIPT, f"{url}/oauth/token"],
        capture_output=True, text=True, check=True, env={**os.environ, "CLIENTS_FILE": clients},
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit(f"{url} with {clients}: {non2xx.group(1)} responses were not 2xx:\n{out}")
    return rps, p99


def milliseconds(text):
    value = float(re.match(r"[\d.]+", text).group(0))
    return value / 1000 if text.endswith("us") else value * 1000 if text.endswith("s") and not text.endswith("ms") else value


def main():
    split = sys.argv.index("--")
    targets = [argument.split("=", 1) for argument in sys.argv[1:split]]
    files = sys.argv[split + 1:]
    rounds = int(os.environ.get("ROUNDS", "3"))
    seconds = int(os.environ.get("SECONDS", "8"))
    results = {}  # (target, file) -> [(rps, p99 ms)]
    for number in range(rounds):
        order = [(name, url, clients) for name, url in targets for clients in files]
        shift = number % len(order)
        for name, url, clients in order[shift:] + order[:shift]:
            rps, p99 = run(url, clients, seconds)
            results.setdefault((name, clients), []).append((rps, milliseconds(p99)))
            print(f"  round {number}: {name:<22} {os.path.basename(clients):<16} {rps:8.0f} tokens/s  p99 {p99}", file=sys.stderr, flush=True)
    print(f"{'instance':<22} {'clients':<16} {'tokens/s':>9} {'worst p99':>10}  vs one client (median of rounds)")
    for name, _ in targets:
        for clients in files:
            runs = results[(name, clients)]
            ratios = [runs[i][0] / results[(name, files[0])][i][0] for i in range(rounds)]
            print(
                f"{name:<22} {os.path.basename(clients):<16} {statistics.median(r for r, _ in runs):9.0f} "
                f"{max(p for _, p in runs):8.1f} ms  {statistics.median(ratios):6.2f}"
            )


if __name__ == "__main__":
    main()
