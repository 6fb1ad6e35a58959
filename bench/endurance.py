#!/usr/bin/env python3
"""SMTP helpers for bench/idle-sessions.sh and bench/kill9.sh (standard library only).

  endurance.py idle --server IP:PORT --sessions N [--parallel 256] [--timeout 60]
      Opens N sessions; each reads the 220 greeting, sends "EHLO idle.test" and reads the
      reply, then stays idle.  When every session is set up (or failed) it prints one JSON
      line {"phase":"established",...} and waits.  On SIGUSR1 it sends QUIT on every session
      that is still open, counts the 221 replies (proof the session survived the idle
      period), prints {"phase":"closed",...} and exits.

  endurance.py sink --listen IP:PORT --log FILE
      A receiving SMTP server (PIPELINING, 8BITMIME, SIZE; no CHUNKING, no STARTTLS).  For
      every message it takes, it appends the message's X-Load-Id header value to FILE and
      flushes BEFORE it sends the 250 (so FILE lists every message the sink accepted;
      a message whose connection died before the final "." is not logged).  Runs until killed.

  endurance.py load --server IP:PORT --sessions S --prefix P --acked FILE --sent FILE
                    [--size BYTES] [--per-connection 50] [--max-seconds 60]
      Relay load: S parallel sessions, each message to <tTOKEN@sink.test> with the header
      "X-Load-Id: TOKEN", TOKEN = P.<session>.<n>, unique per run.  TOKEN goes to --sent
      just before the message text is written and to --acked when the server answered 250 to it.
      A session that loses its connection reconnects; when a connect is refused (the server
      is gone) the session ends; the program exits when every session has ended.  Prints a
      JSON summary line.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import time


def endpoint(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


async def read_reply(reader):
    """One SMTP reply (all its lines); returns (code, last line). Raises on EOF."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        line = line.decode("latin-1").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            break
    return lines[-1][:3], lines[-1]


# ---------------------------------------------------------------- idle sessions
async def idle_main(args):
    host, port = endpoint(args.server)
    sem = asyncio.Semaphore(args.parallel)
    sessions = []          # (reader, writer) of sessions that got a 250 to EHLO
    stats = {"greeted": 0, "ehlo_250": 0, "failed": 0}
    errors = {}

    async def one(i):
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), args.timeout)
            except Exception as e:
                stats["failed"] += 1
                key = "connect: " + (type(e).__name__ + " " + str(e))[:80]
                errors[key] = errors.get(key, 0) + 1
                return
            try:
                code, line = await asyncio.wait_for(read_reply(reader), args.timeout)
                if code != "220":
                    raise ConnectionError("greeting " + line)
                stats["greeted"] += 1
                writer.write(b"EHLO idle.test\r\n")
                code, line = await asyncio.wait_for(read_reply(reader), args.timeout)
                if code != "250":
                    raise ConnectionError("EHLO " + line)
                stats["ehlo_250"] += 1
                sessions.append((reader, writer))
            except Exception as e:
                stats["failed"] += 1
                key = (type(e).__name__ + " " + str(e))[:80]
                errors[key] = errors.get(key, 0) + 1
                writer.close()

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.sessions)))
    print(json.dumps({"phase": "established", "sessions": args.sessions, **stats,
                      "seconds": round(time.monotonic() - start, 2), "errors": errors}), flush=True)

    go = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
    await go.wait()

    closed = {"quit_221": 0, "dead": 0}
    dead_reasons = {}

    async def quit_one(reader, writer):
        async with sem:
            try:
                writer.write(b"QUIT\r\n")
                code, line = await asyncio.wait_for(read_reply(reader), args.timeout)
                if code == "221":
                    closed["quit_221"] += 1
                else:
                    closed["dead"] += 1
                    dead_reasons[line[:60]] = dead_reasons.get(line[:60], 0) + 1
            except Exception as e:
                closed["dead"] += 1
                key = (type(e).__name__ + " " + str(e))[:60]
                dead_reasons[key] = dead_reasons.get(key, 0) + 1
            finally:
                writer.close()

    await asyncio.gather(*(quit_one(r, w) for r, w in sessions))
    print(json.dumps({"phase": "closed", **closed, "dead_reasons": dead_reasons}), flush=True)


