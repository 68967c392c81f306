"""The asyncio example: a bot and a web page on one event loop, against a real relay."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import wsloop
from wsloop.testing import serve_relay

EXAMPLE = Path(__file__).parents[2] / "examples" / "asyncio" / "status_page.py"


def test_bot_and_web_page_share_one_loop() -> None:
    with serve_relay() as relay:
        url = relay.url + "/room/status-test"
        # A second member of the room says something; the bot relays nothing
        # back to its sender, so the page must show what the other member said.
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), url, "--http-port", "0", "--exit-after", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            http_port = int(proc.stdout.readline())
            other = wsloop.WebSocket()
            other.connect(url)
            assert other.wait_open(10)
            # The bot may still be joining: say it until the page shows it.
            page = ""
            for _ in range(100):
                other.send_text("hello <from> the other member")
                other.poll(0.05)
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=10) as r:
                    page = r.read().decode()
                if "hello &lt;from&gt; the other member" in page:
                    break
            assert "hello &lt;from&gt; the other member" in page  # escaped HTML
            assert "connection: open" in page
            other.close()
            assert other.wait_closed(10)
            assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
