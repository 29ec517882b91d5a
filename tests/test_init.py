"""Importing instrec makes idle OpenMP threads sleep unless the user chose otherwise."""

import os
import subprocess
import sys

PROBE = "import instrec, os; print(os.environ['OMP_WAIT_POLICY'])"


def _policy_seen(environ: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_import_sets_passive_wait_policy():
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_seen(environ) == "PASSIVE"


def test_users_own_wait_policy_wins():
    assert _policy_seen({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
