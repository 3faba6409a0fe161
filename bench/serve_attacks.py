#!/usr/bin/env python3
"""Hostile-but-fair clients against a running `flipless serve`, on loopback, bounded in count and time.

    python3 bench/serve_attacks.py --port 8080 [--pid PID] [--sigterm] [--throughput SECONDS]

Prints one line per attack with what the server did. --pid reads the server's resident memory
(/proc/PID/status) around the chunked-body attack; --sigterm ends with a SIGTERM under load and
counts requests sent but never answered (it stops the server). Used to measure the cpp-httplib
server against the Beast one (docs/serving.md, "Slow and hostile clients").
"""
import argparse
import json
import os
import signal
import socket
import threading
import time

PREDICT = b'{"inputs": ["the movie was good"]}'


def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def post(body, extra=b""):
    return (b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def read_responses(s, want, timeout):
    """Reads until `want` complete responses (Content-Length framed) or the timeout/close."""
    s.settimeout(0.2)
    data, got, end = b"", [], time.time() + timeout
    while len(got) < want and time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        while b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(rest) < length:
                break
            got.append((int(head.split(b" ")[1]), rest[:length]))
            data = rest[length:]
    return got


def rss_mb(pid):
    if not pid:
        return float("nan")
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def normal_request(port, timeout=30.0):
    """Seconds for one fresh-connection predict request, or None without an answer."""
    start = time.time()
    try:
        s = connect(port, timeout)
        s.sendall(post(PREDICT))
        got = read_responses(s, 1, timeout)
        s.close()
        return time.time() - start if got and got[0][0] == 200 else None
    except OSError:
        return None


def chunked(port, pid, limit_mb):
    before = rss_mb(pid)
    s = connect(port)
    s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"%x\r\n" % 65536 + b"a" * 65536 + b"\r\n"
    sent, peak = 0, before
    try:
        while sent < limit_mb << 20:
            s.sendall(piece)
            sent += 65536
            if sent % (16 << 20) == 0:
                peak = max(peak, rss_mb(pid))
    except OSError:
        pass
    peak = max(peak, rss_mb(pid))
    got = read_responses(s, 1, 5)
    s.close()
    status = got[0][0] if got else "none"
    print(f"1 chunked body: status {status} after {sent >> 20} MiB sent (of {limit_mb} MiB); "
          f"server RSS {before:.0f} -> peak {peak:.0f} MB")


def slow_clients(port, n, seconds):
    stop = threading.Event()

    def trickle():
        try:
            s = connect(port)
            for b in post(PREDICT):
                if stop.is_set():
                    break
                s.send(bytes([b]))
                stop.wait(0.5)
            s.close()
        except OSError:
            pass

    threads = [threading.Thread(target=trickle) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(1)
    answered = [normal_request(port, timeout=seconds) for _ in range(2)]
    stop.set()
    for t in threads:
        t.join()
    shown = ", ".join("none" if a is None else f"{a:.2f} s" for a in answered)
    print(f"2 {n} byte-by-byte clients: a normal client's 2 requests: {shown}")


def idle_keepalive(port, n):
    socks = []
    for _ in range(n):
        s = connect(port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        read_responses(s, 1, 5)
        socks.append(s)
    took = normal_request(port, timeout=30)
    for s in socks:
        s.close()
    print(f"2 {n} idle keep-alive connections: a new client answered in "
          f"{'none' if took is None else f'{took:.2f} s'}")


def pipelined(port):
    s = connect(port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    start = time.time()
    got = read_responses(s, 2, 6)
    s.close()
    print(f"3 two pipelined GETs: {len(got)} responses {[g[0] for g in got]} in {time.time() - start:.2f} s")


def nul_byte(port):
    s = connect(port)
    s.sendall(post(b'{"inputs":["a"]}\0{"inputs":[1]}'))
    got = read_responses(s, 1, 5)
    s.close()
    print(f"4 a NUL byte after valid JSON: status {got[0][0] if got else 'none'}")


def healthz_and_method(port):
    s = connect(port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    got = read_responses(s, 2, 6)
    s.close()
    body = json.loads(got[0][1]) if got else {}
    paths = [v for v in body.values() if isinstance(v, str) and "/" in v]
    print(f"7 /healthz: {body}; strings with '/': {len(paths)}; POST /healthz: {got[1][0] if len(got) > 1 else 'none'}")


def sigterm_under_load(port, pid, clients):
    sent, answered, stop = [0], [0], threading.Event()
    lock = threading.Lock()

    def client():
        while not stop.is_set():
            try:
                s = connect(port, 5)
            except OSError:
                return  # refused: the server stopped listening, which is fine
            try:
                s.sendall(post(PREDICT))
            except OSError:
                s.close()
                continue
            with lock:
                sent[0] += 1
            got = read_responses(s, 1, 15)
            s.close()
            if got:
                with lock:
                    answered[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(2)
    os.kill(pid, signal.SIGTERM)
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    print(f"6 SIGTERM under load ({clients} clients): {sent[0]} requests sent, {sent[0] - answered[0]} without a response")


def throughput(port, clients, seconds):
    """Requests per second from `clients` threads, each on one keep-alive connection."""
    done, stop = [0] * clients, threading.Event()

    def client(i):
        s = connect(port)
        while not stop.is_set():
            s.sendall(post(PREDICT))
            if not read_responses(s, 1, 10):
                s.close()
                s = connect(port)
                continue
            done[i] += 1
        s.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    print(f"0 throughput: {sum(done) / seconds:.0f} requests/s ({clients} keep-alive clients, {seconds:.0f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--chunked-mb", type=int, default=256)
    ap.add_argument("--slow", type=int, default=50)
    ap.add_argument("--slow-seconds", type=float, default=15)
    ap.add_argument("--idle", type=int, default=64)
    ap.add_argument("--sigterm", action="store_true")
    ap.add_argument("--throughput", type=float, default=0, help="seconds of a throughput run first (0: none)")
    a = ap.parse_args()
    print(f"normal request: {normal_request(a.port):.3f} s")
    if a.throughput:
        throughput(a.port, 8, a.throughput)
    chunked(a.port, a.pid, a.chunked_mb)
    slow_clients(a.port, a.slow, a.slow_seconds)
    idle_keepalive(a.port, a.idle)
    pipelined(a.port)
    nul_byte(a.port)
    healthz_and_method(a.port)
    if a.sigterm and a.pid:
        sigterm_under_load(a.port, a.pid, 16)


if __name__ == "__main__":
    main()
