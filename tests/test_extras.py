import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from instrec.errors import InstrecError, MissingExtraError
from instrec.extras import EXTRAS, require_extra

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_engine_and_the_cli_import_no_optional_package():
    optional = sorted({module for modules in EXTRAS.values() for module in modules.values()} | {"starlette"})
    code = (
        "import json, sys, instrec, instrec.recognizer, instrec.cli; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({optional!r}))))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(imported.stdout) == []


def test_the_extras_are_those_of_pyproject():
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    for extra, packages in EXTRAS.items():
        assert {re.match(r"[A-Za-z0-9._-]+", r).group() for r in declared[extra]} == set(packages), extra
    assert set(EXTRAS) <= {n.strip() for n in re.search(r"\[(.*)\]", declared["dev"][0]).group(1).split(",")}


def test_a_missing_package_names_the_extra_to_install(monkeypatch):
    require_extra("report", "the report")  # installed here
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent module looks like to importlib
    with pytest.raises(MissingExtraError) as caught:
        require_extra("report", "the report")
    assert isinstance(caught.value, InstrecError) and isinstance(caught.value, ImportError)
    assert str(caught.value) == "the report needs matplotlib (not installed): pip install 'instrec[report]'"
