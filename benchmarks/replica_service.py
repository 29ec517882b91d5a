"""``bench_replicas.py --serve``: two ``instrec serve`` processes on one PostgreSQL catalog under load.

The servers, photos and recognition requests are bench_service's; what is new here is the second
replica, the enrolments alternating between the two, the checker that times when the other replica
answers each one, and the audit afterwards.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from bench_service import Server, enrol_gallery, enrol_variants, gallery_photos, query_views, recognise_once, start_server

from instrec.demo import ENROLLED

GALLERY = 20  # photos enrolled before the run, half through each replica
CHECK_PATIENCE_S = 30.0  # the checker gives up on an enrolment the other replica has not answered by then
MAX_UPLOAD = 20 * 1024 * 1024


@dataclass
class Run:
    latencies_ms: list[list[float]] = field(default_factory=lambda: [[], []])  # per replica
    errors: list[str] = field(default_factory=list)
    enrolled: list[tuple[str, bytes, int]] = field(default_factory=list)  # (id, photo, replica that acknowledged)
    enrol_errors: list[str] = field(default_factory=list)
    delays_ms: list[float] = field(default_factory=list)  # acknowledgement -> the other replica's answer received
    sent_after_ms: list[float] = field(default_factory=list)  # acknowledgement -> sending the request that answered
    first_try: int = 0  # enrolments answered by the first request the checker sent after the acknowledgement
    unanswered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def best_id(client: httpx.Client, server: Server, photo: bytes) -> str | None:
    response = client.post("/v1/recognize?k=1", files={"image": ("q.jpg", photo, "image/jpeg")}, headers=server.read)
    response.raise_for_status()
    matches = response.json()["matches"]
    return matches[0]["instance_id"] if matches else None


def _recognitions(servers: list[Server], queries: list[bytes], worker: int, stop: threading.Event, run: Run) -> None:
    replica = worker % 2
    with httpx.Client(base_url=servers[replica].url, timeout=60) as client:
        i = worker
        while not stop.is_set():
            ms, error, _ = recognise_once(client, servers[replica].read, queries[i % len(queries)])
            i += 7
            with run.lock:
                if error is None:
                    run.latencies_ms[replica].append(ms)
                else:
                    run.errors.append(error)


def _check(server: Server, instance_id: str, photo: bytes, acknowledged: float, run: Run) -> None:
    """Ask ``server`` (the replica that did not take the enrolment) until it answers ``instance_id``."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        tries = 0
        while time.perf_counter() - acknowledged < CHECK_PATIENCE_S:
            sent, tries = time.perf_counter(), tries + 1
            try:
                found = best_id(client, server, photo) == instance_id
            except httpx.HTTPError:
                found = False
            if found:
                with run.lock:
                    run.delays_ms.append((time.perf_counter() - acknowledged) * 1e3)
                    run.sent_after_ms.append((sent - acknowledged) * 1e3)
                    run.first_try += tries == 1
                return
    with run.lock:
        run.unanswered += 1


def _enrolments(servers: list[Server], photos: list[bytes], every: float, stop: threading.Event, run: Run) -> None:
    """Enrol until ``stop``, then wait for the checkers."""
    checkers = []
    clients = [httpx.Client(base_url=s.url, timeout=120) for s in servers]
    try:
        for n, photo in enumerate(photos):
            if stop.wait(every if n else 0):
                break
            replica = n % 2
            files = [("images", (f"e{n}.jpg", photo, "image/jpeg"))]
            try:
                label, headers = {"label": f"enrolled-{n}"}, servers[replica].admin
                response = clients[replica].post("/v1/instances", data=label, files=files, headers=headers)
            except httpx.HTTPError as error:
                run.enrol_errors.append(f"{type(error).__name__}: {error}")
                continue
            acknowledged = time.perf_counter()
            if response.status_code != 201:
                run.enrol_errors.append(f"{response.status_code} {response.text[:120]}")
                continue
            instance_id = response.json()["id"]
            run.enrolled.append((instance_id, photo, replica))
            checker = threading.Thread(target=_check, args=(servers[1 - replica], instance_id, photo, acknowledged, run))
            checker.start()
            checkers.append(checker)
    finally:
        for client in clients:
            client.close()
        for checker in checkers:
            checker.join()


