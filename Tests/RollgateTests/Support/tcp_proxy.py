"""A TCP forwarder on loopback, for tests that cut one client off a server (a replica from
its PostgreSQL) while others keep reaching it: kill this process and every connection
through it is gone, and no new one gets through.

    python3 tcp_proxy.py --port 20001 --to 127.0.0.1:5432
"""
import argparse
import socket
import threading

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--to", required=True)
args = parser.parse_args()
host, port = args.to.rsplit(":", 1)


def pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", args.port))
listener.listen(64)
while True:
    client, _ = listener.accept()
    try:
        server = socket.create_connection((host, int(port)))
    except OSError:
        client.close()
        continue
    threading.Thread(target=pump, args=(client, server), daemon=True).start()
    threading.Thread(target=pump, args=(server, client), daemon=True).start()
