"""examples/browser/pygbag/main.py on the desktop, headless: the same game loop pygbag runs.

pygbag itself cannot run here (its runtime is not a PyPI or npm package), so
this checks the example's code on the poll driver; the browser side of the
pygbag path is the ``pygbag_shim`` case of battery.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from servers import WebsocketsServer

pytest.importorskip("pygame", reason="pygame-ce is not installed")

MAIN = Path(__file__).resolve().parents[2] / "examples" / "browser" / "pygbag" / "main.py"


def test_dots_game_loop_headless(ws_server: WebsocketsServer) -> None:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    url = f"ws://127.0.0.1:{ws_server.port}/pygbag/dots"
    done = subprocess.run(
        [sys.executable, str(MAIN), url, "--frames", "45", "--bot"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["frames"] == 45, report
    # The echo server sent our positions back; they arrived through poll().
    assert report["received"] >= 10, report
    assert report["close_code"] == 1000, report
    sent = [e for e in ws_server.log.entries("/pygbag/dots") if e[0] == "text"]
    assert len(sent) >= 10 and json.loads(sent[0][1]).keys() == {"id", "x", "y"}, sent[:3]
