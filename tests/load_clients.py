"""Many connections at a set rate: ``python load_clients.py '{"host":…,"ports":[…],…}'``.

Run inside the client namespace by the load tests and ``bench/live_load.py``: opens
``count`` connections spread over ``ports`` at ``rate`` per second (``concurrency`` at most
open at once), sends ``request`` and reads the reply to EOF. Prints one JSON object: how
many succeeded, failed, the seconds taken and the achieved rate.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def _one(host: str, port: int, request: bytes, timeout: float) -> bool:
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        w.write(request)
        await w.drain()
        while await asyncio.wait_for(r.read(65536), timeout):
            pass
        w.close()
        await w.wait_closed()
        return True
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False


async def main(spec: dict) -> dict:
    host, ports = spec["host"], spec["ports"]
    count, rate = int(spec["count"]), float(spec["rate"])
    request = spec["request"].encode("latin-1")
    gate = asyncio.Semaphore(int(spec.get("concurrency", 200)))
    results: list[bool] = []

    async def run(k: int) -> None:
        async with gate:
            results.append(await _one(host, ports[k % len(ports)], request, spec.get("timeout", 10)))

    t0 = time.monotonic()
    tasks = []
    for k in range(count):
        due = t0 + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(run(k)))
    await asyncio.gather(*tasks)
    took = time.monotonic() - t0
    ok = sum(results)
    return {"ok": ok, "failed": len(results) - ok, "seconds": took, "rate": len(results) / took}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
