#!/usr/bin/env python3
"""A TCP proxy that counts the connections it accepts.

Usage: proxy.py UPSTREAM_HOST:PORT PORT_FILE [LISTEN_PORT]

Listens on LISTEN_PORT (by default a free loopback port), writes that port
to PORT_FILE once it listens, and forwards every connection to UPSTREAM. It
prints one line per connection opened ("open N") and closed ("close N") to
stdout, flushed, so a test counts the connections the server behind it saw
opened. On SIGUSR1 it prints "bytes up=U down=D": the bytes forwarded so
far to the server and from it, so a test can tell that nothing was sent.
"""
import asyncio
import os
import signal
import sys

opened = 0
# Bytes forwarded: [to the server, from the server].
sent = [0, 0]


async def pipe(reader, writer, direction):
    try:
        while data := await reader.read(65536):
            sent[direction] += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    port_file = sys.argv[2]

    async def handle(client_r, client_w):
        global opened
        opened += 1
        n = opened
        print(f"open {n}", flush=True)
        try:
            up_r, up_w = await asyncio.open_connection(host, int(port))
        except OSError as e:
            print(f"upstream-failed {n} {e}", flush=True)
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, up_w, 0), pipe(up_r, client_w, 1))
        print(f"close {n}", flush=True)

    listen = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR1,
        lambda: print(f"bytes up={sent[0]} down={sent[1]}", flush=True),
    )
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.replace(tmp, port_file)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
