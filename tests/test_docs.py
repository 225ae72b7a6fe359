"""The documentation that is generated from code stays true to it."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("model", "name"), [("payments.Payment", "payment"), ("orders.Order", "order")])
def test_state_diagrams_match_the_code(model, name):
    result = subprocess.run([sys.executable, "manage.py", "graph_transitions", model], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    committed = (ROOT / "docs" / "diagrams" / f"{name}.dot").read_text()
    assert sorted(result.stdout.split("\n")) == sorted(committed.split("\n")), (
        "docs/diagrams is out of date: run scripts/diagrams")
