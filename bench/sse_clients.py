#!/usr/bin/env python3
"""Opens N Server-Sent Events connections to one URL and keeps reading them until SIGTERM,
then prints how many opened, how many events were read, and how many failed.
    python3 bench/sse_clients.py HOST PORT PATH N"""
import asyncio, signal, sys

host, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
opened = events = failed = 0


async def follow(stop):
    global opened, events, failed
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n")[0]:
            failed += 1
            return
        opened += 1
        while not stop.is_set():
            line = await reader.readline()
            if not line:
                break
            if line.startswith(b"id: "):
                events += 1
        writer.close()
    except Exception:
        failed += 1


async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(follow(stop)))
        await asyncio.sleep(0.002)   # not all in the same millisecond
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"opened {opened} events {events} failed {failed}", flush=True)

asyncio.run(main())
