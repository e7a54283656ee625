#!/usr/bin/env python3
"""Idle TLS connections for benches/load.sh --tls: opens N connections to HOST:PORT, completes
each TLS handshake and one keep-alive request (so every connection has been through the whole
path once), prints "open N", holds them for HOLD_S seconds while the caller reads the server's
memory, then closes them. Certificates are not verified (the bench's own self-signed one).

usage: tls-idle.py HOST PORT N PATH HOLD_S
"""
import socket
import ssl
import sys
import time


def one(ctx, host, port, path):
    s = ctx.wrap_socket(socket.create_connection((host, port), timeout=10), server_hostname="localhost")
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed before an answer")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += s.recv(4096)
    return s


def main():
    host, port, n, path, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conns = [one(ctx, host, port, path) for _ in range(n)]
    print(f"open {len(conns)}", flush=True)
    time.sleep(hold)
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()
