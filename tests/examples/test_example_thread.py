"""examples/thread/console_chat.py: a plain script on the thread driver, no poll() calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from example_helpers import Interactive

if TYPE_CHECKING:
    from example_helpers import EchoServer


def test_console_chat_round_trips_typed_lines(echo_server: EchoServer) -> None:
    with Interactive("thread/console_chat.py", echo_server.url("/room/thread")) as chat:
        opened = chat.expect("* connected to ")
        # The handlers run on wsloop's I/O thread, not on the main thread,
        # which sits blocked reading stdin the whole time.
        assert "handlers run on thread 'MainThread'" not in opened, opened

        # Each echo arrives while the main thread waits for the next line:
        # only the I/O thread can have received it and fired the trigger.
        chat.send_line("hello from a thread")
        assert chat.expect("< ") == "< hello from a thread"
        chat.send_line("ünïcödé ✓ 🐍")
        assert chat.expect("< ") == "< ünïcödé ✓ 🐍"

        chat.send_line("/quit")
        assert chat.expect("* closed: ") == "* closed: 1000"
        assert chat.wait() == 0, chat
        assert not chat.stderr, chat

    conn = echo_server.only_connection()
    assert conn.path == "/room/thread"
    assert conn.messages == ["hello from a thread", "ünïcödé ✓ 🐍"]
    assert conn.close_code == 1000


def test_console_chat_end_of_input_closes_after_sending(echo_server: EchoServer) -> None:
    # Lines piped in and the input closed at once: close() right after the
    # sends still lets every message out before the close frame.
    with Interactive("thread/console_chat.py", echo_server.url("/room/thread")) as chat:
        chat.expect("* connected to ")
        for i in range(20):
            chat.send_line(f"line {i}")
        chat.close_stdin()
        assert chat.wait() == 0, chat
        assert chat.stdout[-1] == "* closed: 1000", chat

    conn = echo_server.only_connection()
    assert conn.messages == [f"line {i}" for i in range(20)]
    assert conn.close_code == 1000


def test_console_chat_server_going_away(echo_server: EchoServer) -> None:
    # The server shuts down while the main thread is blocked on stdin: the
    # I/O thread reports it at once; the next send says it is not connected.
    with Interactive("thread/console_chat.py", echo_server.url("/room/thread")) as chat:
        chat.expect("* connected to ")
        chat.send_line("ping")  # once echoed, the main thread is in its input loop
        chat.expect("< ping")
        echo_server.stop()
        assert chat.expect("* closed: ") == "* closed: 1001"
        chat.send_line("anyone there?")
        chat.expect("! not connected")
        assert chat.wait() == 1, chat  # it did not end with a 1000 close
