#!/usr/bin/env python3
"""Registers COUNT agents on a Signet through its admin API, 16 at a time, and writes one
"client_id client_secret" line per agent to OUTPUT (for tests/bench/clients.lua).

usage: register.py BASE_URL ADMIN_TOKEN COUNT OUTPUT
"""
import json
import sys
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor


def register(base, token, index):
    body = json.dumps({"name": f"bench-{index}-{uuid.uuid4().hex[:8]}", "owner": "bench", "scopes": ["read"]}).encode()
    request = urllib.request.Request(
        f"{base}/v1/agents",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        agent = json.load(response)
    return f"{agent['client_id']} {agent['client_secret']}\n"


def main():
    base, token, count, output = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with ThreadPoolExecutor(16) as pool:
        lines = list(pool.map(lambda index: register(base, token, index), range(count)))
    with open(output, "w") as file:
        file.writelines(lines)


if __name__ == "__main__":
    main()