def _audit(servers: list[Server], enrolled: list[tuple[str, bytes, int]]) -> tuple[int, int]:
    """(acknowledged enrolments missing from either replica's catalog view, not answered by either)."""
    missing = unanswered = 0
    for server in servers:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for instance_id, photo, _ in enrolled:
                missing += client.get(f"/v1/instances/{instance_id}", headers=server.read).status_code != 200
                unanswered += best_id(client, server, photo) != instance_id
    return missing, unanswered


def serve_run(url: str, seconds: float, clients: int, every: float, scratch: Path) -> list[str]:
    """Markdown rows of the figures."""
    sets = [f"catalog.url={url}"]
    servers: list[Server] = []
    try:
        for name in ("a", "b"):
            (scratch / name).mkdir(parents=True)
            servers.append(start_server(scratch / name / "home", sets, MAX_UPLOAD))
        gallery = gallery_photos(GALLERY)
        enrol_gallery(servers[0], gallery[::2])
        enrol_gallery(servers[1], gallery[1::2])
        queries = [image for _, image in query_views(list(ENROLLED))]
        photos = enrol_variants(int(seconds / every) + 1)
        run, stop = Run(), threading.Event()
        load = os.getloadavg()[0]
        threads = [threading.Thread(target=_recognitions, args=(servers, queries, w, stop, run)) for w in range(clients)]
        enrolling = threading.Thread(target=_enrolments, args=(servers, photos, every, stop, run))
        started = time.perf_counter()
        for thread in [*threads, enrolling]:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        enrolling.join()
        missing, unanswered = _audit(servers, run.enrolled)
        rss = [s.rss_mb() for s in servers]
    finally:
        for server in servers:
            server.stop()
    return _rows(run, elapsed, clients, every, missing, unanswered, load, rss)


def _rows(
    run: Run, elapsed: float, clients: int, every: float, missing: int, unanswered: int, load: float, rss: list[float]
) -> list[str]:
    def percentiles(values: list[float]) -> str:
        return " | ".join(f"{np.percentile(values, q):.0f}" if values else "-" for q in (50, 95))

    both = run.latencies_ms[0] + run.latencies_ms[1]
    delays = run.delays_ms
    rows = [
        f"Two `instrec serve` processes (auth on, default settings, each its own home) on one PostgreSQL catalog, "
        f"127.0.0.1, {GALLERY} photos enrolled first; {clients} closed-loop recognition clients spread over both for "
        f"{elapsed:.0f} s while enrolments went to either in turn, one at a time, {every:g} s apart. Load average "
        f"{load:.1f} at the start: the machine's 2 cores are shared with other work, so the figures are inflated.",
        "",
        "| replica | recognitions | req/s | p50 ms | p95 ms | server RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for replica, name in enumerate("ab"):
        values = run.latencies_ms[replica]
        rows.append(f"| {name} | {len(values)} | {len(values) / elapsed:.2f} | {percentiles(values)} | {rss[replica]:.0f} |")
    rows.append(f"| both | {len(both)} | {len(both) / elapsed:.2f} | {percentiles(both)} | |")
    rows += [
        "",
        f"Recognition errors: {len(run.errors)}. Enrolments acknowledged: {len(run.enrolled)} "
        f"(refused or failed: {len(run.enrol_errors)}). Afterwards, acknowledged but missing from a replica: {missing}; "
        f"not answered as best match by a replica: {unanswered} (lost = {missing + unanswered}, over both replicas).",
        "",
        "Visibility on the other replica: acknowledgement to the answer naming the new instance received "
        "(one whole recognition included, under the load above), from the checker:",
        "",
        "| answered | p50 ms | p95 ms | max ms | answered by the first request sent after it | it was sent after (p95 ms) |",
        "|---|---|---|---|---|---|",
        f"| {len(delays)}/{len(run.enrolled)} | {percentiles(delays)} | {max(delays) if delays else float('nan'):.0f} "
        f"| {run.first_try}/{len(run.enrolled)} | {np.percentile(run.sent_after_ms, 95) if delays else float('nan'):.0f} |",
    ]
    if run.errors or run.enrol_errors:
        rows += ["", f"First errors: {(run.errors + run.enrol_errors)[:3]}"]
    return rows
