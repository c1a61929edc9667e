#!/usr/bin/env python3
"""The abuse benchmark's clients, on loopback from different source addresses, one role a
process (so the probe's timing is not the attackers' event loop):
    python3 bench/abuse_clients.py hog PORT N     N half-open connections from 127.0.0.2: a
        request begun and never finished, opened again (after 0.5 s) when the server closes one
    python3 bench/abuse_clients.py busy PORT N    N keep-alive clients from 127.0.0.3 reading a run
    python3 bench/abuse_clients.py probe PORT S   for S seconds from 127.0.0.4: /healthz and
        GET /api/v1/runs/1 in turn, each on a new connection; prints p50, p99, max, failures
    python3 bench/abuse_clients.py dribble PORT N  N connections from 20 addresses (127.0.1.1-20),
        each sending its request's headers one byte every 5 s, opened again when the server
        closes one (issue 16: one byte every 5 s held a connection forever)
hog, dribble and busy run until SIGTERM; hog and dribble print how many connections they held
at the end (dribble also how many the server cut)."""
import asyncio, signal, socket, statistics, sys, time

role, port, amount = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
held = 0
cut = 0


async def hog(stop):
    global held
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")   # never finished
            await writer.drain()
            held += 1
            try:
                await reader.read(1)   # returns when the server closes it
            finally:
                held -= 1
                writer.close()
        except Exception:
            pass
        await asyncio.sleep(0.5)


async def dribble(stop, index=[0]):
    global held, cut
    index[0] += 1
    source = f"127.0.1.{1 + index[0] % 20}"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
            held += 1
            try:
                request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10000
                for byte in request:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    try:
                        if await asyncio.wait_for(reader.read(1), timeout=5) == b"":
                            cut += 1
                            break
                    except asyncio.TimeoutError:
                        pass
            finally:
                held -= 1
                writer.close()
        except Exception:
            pass
        await asyncio.sleep(0.5)


async def busy(stop):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.3", 0))
            while not stop.is_set():
                writer.write(b"GET /api/v1/runs/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
                await reader.readexactly(length)
        except Exception:
            await asyncio.sleep(0.05)


async def attack(kind):
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [asyncio.create_task(kind(stop)) for _ in range(int(amount))]
    await stop.wait()
    holding = held
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if kind is hog:
        print(f"half-open connections held from 127.0.0.2 at the end: {holding}", flush=True)
    if kind is dribble:
        print(f"dribbling connections held at the end: {holding}; cut by the server: {cut}", flush=True)


def probe():
    results = {"/healthz": ([], 0), "/api/v1/runs/1": ([], 0)}
    end = time.time() + amount
    while time.time() < end:
        for path in results:
            started = time.perf_counter()
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.4", 0))
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
                s.close()
                if b" 200 " not in answer.split(b"\r\n")[0]:
                    raise RuntimeError(answer[:40])
                results[path][0].append((time.perf_counter() - started) * 1000)
            except Exception:
                results[path] = (results[path][0], results[path][1] + 1)
        time.sleep(0.01)
    for path, (latencies, failures) in results.items():
        if len(latencies) > 1:
            q = statistics.quantiles(latencies, n=100)
            print(f"{path:16} n={len(latencies):5}  p50 {statistics.median(latencies):7.2f} ms  p99 {q[98]:7.2f} ms  max {max(latencies):7.2f} ms  failed {failures}")
        else:
            print(f"{path:16} n={len(latencies):5}  answered too rarely to measure; failed {failures}")


if role == "probe":
    probe()
else:
    asyncio.run(attack({"hog": hog, "dribble": dribble}.get(role, busy)))
