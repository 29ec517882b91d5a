"""Service figures on this machine, loopback only: latency/throughput under load, and a bad-input sweep.

    python benchmarks/bench_service.py                 # ~2-3 minutes
    python benchmarks/bench_service.py --seconds 10    # shorter phases
    python benchmarks/bench_service.py --set service.inference_slots=1 --set runtime.threads=2   # compare settings
    python benchmarks/bench_service.py --overload --clients 32 --seconds 30   # admission control only

What it does, bounded in count and time:

1. starts ``instrec serve`` (auth on, fresh keys, fresh home) on 127.0.0.1 at a free port;
2. enrols 20 instances (scikit-image photos + mirrored copies) over the API;
3. single-request latency: one client, sequential recognitions of altered views;
4. closed loop: 8 clients recognising back-to-back (each waits for its answer), --seconds or
   --max-requests, whichever first; then the same with an enrolment loop running alongside
   (--enrol-rate per second); enrolments attempted vs. present afterwards;
5. paced: the same 8 clients, but together offering a fixed rate below capacity (--paced-load
   times the measured closed-loop throughput), latency measured from the scheduled send time;
6. bad-input sweep: every hostile or broken request, expected vs. got status; then health checks,
   a good recognition, and the server's memory;
7. with the server stopped: the model's throughput with one image per run vs batches, one run per
   core vs one run using every core (could batching requests buy throughput here?).

``--overload`` runs steps 1-2 and then only an overload phase: --clients closed-loop clients for
--seconds, each waiting out the Retry-After of a refusal as a well-behaved client would. It reports
accepted p50/p95, refusals by code (503 overloaded / deadline_exceeded, 429), other 5xx, and checks
that every request was answered within ``service.deadline_ms`` + 1 s or refused.

Besides client-side latency, every phase reports the medians of the server's own ``timing_ms``
(embedding, engine, waiting for an inference slot, whole request): where the time goes.

Prints Markdown tables; ``--json PATH`` also writes the raw figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from instrec.config import Config, parse_assignments
from instrec.demo import ENROLLED, altered_views, sample_photo
from instrec.service.state import resolve_inference_slots, resolve_max_queue

HOST = "127.0.0.1"  # loopback only, always
SERVER_STAGES = ("embed", "total", "queue", "request")  # medians of the answers' own timing_ms


# -- inputs ------------------------------------------------------------------------------------------
def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def png_bomb(side: int = 20000) -> bytes:
    """A valid 1-bit PNG declaring side x side pixels (400 M for 20000) in ~50 KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row * 500) for _ in range(side // 500))
    body += compressor.compress(row * (side % 500)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def gallery_photos(count: int) -> list[tuple[str, bytes]]:
    """``count`` distinct photos: the demo's photos, then mirrored copies of them."""
    out = [(name, jpeg(sample_photo(name))) for name in ENROLLED]
    out += [(f"{name}-mirror", jpeg(ImageOps.mirror(sample_photo(name)))) for name in ENROLLED]
    return out[:count]


def query_views(names: list[str]) -> list[tuple[str, bytes]]:
    return [(name, jpeg(view)) for name in names for view in altered_views(sample_photo(name), seed=11).values()]


def enrol_variants(count: int) -> list[bytes]:
    """Distinct new photos for the enrolment loop (rotated, cropped, re-lit variants)."""
    out = []
    for i in range(count):
        photo = sample_photo(ENROLLED[i % len(ENROLLED)])
        w, h = photo.size
        angle = 3 + (i * 7) % 50
        crop = 0.04 + 0.01 * (i % 9)
        variant = photo.rotate(angle, expand=True, fillcolor=(90, 90, 90)).crop(
            (int(crop * w), int(crop * h), int((1 - crop) * w), int((1 - crop) * h))
        )
        out.append(jpeg(ImageEnhance.Brightness(variant).enhance(0.7 + 0.05 * (i % 8))))
    return out


# -- server ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    admin: dict[str, str]
    read: dict[str, str]
    log: Path

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(home: Path, sets: list[str], max_upload: int) -> Server:
    port = free_port()
    admin_key, read_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = {**os.environ, "INSTREC_SERVICE__ADMIN_KEYS": admin_key, "INSTREC_SERVICE__API_KEYS": read_key}
    sets = [f"service.host={HOST}", f"service.port={port}", "service.auth=true", f"service.max_upload_bytes={max_upload}", *sets]
    command = [sys.executable, "-c", "from instrec.cli import app; app()", "serve", "--home", str(home)]
    command += [arg for item in sets for arg in ("--set", item)]  # the real command line
    log = home.parent / "server.log"
    handle = open(log, "wb")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://{HOST}:{port}", process, {"X-API-Key": admin_key}, {"X-API-Key": read_key}, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise SystemExit("server did not become ready in 180 s")


# -- load --------------------------------------------------------------------------------------------
@dataclass
class Load:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    server_ms: list[dict[str, float]] = field(default_factory=list)  # each answer's own timing_ms

    def record(self, ms: float, error: str | None, timing: dict[str, float]) -> None:
        if error:
            self.errors.append(error)
        else:
            self.latencies_ms.append(ms)
            self.server_ms.append(timing)

    def server_p50(self, stage: str) -> float:
        values = [t[stage] for t in self.server_ms if stage in t]
        return statistics.median(values) if values else float("nan")

    def row(self, single_ms: float) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([float("nan")])
        p50, p95, p99 = (float(np.percentile(lat, q)) for q in (50, 95, 99))
        return {
            "phase": self.name,
            "requests": len(self.latencies_ms),
            "errors": len(self.errors),
            "throughput_rps": len(self.latencies_ms) / self.seconds if self.seconds else 0.0,
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "p95_over_single": p95 / single_ms,
            **{f"server_{stage}_ms": self.server_p50(stage) for stage in SERVER_STAGES},
            **self.extra,
        }


def recognise_once(client: httpx.Client, headers: dict[str, str], image: bytes) -> tuple[float, str | None, dict]:
    """(client-side ms, error or None, the server's timing_ms)."""
    t0 = time.perf_counter()
    timing: dict[str, float] = {}
    try:
        response = client.post("/v1/recognize", files={"image": ("q.jpg", image, "image/jpeg")}, headers=headers)
        error = None if response.status_code == 200 else f"{response.status_code} {response.text[:120]}"
        if error is None:
            timing = response.json()["timing_ms"]
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return (time.perf_counter() - t0) * 1e3, error, timing


def single_latency(server: Server, queries: list[tuple[str, bytes]], count: int) -> Load:
    load = Load("single client, sequential")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _, image in queries[:5]:
            recognise_once(client, server.read, image)  # warm-up
        t0 = time.perf_counter()
        for i in range(count):
            load.record(*recognise_once(client, server.read, queries[i % len(queries)][1]))
        load.seconds = time.perf_counter() - t0
    return load


def closed_loop(
    server: Server,
    queries: list[tuple[str, bytes]],
    clients: int,
    seconds: float,
    max_requests: int,
    name: str,
    background: Callable[[threading.Event], None] | None = None,
) -> Load:
    load = Load(name)
    lock = threading.Lock()
    stop = threading.Event()
    issued = [0]

    def client_loop(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            i = worker
            while not stop.is_set():
                with lock:
                    if issued[0] >= max_requests:
                        stop.set()
                        break
                    issued[0] += 1
                answer = recognise_once(client, server.read, queries[(i * 7) % len(queries)][1])
                i += clients
                with lock:
                    load.record(*answer)

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(clients)]
    extra = threading.Thread(target=background, args=(stop,)) if background else None
    t0 = time.perf_counter()
    for thread in threads + ([extra] if extra else []):
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    load.seconds = time.perf_counter() - t0
    if extra:
        extra.join()
    return load


def paced(server: Server, queries: list[tuple[str, bytes]], clients: int, rate: float, seconds: float, max_requests: int) -> Load:
    """Open loop: each client sends on a fixed schedule (rate/clients per second), with jitter."""
    load = Load(f"paced, {rate:.1f} req/s offered")
    lock = threading.Lock()
    interval = clients / rate
    per_client = max(1, min(int(seconds / interval), max_requests // clients))

    def client_loop(worker: int) -> None:
        rng = np.random.default_rng(worker)
        start = time.perf_counter() + worker * interval / clients
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for n in range(per_client):
                scheduled = start + n * interval + float(rng.uniform(-0.2, 0.2)) * interval
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                _, error, timing = recognise_once(client, server.read, queries[(worker + n * clients) % len(queries)][1])
                ms = (time.perf_counter() - scheduled) * 1e3  # includes any lateness: no coordinated omission
                with lock:
                    load.record(ms, error, timing)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.seconds = time.perf_counter() - t0
    return load


def enrolment_loop(server: Server, variants: list[bytes], rate: float, record: dict[str, Any]) -> Callable:
    def loop(stop: threading.Event) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for i, image in enumerate(variants):
                if stop.is_set():
                    break
                t0 = time.perf_counter()
                record["attempted"] += 1
                label = f"bench-enrol-{i:04d}"
                try:
                    response = client.post(
                        "/v1/instances",
                        data={"label": label, "metadata": json.dumps({"i": i})},
                        files=[("images", (f"{i}.jpg", image, "image/jpeg"))],
                        headers=server.admin,
                    )
                    if response.status_code == 201:
                        record["ids"][response.json()["id"]] = label
                        record["latencies_ms"].append((time.perf_counter() - t0) * 1e3)
                    else:
                        record["errors"].append(f"{response.status_code} {response.text[:120]}")
                except httpx.HTTPError as exc:
                    record["errors"].append(f"{type(exc).__name__}: {exc}")
                stop.wait(max(0.0, 1.0 / rate - (time.perf_counter() - t0)))

    return loop


def enrol_gallery(server: Server, gallery: list[tuple[str, bytes]]) -> dict[str, str]:
    """label -> instance id, enrolled over the API."""
    ids = {}
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for label, image in gallery:
            response = client.post(
                "/v1/instances",
                data={"label": label},
                files=[("images", (f"{label}.jpg", image, "image/jpeg"))],
                headers=server.admin,
            )
            response.raise_for_status()
            ids[label] = response.json()["id"]
    return ids


# -- overload ----------------------------------------------------------------------------------------
REFUSED = (429, 503)
BOUND_SLACK_S = 1.0  # what "answered in time" allows beyond service.deadline_ms: the run itself and transfer


def overload(server: Server, queries: list[tuple[str, bytes]], clients: int, seconds: float, max_requests: int) -> dict[str, Any]:
    """Closed loop past capacity: every answer's status, code and time; refused clients wait out Retry-After."""
    answers: list[tuple[int, str, float]] = []  # (status or 0 for a transport error, error code, ms)
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            i = worker
            while not stop.is_set():
                image = queries[(i * 7) % len(queries)][1]
                i += clients
                t0 = time.perf_counter()
                retry_after = 0.0
                try:
                    response = client.post("/v1/recognize", files={"image": ("q.jpg", image, "image/jpeg")}, headers=server.read)
                    status = response.status_code
                    code = response.json()["error"]["code"] if status >= 400 else ""
                    if status in REFUSED:
                        retry_after = min(5.0, float(response.headers.get("retry-after", "1")))
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    status, code = 0, type(exc).__name__
                with lock:
                    answers.append((status, code, (time.perf_counter() - t0) * 1e3))
                    if len(answers) >= max_requests:
                        stop.set()
                stop.wait(retry_after)

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(clients)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return {"answers": answers, "seconds": time.perf_counter() - t0}


def overload_report(result: dict[str, Any], deadline_ms: int) -> tuple[dict[str, Any], int]:
    """The figures, and how many requests broke the bound (answered late, or not at all)."""
    answers = result["answers"]
    accepted = np.asarray([ms for status, _, ms in answers if status == 200] or [float("nan")])
    bound_ms = deadline_ms + BOUND_SLACK_S * 1e3 if deadline_ms else float("inf")
    late = sum(ms > bound_ms for status, _, ms in answers if status not in REFUSED)
    codes: dict[str, int] = {}
    for status, code, _ in answers:
        if status in REFUSED:
            codes[f"{status} {code}"] = codes.get(f"{status} {code}", 0) + 1
    row = {
        "requests": len(answers),
        "accepted": sum(status == 200 for status, _, _ in answers),
        "accepted_rps": sum(status == 200 for status, _, _ in answers) / result["seconds"],
        "accepted_p50_ms": float(np.percentile(accepted, 50)),
        "accepted_p95_ms": float(np.percentile(accepted, 95)),
        "accepted_max_ms": float(np.max(accepted)),
        "refused_503": sum(status == 503 for status, _, _ in answers),
        "refused_by_code": codes,
        "refused_max_ms": max((ms for status, _, ms in answers if status in REFUSED), default=0.0),
        "other_5xx": sum(status >= 500 and status != 503 for status, _, _ in answers),
        "other_errors": sum(status not in (200, *REFUSED) for status, _, _ in answers),
        "bound_ms": bound_ms,
        "late": late,
    }
    return row, late + row["other_errors"]


def run_overload(args: argparse.Namespace, gallery: list[tuple[str, bytes]], queries: list[tuple[str, bytes]]) -> int:
    service = Config.load(overrides=parse_assignments(args.sets)).service
    workdir = Path(tempfile.mkdtemp(prefix="instrec-bench-service-"))
    server = start_server(workdir / "home", args.sets, args.max_upload)
    load_avg = os.getloadavg()
    try:
        print(f"server {server.url} ready; enrolling {len(gallery)} instances ...", file=sys.stderr)
        enrol_gallery(server, gallery)
        single_latency(server, queries, 5)  # warm-up
        print(f"overload: {args.clients} clients for {args.seconds:g} s ...", file=sys.stderr)
        result = overload(server, queries, args.clients, args.seconds, args.max_requests)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            healthy = client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    finally:
        server.stop()
    row, failures = overload_report(result, service.deadline_ms)
    failures += not healthy
    print(
        f"\n## instrec service under overload on {os.cpu_count()} cores (load average before: "
        f"{load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f}); settings: {' '.join(args.sets) or 'defaults'} "
        f"(max_queue {resolve_max_queue(service, resolve_inference_slots(service))}, deadline_ms {service.deadline_ms})\n"
    )
    print(f"{args.clients} clients, closed loop, {result['seconds']:.1f} s; refused clients wait out Retry-After\n")
    print(
        table(
            [row],
            [
                ("requests", "requests", ""),
                ("accepted", "accepted", ""),
                ("accepted_rps", "accepted/s", ".1f"),
                ("accepted_p50_ms", "accepted p50 ms", ".0f"),
                ("accepted_p95_ms", "accepted p95 ms", ".0f"),
                ("accepted_max_ms", "accepted max ms", ".0f"),
                ("refused_503", "503s", ""),
                ("refused_max_ms", "slowest refusal ms", ".0f"),
                ("other_5xx", "other 5xx", ""),
            ],
        )
    )
    print(f"\nrefusals by code: {row['refused_by_code'] or 'none'}")
    print(
        f"answered within deadline_ms + {BOUND_SLACK_S:g} s ({row['bound_ms']:.0f} ms) or refused: "
        f"{'yes' if row['late'] == 0 else 'NO'} ({row['late']} late, {row['other_errors']} other errors); "
        f"health and readiness afterwards: {'ok' if healthy else 'FAILED'}"
    )
    print(f"\n{'ALL GOOD' if failures == 0 else f'{failures} PROBLEM(S)'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"overload": row, "load_average": load_avg, "sets": args.sets}, indent=2))
    return 0 if failures == 0 else 1


# -- bad input sweep -------------------------------------------------------------------------------
def sweep(server: Server, good: bytes, instance_id: str, max_upload: int) -> list[dict[str, Any]]:
    truncated = good[: len(good) // 2]
    other = jpeg(sample_photo("cell"))  # not in the gallery: enrolling it changes no other answer
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiny, format="PNG")
    rows: list[dict[str, Any]] = []
    admin, read = server.admin, server.read

    def multipart(data: bytes, name: str = "q.jpg", content_type: str = "image/jpeg") -> dict[str, Any]:
        return {"files": {"image": (name, data, content_type)}}

    def enrol_form(label: str, images: list[bytes], metadata: str | None = None, **extra: str) -> dict[str, Any]:
        data = {"label": label, **extra}
        if metadata is not None:
            data["metadata"] = metadata
        return {"data": data, "files": [("images", (f"{i}.jpg", im, "image/jpeg")) for i, im in enumerate(images)]}

    cases: list[tuple[str, str, str, dict[str, Any], dict[str, str], int]] = [
        ("truncated JPEG (recognise)", "POST", "/v1/recognize", multipart(truncated), read, 400),
        ("truncated JPEG (enrol)", "POST", "/v1/instances", enrol_form("t", [truncated]), admin, 400),
        ("zero bytes", "POST", "/v1/recognize", multipart(b""), read, 400),
        ("text file as image", "POST", "/v1/recognize", multipart(b"hello, world\n" * 50, "notes.txt", "text/plain"), read, 415),
        ("PDF header as image", "POST", "/v1/recognize", multipart(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" * 40), read, 415),
        ("20000x20000 PNG bomb (48 KB)", "POST", "/v1/recognize", multipart(png_bomb(), "bomb.png", "image/png"), read, 413),
        ("20000x20000 PNG bomb (enrol)", "POST", "/v1/instances", enrol_form("bomb", [png_bomb()]), admin, 413),
        ("8x8 image (too small)", "POST", "/v1/recognize", multipart(tiny.getvalue(), "t.png", "image/png"), read, 400),
        (
            "raw JPEG, Content-Type text/plain",
            "POST",
            "/v1/recognize",
            {"content": good, "headers": {"content-type": "text/plain"}},
            read,
            415,
        ),
        (
            "raw JPEG, Content-Type application/json",
            "POST",
            "/v1/recognize",
            {"content": good, "headers": {"content-type": "application/json"}},
            read,
            415,
        ),
        ("multipart without 'image' field", "POST", "/v1/recognize", {"files": {"photo": ("q.jpg", good)}}, read, 422),
        (
            f"body over max_upload_bytes ({max_upload + 1} B)",
            "POST",
            "/v1/recognize",
            {"content": os.urandom(max_upload + 1), "headers": {"content-type": "image/jpeg"}},
            read,
            413,
        ),
        ("k=0", "POST", "/v1/recognize?k=0", multipart(good), read, 422),
        ("unicode label 'Füchse 🦊 狐 «ça»'", "POST", "/v1/instances", enrol_form("Füchse 🦊 狐 «ça»", [other]), admin, 201),
        ("huge label (100 000 chars)", "POST", "/v1/instances", enrol_form("x" * 100_000, [good]), admin, 422),
        ("label with control chars", "POST", "/v1/instances", enrol_form("bad\x00\x07label", [good]), admin, 422),
        ("whitespace-only label", "POST", "/v1/instances", enrol_form("   ", [good]), admin, 422),
        ("metadata not JSON", "POST", "/v1/instances", enrol_form("m", [good], "{oops"), admin, 422),
        ("metadata a JSON list", "POST", "/v1/instances", enrol_form("m", [good], "[1,2]"), admin, 422),
        ("4 images on create", "POST", "/v1/instances", enrol_form("four", [good] * 4), admin, 422),
        ("id '../../etc/passwd' on create", "POST", "/v1/instances", enrol_form("p", [good], id="../../etc/passwd"), admin, 422),
        ("duplicate instance id", "POST", "/v1/instances", enrol_form("dup", [good], id=instance_id), admin, 409),
        ("unknown instance id", "GET", "/v1/instances/does-not-exist", {}, read, 404),
        ("traversal id ..%2F..%2Fetc%2Fpasswd", "GET", "/v1/instances/..%2F..%2Fetc%2Fpasswd", {}, read, 404),
        ("traversal in static path", "GET", "/static/..%2F..%2Fconfig.py", {}, {}, 404),
        ("unknown image id (thumbnail)", "GET", "/v1/images/999999/thumbnail", {}, read, 404),
        ("non-integer image id", "GET", "/v1/images/abc/thumbnail", {}, read, 422),
        ("PATCH metadata not an object", "PATCH", f"/v1/instances/{instance_id}", {"json": {"metadata": [1]}}, admin, 422),
        ("no API key", "GET", "/v1/instances", {}, {}, 401),
        ("wrong API key", "GET", "/v1/instances", {}, {"X-API-Key": "guess"}, 401),
        ("read key on a write (DELETE)", "DELETE", f"/v1/instances/{instance_id}", {}, read, 403),
        ("wrong method", "PUT", "/v1/recognize", {}, read, 405),
        ("unknown route", "GET", "/v1/nothing", {}, read, 404),
    ]
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for name, method, path, kwargs, headers, expected in cases:
            kwargs = dict(kwargs)
            all_headers = {**headers, **kwargs.pop("headers", {})}
            t0 = time.perf_counter()
            try:
                response = client.request(method, path, headers=all_headers, **kwargs)
                got, shape_ok = response.status_code, True
                if got >= 400:
                    body = response.json()
                    shape_ok = (
                        set(body) == {"error"}
                        and {"code", "message", "status"} <= set(body["error"])
                        and body["error"]["status"] == got
                    )
                    code = body["error"].get("code", "?")
                else:
                    code = "-"
            except (httpx.HTTPError, ValueError) as exc:
                got, shape_ok, code = f"{type(exc).__name__}", False, "-"
            rows.append(
                {
                    "input": name,
                    "expected": expected,
                    "got": got,
                    "code": code,
                    "json_error_shape": shape_ok if got != expected or expected >= 400 else True,
                    "ok": got == expected and shape_ok,
                    "ms": (time.perf_counter() - t0) * 1e3,
                }
            )
    return rows


# -- batching --------------------------------------------------------------------------------------------
def inference_throughput(seconds: float, rounds: int = 3) -> list[dict[str, Any]]:
    """Images/s of the model alone (ONNX Runtime, in this process, server stopped): one image per run
    vs batches of 8, one run at a time vs one per core side by side. Batching requests could only
    shorten queues if a batch costs less per image than single runs on the same cores."""
    from instrec.config import DescriptorConfig, RuntimeConfig
    from instrec.embedding.embedder import Embedder

    cores = len(os.sched_getaffinity(0))
    photos = [sample_photo(name).convert("RGB").resize((224, 168)) for name in ENROLLED[:8]]  # one shape: batchable
    engines = {t: Embedder(DescriptorConfig(), RuntimeConfig(threads=t, batch_size=len(photos))) for t in {1, cores}}
    settings = sorted({(1, 1, cores), (1, 8, cores), (cores, 1, 1), (cores, 8, 1), (1, 1, 1), (1, 8, 1)})
    done: dict[tuple[int, int, int], list[float]] = {setting: [] for setting in settings}

    def run(embedder: Any, batch: int, deadline: float, counts: list[int], slot: int) -> None:
        while time.perf_counter() < deadline:
            for start in range(0, len(photos), batch):
                counts[slot] += len(embedder.embed(photos[start : start + batch]))

    for embedder in engines.values():
        embedder.embed(photos)  # warm-up
    each = seconds / (rounds * len(settings))
    for _ in range(rounds):  # settings alternate, so the machine's other load hits them alike
        for threads, batch, side_by_side in settings:
            counts = [0] * side_by_side
            t0 = time.perf_counter()
            workers = [
                threading.Thread(target=run, args=(engines[threads], batch, t0 + each, counts, i)) for i in range(side_by_side)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            done[(threads, batch, side_by_side)].append(sum(counts) / (time.perf_counter() - t0))
    base = statistics.median(done[(1, 1, cores)])
    return [
        {
            "threads": t,
            "batch": b,
            "runs": r,
            "images_per_s": statistics.median(done[(t, b, r)]),
            "vs_service": statistics.median(done[(t, b, r)]) / base,
        }
        for t, b, r in settings
    ]


# -- report ------------------------------------------------------------------------------------------
def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = [
        "| " + " | ".join(format(row.get(key, ""), fmt) if fmt else str(row.get(key, "")) for key, _, fmt in columns) + " |"
        for row in rows
    ]
    return "\n".join([head, rule, *body])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0, help="per load phase")
    parser.add_argument("--max-requests", type=int, default=2000, help="per load phase")
    parser.add_argument("--single", type=int, default=40, help="sequential requests for the single-client figure")
    parser.add_argument("--enrol-rate", type=float, default=2.0, help="enrolments per second alongside the load")
    parser.add_argument("--paced-load", type=float, default=0.6, help="paced phase: fraction of closed-loop throughput")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="server setting section.key=value")
    parser.add_argument("--max-upload", type=int, default=20 * 1024 * 1024)
    parser.add_argument("--batching-seconds", type=float, default=36.0, help="model throughput comparison, in all")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--overload", action="store_true", help="only the overload phase (admission control)")
    args = parser.parse_args()

    print("preparing photos ...", file=sys.stderr)
    gallery = gallery_photos(args.instances)
    queries = query_views([n for n in ENROLLED])
    if args.overload:
        return run_overload(args, gallery, queries)
    variants = enrol_variants(int(args.seconds * args.enrol_rate) + 20)

    workdir = Path(tempfile.mkdtemp(prefix="instrec-bench-service-"))
    server = start_server(workdir / "home", args.sets, args.max_upload)
    load_avg = os.getloadavg()
    try:
        print(f"server {server.url} ready (pid {server.process.pid}); enrolling {len(gallery)} instances ...", file=sys.stderr)
        ids = enrol_gallery(server, gallery)
        with httpx.Client(base_url=server.url, timeout=120) as client:
            stats = client.get("/v1/stats", headers=server.read).json()
            by_id = {v: k.removesuffix("-mirror") for k, v in ids.items()}  # a mirrored copy counts as its photo
            correct = sum(
                by_id[
                    client.post("/v1/recognize?k=1", files={"image": ("q.jpg", image)}, headers=server.read).json()["matches"][0][
                        "instance_id"
                    ]
                ]
                == name
                for name, image in queries
            )

        print("single-request latency ...", file=sys.stderr)
        single = single_latency(server, queries, args.single)
        single_ms = statistics.median(single.latencies_ms)

        print(f"closed loop, {args.clients} clients ...", file=sys.stderr)
        closed = closed_loop(
            server, queries, args.clients, args.seconds, args.max_requests, f"{args.clients} clients, closed loop"
        )

        print("closed loop + enrolments ...", file=sys.stderr)
        record: dict[str, Any] = {"attempted": 0, "ids": {}, "errors": [], "latencies_ms": []}
        with_enrol = closed_loop(
            server,
            queries,
            args.clients,
            args.seconds,
            args.max_requests,
            f"{args.clients} clients + enrolments ({args.enrol_rate:g}/s)",
            enrolment_loop(server, variants, args.enrol_rate, record),
        )
        with httpx.Client(base_url=server.url, timeout=60) as client:
            present = client.get("/v1/instances", params={"search": "bench-enrol-", "limit": 1}, headers=server.read).json()[
                "total"
            ]
            reachable = sum(client.get(f"/v1/instances/{i}", headers=server.read).status_code == 200 for i in record["ids"])
            after = client.get("/v1/stats", headers=server.read).json()
            # every enrolled instance is recognisable by its own photo
            found = 0
            for i, (instance_id, label) in enumerate(record["ids"].items()):
                image = variants[int(label.rsplit("-", 1)[1])]
                best = client.post("/v1/recognize?k=1", files={"image": ("q.jpg", image)}, headers=server.read).json()
                found += best["matches"][0]["instance_id"] == instance_id
        with_enrol.extra = {
            "enrol_attempted": record["attempted"],
            "enrol_ok": len(record["ids"]),
            "enrol_errors": len(record["errors"]),
            "enrol_present_after": present,
            "enrol_recognisable": found,
            "enrol_p50_ms": statistics.median(record["latencies_ms"]) if record["latencies_ms"] else 0,
        }

        closed_rate = len(closed.latencies_ms) / closed.seconds
        print("paced ...", file=sys.stderr)
        paced_load = paced(server, queries, args.clients, args.paced_load * closed_rate, args.seconds, args.max_requests)

        print("bad-input sweep ...", file=sys.stderr)
        rss_before = server.rss_mb()
        rows = sweep(server, gallery[0][1], ids[gallery[0][0]], args.max_upload)
        rss_after = server.rss_mb()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            health = client.get("/healthz").status_code
            ready = client.get("/readyz").status_code
            # an enrolled photo must still find its own instance (exact content: score ~1)
            final = client.post("/v1/recognize?k=1", files={"image": ("q.jpg", gallery[1][1])}, headers=server.read)
            final_ok = final.status_code == 200 and final.json()["matches"][0]["instance_id"] == ids[gallery[1][0]]
        alive = server.process.poll() is None
    finally:
        server.stop()

    loads = [single, closed, with_enrol, paced_load]
    results = [load.row(single_ms) for load in loads]
    print(
        f"\n## instrec service on {os.cpu_count()} cores (load average before: "
        f"{load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f}); settings: "
        f"{' '.join(args.sets) or 'defaults'}\n"
    )
    print(
        f"gallery: {stats['instances']} instances, index {stats['index']['kind']}, "
        f"descriptor {stats['descriptor']['backbone']}, threshold {stats['threshold']:.3f}; "
        f"altered-view queries answered correctly: {correct}/{len(queries)}\n"
    )
    print(f"single-request latency (median of {len(single.latencies_ms)} sequential): {single_ms:.1f} ms\n")
    print(
        table(
            results,
            [
                ("phase", "phase", ""),
                ("requests", "requests", ""),
                ("errors", "errors", ""),
                ("throughput_rps", "req/s", ".1f"),
                ("p50_ms", "p50 ms", ".1f"),
                ("p95_ms", "p95 ms", ".1f"),
                ("p99_ms", "p99 ms", ".1f"),
                ("p95_over_single", "p95 / single", ".2f"),
            ],
        )
    )
    print(
        "\nwhere the time goes (server's own timing_ms, medians): model embedding, engine total (decode, "
        "embed, search), waiting for an inference slot, whole request inside the server\n"
    )
    print(
        table(
            results,
            [
                ("phase", "phase", ""),
                ("server_embed_ms", "embed ms", ".1f"),
                ("server_total_ms", "engine ms", ".1f"),
                ("server_queue_ms", "queue ms", ".1f"),
                ("server_request_ms", "server ms", ".1f"),
                ("p50_ms", "client p50 ms", ".1f"),
            ],
        )
    )
    e = with_enrol.extra
    print(
        f"\nenrolments alongside the load: attempted {e['enrol_attempted']}, succeeded {e['enrol_ok']}, "
        f"errors {e['enrol_errors']}, present afterwards {e['enrol_present_after']} "
        f"(reachable by id {reachable}), recognisable by their own photo {e['enrol_recognisable']}; "
        f"enrol p50 {e['enrol_p50_ms']:.0f} ms; library after: {after['instances']} instances, "
        f"{after['vectors']} vectors, index {after['index']['vectors']} vectors"
    )
    lost = e["enrol_ok"] - e["enrol_present_after"]
    print(f"lost enrolments: {lost}")
    print("\n### bad-input sweep\n")
    print(
        table(
            rows,
            [
                ("input", "input", ""),
                ("expected", "expected", ""),
                ("got", "got", ""),
                ("code", "error code", ""),
                ("ok", "ok", ""),
                ("ms", "ms", ".0f"),
            ],
        )
    )
    print(
        f"\nafter the sweep: /healthz {health}, /readyz {ready}, good recognition "
        f"{'correct' if final_ok else 'FAILED: ' + final.text[:300]}, server alive {alive}, "
        f"server RSS {rss_before:.0f} MB -> {rss_after:.0f} MB"
    )
    failures = (
        sum(not r["ok"] for r in rows)
        + sum(len(load.errors) for load in loads)
        + len(record["errors"])
        + (lost != 0)
        + (health != 200)
        + (ready != 200)
        + (not final_ok)
        + (not alive)
    )
    print("\n### model throughput: single vs batched inference (ONNX Runtime, server stopped)\n")
    batching = inference_throughput(args.batching_seconds)
    print(
        table(
            batching,
            [
                ("threads", "threads per run", ""),
                ("batch", "images per run", ""),
                ("runs", "runs side by side", ""),
                ("images_per_s", "images/s", ".1f"),
                ("vs_service", "vs the service's setting (1 thread, 1 image, one run per core)", ".2f"),
            ],
        )
    )
    print(f"\n{'ALL GOOD' if failures == 0 else f'{failures} PROBLEM(S)'}")
    for load in loads:
        for error in load.errors[:3]:
            print(f"  {load.name}: {error}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "single_ms": single_ms,
                    "loads": results,
                    "sweep": rows,
                    "batching": batching,
                    "enrolments": {k: v for k, v in record.items() if k != "ids"},
                    "load_average": load_avg,
                    "sets": args.sets,
                },
                indent=2,
                default=str,
            )
        )
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