# ---------------------------------------------------------------- sink
async def sink_main(args):
    host, port = endpoint(args.listen)
    log = open(args.log, "a", buffering=1)
    state = {"sessions": 0, "messages": 0}

    async def serve(reader, writer):
        state["sessions"] += 1
        try:
            writer.write(b"220 sink.test ESMTP endurance sink\r\n")
            while True:
                await writer.drain()
                line = await reader.readline()
                if not line:
                    return
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n250 ENHANCEDSTATUSCODES\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    token, in_headers = None, True
                    while True:
                        l = await reader.readline()
                        if not l:
                            return            # connection died mid-message: not accepted
                        if l in (b".\r\n", b".\n"):
                            break
                        if in_headers:
                            if l in (b"\r\n", b"\n"):
                                in_headers = False
                            elif l[:10].lower() == b"x-load-id:":
                                token = l[10:].strip().decode("latin-1")
                    log.write((token or "-") + "\n")   # line-buffered: written before the 250
                    state["messages"] += 1
                    writer.write(b"250 2.0.0 Ok: queued as " + (token or "-").encode() + b"\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    return
                else:                         # MAIL, RCPT, RSET, NOOP, ...
                    writer.write(b"250 2.0.0 Ok\r\n")
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, host, port, reuse_address=True, backlog=1024)
    print(f"sink listening on {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------- relay load
async def load_main(args):
    host, port = endpoint(args.server)
    acked = open(args.acked, "a", buffering=1)
    sent = open(args.sent, "a", buffering=1)
    filler = b"The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOP\r\n"
    stats = {"acked": 0, "sent": 0, "refused": 0, "connections": 0, "connection_errors": 0}
    deadline = time.monotonic() + args.max_seconds

    def body(token):
        head = (f"From: load@client.test\r\nTo: t{token}@sink.test\r\nSubject: kill9 {token}\r\n"
                f"Message-ID: <{token}@client.test>\r\nX-Load-Id: {token}\r\n\r\n").encode()
        text = filler * max(1, (args.size - len(head)) // len(filler))
        return head + text + b".\r\n"

    async def worker(w):
        seq = 0
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                return                        # the server is gone: this session ends
            stats["connections"] += 1
            try:
                code, line = await read_reply(reader)
                if code != "220":
                    raise ConnectionError(line)
                writer.write(b"EHLO load.client.test\r\n")
                code, line = await read_reply(reader)
                if code != "250":
                    raise ConnectionError(line)
                for _ in range(args.per_connection):
                    if time.monotonic() >= deadline:
                        break
                    seq += 1
                    token = f"{args.prefix}.{w}.{seq}"
                    writer.write(f"MAIL FROM:<load@client.test>\r\nRCPT TO:<t{token}@sink.test>\r\nDATA\r\n".encode())
                    m = await read_reply(reader)
                    r = await read_reply(reader)
                    d = await read_reply(reader)
                    if m[0] != "250" or r[0] != "250" or d[0] != "354":
                        stats["refused"] += 1
                        if d[0] == "354":         # cannot happen without a recipient; keep the stream in sync
                            writer.write(b".\r\n")
                            await read_reply(reader)
                        writer.write(b"RSET\r\n")
                        await read_reply(reader)
                        continue
                    sent.write(token + "\n")     # before the body: every token the server may have seen
                    stats["sent"] += 1
                    writer.write(body(token))
                    await writer.drain()
                    code, line = await read_reply(reader)
                    if code == "250":
                        acked.write(token + "\n")   # line-buffered
                        stats["acked"] += 1
                    else:
                        stats["refused"] += 1
                writer.write(b"QUIT\r\n")
                await read_reply(reader)
            except (ConnectionError, OSError):
                stats["connection_errors"] += 1
            finally:
                writer.close()

    await asyncio.gather(*(worker(w) for w in range(args.sessions)))
    print(json.dumps(stats), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("idle")
    i.add_argument("--server", required=True)
    i.add_argument("--sessions", type=int, default=10000)
    i.add_argument("--parallel", type=int, default=256, help="connection set-ups in flight at once")
    i.add_argument("--timeout", type=float, default=60)
    s = sub.add_parser("sink")
    s.add_argument("--listen", required=True)
    s.add_argument("--log", required=True)
    l = sub.add_parser("load")
    l.add_argument("--server", required=True)
    l.add_argument("--sessions", type=int, default=8)
    l.add_argument("--prefix", required=True)
    l.add_argument("--acked", required=True)
    l.add_argument("--sent", required=True)
    l.add_argument("--size", type=int, default=1024)
    l.add_argument("--per-connection", type=int, default=50)
    l.add_argument("--max-seconds", type=float, default=60)
    args = p.parse_args()
    fn = {"idle": idle_main, "sink": sink_main, "load": load_main}[args.cmd]
    try:
        asyncio.run(fn(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
