#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A fault-injecting HTTP relay for the fleet tests, on loopback only.

    faultproxy.py --listen PORT --upstream PORT --log FILE [faults]

Relays each connection to nginx on 127.0.0.1:UPSTREAM and injects, for
requests whose path ends with --match (default ".tnd"), in the order the
requests arrive:
    --cut N:BYTES     the first N matching responses are cut off (the
                      connection closed) after BYTES response bytes
    --status N:CODE   the first N matching requests get CODE (e.g. 503)
                      without reaching nginx
    --stall N:SECS    the first N matching responses stop after 64 KiB
                      and hang for SECS before the connection is closed
Other requests pass through untouched. One JSON line per request in the
log: path, range header, bytes relayed, what was injected. Runs until
killed; every socket has a timeout.
"""
import argparse
import json
import socket
import threading
import time

lock = threading.Lock()


def parse_fault(s):
    n, v = s.split(":")
    return [int(n), float(v)]


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > 65536:
            return None, b""
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def take(faults, name):
    with lock:
        f = faults.get(name)
        if f and f[0] > 0:
            f[0] -= 1
            return f[1]
    return None


def handle(client, args, faults, log):
    client.settimeout(30)
    up = None
    entry = {}
    try:
        head, rest = read_head(client)
        if head is None:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        entry = {"method": method, "path": path, "range": hdrs.get("range", ""), "bytes": 0, "fault": ""}
        match = path.endswith(args.match)
        code = take(faults, "status") if match else None
        if code:
            body = b"injected failure\n"
            client.sendall(b"HTTP/1.1 %d Injected\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                           % (int(code), len(body)) + body)
            entry["fault"] = "status %d" % int(code)
            return
        cut = take(faults, "cut") if match else None
        stall = take(faults, "stall") if match else None
        # One request per connection: simpler to reason about in the log.
        lines = [l for l in lines if not l.lower().startswith("connection:")]
        out = ("\r\n".join(lines) + "\r\nConnection: close\r\n\r\n").encode("latin-1") + rest
        up = socket.create_connection(("127.0.0.1", args.upstream), timeout=30)
        up.sendall(out)
        want = int(hdrs.get("content-length", "0")) - len(rest)
        while want > 0:
            chunk = client.recv(min(65536, want))
            if not chunk:
                break
            up.sendall(chunk)
            want -= len(chunk)
        limit = int(cut) if cut is not None else (65536 if stall is not None else None)
        while True:
            chunk = up.recv(65536)
            if not chunk:
                break
            if limit is not None and entry["bytes"] + len(chunk) >= limit:
                chunk = chunk[:limit - entry["bytes"]]
                client.sendall(chunk)
                entry["bytes"] += len(chunk)
                if stall is not None:
                    entry["fault"] = "stall %gs at %d" % (stall, entry["bytes"])
                    time.sleep(stall)
                else:
                    entry["fault"] = "cut at %d" % entry["bytes"]
                break
            client.sendall(chunk)
            entry["bytes"] += len(chunk)
    except OSError as e:
        entry["error"] = str(e)
    finally:
        for s in (client, up):
            if s:
                try:
                    s.close()
                except OSError:
                    pass
        if entry:
            with lock:
                log.write(json.dumps(entry) + "\n")
                log.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--match", default=".tnd")
    ap.add_argument("--cut", type=parse_fault)
    ap.add_argument("--status", type=parse_fault)
    ap.add_argument("--stall", type=parse_fault)
    ap.add_argument("--ready")
    args = ap.parse_args()
    faults = {k: getattr(args, k) for k in ("cut", "status", "stall") if getattr(args, k)}
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.listen))
    srv.listen(16)
    log = open(args.log, "a")
    if args.ready:
        open(args.ready, "w").close()
    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c, args, faults, log), daemon=True).start()


if __name__ == "__main__":
    main()
