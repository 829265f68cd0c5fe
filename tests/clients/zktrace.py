#!/usr/bin/env python3
"""zktrace: a loopback TCP proxy that logs the ZooKeeper wire protocol.

Debugging aid for the client smoke tests: put it between a real client and a
server to see which requests the client sends (opcode, xid, path) and what the
server answers (xid, zxid, err, watch events).

    python3 tests/clients/zktrace.py LISTEN_PORT SERVER_HOST:PORT [LOGFILE]

then point the client at 127.0.0.1:LISTEN_PORT.  Stops on SIGINT/SIGTERM.
Listens on 127.0.0.1 only.
"""
import socket
import struct
import sys
import threading
import time

OPS = {
    0: "notification", 1: "create", 2: "delete", 3: "exists", 4: "getData",
    5: "setData", 6: "getACL", 7: "setACL", 8: "getChildren", 9: "sync",
    11: "ping", 12: "getChildren2", 13: "check", 14: "multi", 15: "create2",
    16: "reconfig", 17: "checkWatches", 18: "removeWatches",
    19: "createContainer", 20: "deleteContainer", 21: "createTTL",
    22: "multiRead", 100: "auth", 101: "setWatches", 102: "sasl",
    103: "getEphemerals", 104: "getAllChildrenNumber", 105: "setWatches2",
    106: "addWatch", 107: "whoAmI", -10: "createSession", -11: "closeSession",
    -1: "error",
}
# requests whose body starts with a path string
PATH_OPS = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 15, 17, 18, 19, 20, 21, 103,
            104, 106}
EVENT_TYPES = {-1: "None", 1: "NodeCreated", 2: "NodeDeleted",
               3: "NodeDataChanged", 4: "NodeChildrenChanged",
               5: "DataWatchRemoved", 6: "ChildWatchRemoved",
               7: "PersistentWatchRemoved"}

lock = threading.Lock()
out = sys.stdout
t0 = time.monotonic()


def log(conn, msg):
    with lock:
        out.write("%8.3f c%d %s\n" % (time.monotonic() - t0, conn, msg))
        out.flush()


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def zstr(body, off):
    (n,) = struct.unpack_from(">i", body, off)
    off += 4
    if n < 0:
        return None, off
    return body[off:off + n].decode("utf-8", "replace"), off + n


def describe_request(body):
    xid, op = struct.unpack_from(">ii", body, 0)
    name = OPS.get(op, "op%d" % op)
    extra = ""
    try:
        if op in PATH_OPS:
            path, off = zstr(body, 8)
            extra = " " + repr(path)
            if op in (1, 15, 19, 21):
                _data = zstr(body, off)
        elif op in (101, 105):
            (rel,) = struct.unpack_from(">q", body, 8)
            off = 16
            vecs = []
            for _ in range(3 if op == 101 else 5):
                (cnt,) = struct.unpack_from(">i", body, off)
                off += 4
                items = []
                for _ in range(max(cnt, 0)):
                    s, off = zstr(body, off)
                    items.append(s)
                vecs.append(items)
            extra = " relZxid=0x%x %s" % (rel, vecs)
        elif op == 14:
            ops = []
            off = 8
            while True:
                mtype, done, _err = struct.unpack_from(">i?i", body, off)
                off += 9
                if done:
                    break
                path, off2 = zstr(body, off)
                ops.append("%s %r" % (OPS.get(mtype, mtype), path))
                break  # bodies vary per op; only the first is decoded
            extra = " first=%s" % ops
    except struct.error:
        pass
    return xid, op, "req xid=%d %s%s" % (xid, name, extra)


def pump(conn, src, dst, client_side, pending):
    first = True
    try:
        while True:
            hdr = read_exact(src, 4)
            if hdr is None:
                break
            (n,) = struct.unpack(">i", hdr)
            body = read_exact(src, n) if n > 0 else b""
            if body is None:
                break
            dst.sendall(hdr + body)
            if first:
                first = False
                if client_side:
                    pv, lz, to, sid = struct.unpack_from(">iqiq", body, 0)
                    log(conn, "connect-req proto=%d lastZxid=0x%x timeout=%d "
                        "sessionId=0x%x len=%d" % (pv, lz, to, sid, n))
                else:
                    pv, to, sid = struct.unpack_from(">iiq", body, 0)
                    log(conn, "connect-resp proto=%d timeout=%d sessionId=0x%x "
                        "len=%d" % (pv, to, sid, n))
                continue
            if client_side:
                xid, op, desc = describe_request(body)
                pending[xid] = OPS.get(op, str(op))
                if op != 11:
                    log(conn, desc)
            else:
                xid, zxid, err = struct.unpack_from(">iqi", body, 0)
                if xid == -1:
                    typ, state = struct.unpack_from(">ii", body, 16)
                    path, _ = zstr(body, 24)
                    log(conn, "event %s state=%d %r zxid=0x%x" % (
                        EVENT_TYPES.get(typ, typ), state, path, zxid))
                elif xid == -2:
                    pass  # ping reply
                else:
                    log(conn, "resp xid=%d (%s) zxid=0x%x err=%d len=%d" % (
                        xid, pending.pop(xid, "?"), zxid, err, n))
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    global out
    listen_port = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)
    if len(sys.argv) > 3:
        out = open(sys.argv[3], "a")
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(16)
    n = 0
    while True:
        c, _ = ls.accept()
        n += 1
        s = socket.create_connection((host, int(port)))
        pending = {}
        log(n, "open")
        threading.Thread(target=pump, args=(n, c, s, True, pending),
                         daemon=True).start()
        threading.Thread(target=pump, args=(n, s, c, False, pending),
                         daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
