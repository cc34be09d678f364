"""A Toxiproxy client no one here wrote (PyPI's toxiproxy-python), unchanged, against `signet-sim proxy`.

Its own calls: version, create a proxy, list and fetch proxies, add, list and remove toxics,
disable and enable a proxy (`down()`), reset, destroy; each toxic's effect measured on an echo
server through the proxy.

Usage: toxiproxy_client.py API_PORT (named so as not to shadow the package). Exits 1 on the first failed check.
"""

import socket
import sys
import threading
import time

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import NotFound, ProxyExists

from checks import check, summary



echo = socket.socket()
echo.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
echo.bind(("127.0.0.1", 0))
echo.listen()


def serve():
    while True:
        connection, _ = echo.accept()

        def answer(connection):
            with connection:
                while True:
                    try:
                        data = connection.recv(4096)
                    except OSError:
                        return
                    if not data:
                        return
                    connection.sendall(data)

        threading.Thread(target=answer, args=(connection,), daemon=True).start()


threading.Thread(target=serve, daemon=True).start()
upstream = f"127.0.0.1:{echo.getsockname()[1]}"


def round_trip(port, text=b"ping", timeout=2.0):
    """The echo through the proxy, and how long it took; (None, error) when it failed."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
            connection.sendall(text)
            received = b""
            while len(received) < len(text):
                data = connection.recv(4096)
                if not data:
                    return None, "closed"
                received += data
            return received, time.monotonic() - started
    except socket.timeout:
        return None, "no answer"
    except OSError as error:
        return None, str(error)


server = Toxiproxy()
server.update_api_consumer("127.0.0.1", int(sys.argv[1]))
check(server.running(), "the API answers")
check(server.version() is not None, "version", server.version())

proxy = server.create(upstream=upstream, name="echo", listen="127.0.0.1:0")
port = int(proxy.listen.rsplit(":", 1)[1])
check(proxy.name == "echo" and proxy.enabled and port > 0, "create a proxy", vars(proxy))
try:
    server.create(upstream=upstream, name="echo")
    check(False, "a duplicate name is refused")
except ProxyExists:
    check(True, "a duplicate name is refused (ProxyExists)")
check("echo" in server.proxies() and server.get_proxy("echo").upstream == upstream, "list and fetch proxies")
check(round_trip(port)[0] == b"ping", "bytes flow through it")

proxy.add_toxic(type="latency", attributes={"latency": 300})
check(list(proxy.toxics()) == ["latency_downstream"], "a latency toxic, named as Toxiproxy names it", list(proxy.toxics()))
answer, took = round_trip(port)
check(answer == b"ping" and took >= 0.3, "latency 300 ms", took)
proxy.destroy_toxic("latency_downstream")
check(proxy.toxics() == {}, "the toxic removed")

proxy.add_toxic(type="timeout", name="hole", stream="upstream", attributes={"timeout": 0})
answer, error = round_trip(port, timeout=0.5)
check(answer is None and error == "no answer", "timeout 0 is a black hole", error)
proxy.destroy_toxic("hole")

proxy.add_toxic(type="reset_peer", stream="upstream", attributes={"timeout": 0})
answer, error = round_trip(port)
check(answer is None, "reset_peer resets", error)
proxy.destroy_toxic("reset_peer_upstream")

proxy.add_toxic(type="limit_data", attributes={"bytes": 2})
answer, error = round_trip(port, b"longer")
check(answer is None and error == "closed", "limit_data closes after its bytes", error)
proxy.destroy_toxic("limit_data_downstream")

proxy.add_toxic(type="bandwidth", attributes={"rate": 10})
answer, took = round_trip(port, b"x" * 2000)
check(answer == b"x" * 2000 and took >= 0.15, "bandwidth 10 KB/s: 2000 bytes take about 200 ms", took)
proxy.destroy_toxic("bandwidth_downstream")

with proxy.down():
    answer, error = round_trip(port, timeout=0.5)
    check(answer is None, "down(): refused", error)
check(round_trip(port)[0] == b"ping", "up again on the same port")

proxy.add_toxic(type="slow_close", attributes={"delay": 100})
server.reset()
check(server.get_proxy("echo").enabled and proxy.toxics() == {}, "reset: enabled, no toxics")
try:
    APIConsumer.get("/proxies/nope")
    check(False, "an unknown proxy is 404")
except NotFound:
    check(True, "an unknown proxy is 404 (NotFound)")
check(server.destroy(proxy), "destroy")
check(round_trip(port, timeout=0.5)[0] is None, "gone")
summary("toxiproxy-python checks")
