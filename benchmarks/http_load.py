"""A closed-loop HTTP/1.1 load generator: ``--concurrency`` keep-alive connections, each sending
its next GET as soon as the previous answer has arrived, for ``--seconds``.

Run it in its own process (the benchmarks start it with ``subprocess``), so that the client's
Python does not share the measured server's GIL. It speaks just enough HTTP for a local server
that answers with ``Content-Length`` (tornado and jupyter-server do) and prints one JSON line:
``{"requests": N, "seconds": S, "per_second": R, "p50_ms": ..., "p99_ms": ...}``. A non-2xx
answer ends the run with ``{"error": ...}`` and a non-zero status, so that a benchmark never
reports the speed of refusals.

    python benchmarks/http_load.py --port 8888 --path /api/status --header "Authorization: token T"
"""

import argparse
import asyncio
import json
import math
import sys
import time


class Failed(Exception):
    """The server answered with an error, or not in a form this client reads."""


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (headers and a ``Content-Length`` body); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        elif name.strip().lower() == "transfer-encoding":
            raise Failed(f"unsupported Transfer-Encoding: {value.strip()}")
    if length is None:
        raise Failed("the answer has no Content-Length")
    await reader.readexactly(length)
    return status


async def connection(host: str, port: int, request: bytes, deadline: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            if not 200 <= status < 300:
                raise Failed(f"HTTP {status}")
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def percentile(ordered: list[float], share: float) -> float:
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else math.nan


async def drive(args: argparse.Namespace) -> dict[str, float]:
    headers = "".join(f"{header}\r\n" for header in args.header)
    request = f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n{headers}\r\n".encode("latin-1")
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + args.seconds
    await asyncio.gather(
        *(connection(args.host, args.port, request, deadline, latencies) for _ in range(args.concurrency))
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "seconds": elapsed,
        "per_second": len(ordered) / elapsed,
        "p50_ms": percentile(ordered, 0.5) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    try:
        result = asyncio.run(drive(args))
    except (Failed, OSError, asyncio.IncompleteReadError) as error:
        print(json.dumps({"error": str(error) or type(error).__name__}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
