#!/usr/bin/env python3
"""One table over the k6 runs of ci/load: scenario, requests, rps, p50, p95, p99, error rate, verdict.

usage: report.py RESULTS_DIR SCRIPT...   (reads SCRIPT.json, k6's --summary-export, and SCRIPT.exit)
The verdict is k6's: exit 0 passed; 99 means a threshold was breached (the breached ones are
named); anything else is a failed run (an aborted set-up, an unreachable target).
"""
import json
import os
import sys


def metric(metrics, name, scenario):
    return metrics.get(f"{name}{{scenario:{scenario}}}") or metrics.get(name) or {}


def breached(metrics):
    names = []
    for name, values in metrics.items():
        for threshold, ok in (values.get("thresholds") or {}).items():
            # --summary-export marks each threshold true when it was crossed.
            if ok is True:
                names.append(f"{name} {threshold}")
    return names


def main():
    results, scripts = sys.argv[1], sys.argv[2:]
    rows = [("scenario", "requests", "rps", "p50 ms", "p95 ms", "p99 ms", "errors", "verdict")]
    notes = []
    for script in scripts:
        status = int(open(os.path.join(results, f"{script}.exit")).read().strip() or "1")
        path = os.path.join(results, f"{script}.json")
        metrics = json.load(open(path)).get("metrics", {}) if os.path.exists(path) else {}
        duration = metric(metrics, "http_req_duration", script)
        failed = metric(metrics, "http_req_failed", script)
        requests = metric(metrics, "http_reqs", script)
        verdict = "pass" if status == 0 else ("THRESHOLD BREACHED" if status == 99 else f"FAILED (k6 exit {status})")
        if status == 99:
            notes += [f"{script}: {name}" for name in breached(metrics)]
        rows.append((
            script,
            str(requests.get("count", "-")),
            f"{requests['rate']:.0f}" if "rate" in requests else "-",
            f"{duration['med']:.1f}" if "med" in duration else "-",
            f"{duration['p(95)']:.1f}" if "p(95)" in duration else "-",
            f"{duration['p(99)']:.1f}" if "p(99)" in duration else "-",
            f"{failed['value']:.2%}" if "value" in failed else "-",
            verdict,
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    for note in notes:
        print(f"breached: {note}")


if __name__ == "__main__":
    main()
