"""A throwaway PostgreSQL server for the tests: initdb into a temporary folder, listening on a unix
socket there only, one database per test, all of it deleted when the session ends.

PostgreSQL refuses to run as root, as CI and these machines do: then the server runs as the
``postgres`` system user that Debian's package creates, in a folder handed over to it.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

SEARCHED = "initdb and pg_ctl on PATH or under /usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"
# A test server's data may be lost in a crash: no fsync, no full-page writes.
FAST_UNSAFE = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, newest version first; None if there is none."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: _version(p.parent.parent.name))
    return candidates[-1].parent if candidates else None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


class ThrowawayServer:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="instrec-pg-"))  # short: a socket path has ~100 characters
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]
        self._names = itertools.count()

    @property
    def data(self) -> Path:
        return self.root / "data"

    def start(self) -> "ThrowawayServer":
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "-N")
        options = f"-k {self.root} -c listen_addresses='' {FAST_UNSAFE}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-o", options, "start")
        return self

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run([*self._as_user, str(self.bin_dir / program), *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(f"{program} failed: {done.stderr[-2000:]}{log.read_text()[-2000:] if log.exists() else ''}")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.root}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
