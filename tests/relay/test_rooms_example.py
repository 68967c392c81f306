"""The room example (``examples/poll/room_chat.py``) runs its own self-test, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from relay_support import WAIT

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "poll" / "room_chat.py"


def test_room_chat_self_test():
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--self-test"],
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], report
    assert "* ann dropped" in report["bob"] and "* ann left" in report["bob"]
