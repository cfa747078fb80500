"""A real linli-server on loopback for the story tests (LINLI_SERVER_BIN)."""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.environ["LINLI_PY_BINDINGS"])


@pytest.fixture
def server(tmp_path):
    proc = subprocess.Popen(
        [os.environ["LINLI_SERVER_BIN"], "--listen", "127.0.0.1:0", "--open-spaces", "--data-dir", str(tmp_path / "server")],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stderr:
            entry = json.loads(line)
            if entry.get("msg") == "listening":
                yield "http://" + entry["addr"]
                break
        else:
            raise RuntimeError("linli-server did not start")
    finally:
        proc.kill()
        proc.wait()
