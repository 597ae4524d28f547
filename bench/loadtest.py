"""Bounded load test of `transferlearn serve` on loopback: N concurrent clients x M requests each.

    python bench/loadtest.py --url http://127.0.0.1:8000 --image some.jpg --clients 8 --requests 25
    python bench/loadtest.py --checkpoint runs/last-layer --image some.jpg   # starts its own server

Every request is POST /predict (add --cam for heat-maps too). Prints requests/s, latency p50/p95/p99
and error counts; --json FILE writes them. Refuses non-loopback URLs: this is not a tool for other hosts.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from urllib.parse import urlparse

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def load_test(url: str, image: bytes, clients: int = 8, requests: int = 25, cam: bool = False,
              timeout: float = 60.0, filename: str = "image.jpg") -> dict:
    import httpx
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to load-test {host}: loopback only")
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(clients)
    endpoint = url.rstrip("/") + "/predict" + ("?cam=1" if cam else "")

    def client():
        with httpx.Client(timeout=timeout) as c:
            barrier.wait()
            for _ in range(requests):
                t0 = time.perf_counter()
                try:
                    r = c.post(endpoint, files={"file": (filename, image, "image/jpeg")})
                    key = str(r.status_code)
                except httpx.HTTPError as e:
                    key = type(e).__name__
                dt = time.perf_counter() - t0
                with lock:
                    statuses[key] = statuses.get(key, 0) + 1
                    if key == "200":
                        latencies.append(dt)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    total = clients * requests
    ok = statuses.get("200", 0)
    ms = [x * 1000 for x in latencies]
    return {"clients": clients, "requests_per_client": requests, "total": total, "ok": ok, "errors": total - ok,
            "statuses": statuses, "cam": cam, "wall_s": round(wall, 3), "req_per_s": round(total / wall, 2),
            "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1), "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
            "max_ms": round(max(ms), 1) if ms else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--url", help="a running server on this machine, e.g. http://127.0.0.1:8000")
    g.add_argument("--checkpoint", help="start a server for this checkpoint in-process (random loopback port)")
    p.add_argument("--image", required=True, help="image file sent with every request")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=25, help="requests per client")
    p.add_argument("--cam", action="store_true", help="ask for the CAM heat-map too (?cam=1)")
    p.add_argument("--json", default=None, help="write the figures to this file")
    args = p.parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.clients * args.requests > 10_000:
        p.error("--clients and --requests must be >= 1, and at most 10000 requests in all")
    image = open(args.image, "rb").read()
    if args.url:
        res = load_test(args.url, image, args.clients, args.requests, args.cam)
    else:
        from transferlearn.serve import background_server, create_app
        with background_server(create_app(args.checkpoint)) as url:
            res = load_test(url, image, args.clients, args.requests, args.cam)
    print(f"{res['clients']} clients x {res['requests_per_client']} requests{' (with CAM)' if res['cam'] else ''}: "
          f"{res['ok']}/{res['total']} ok, {res['errors']} errors {res['statuses']} | {res['req_per_s']} req/s | "
          f"latency p50 {res['p50_ms']} ms  p95 {res['p95_ms']} ms  p99 {res['p99_ms']} ms  max {res['max_ms']} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0 if res["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
