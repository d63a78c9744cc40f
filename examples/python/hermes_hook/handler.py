"""hermes-style gateway hook: forwards `session:*` gateway events to
`bookend serve` without blocking the gateway's event loop.

`handle` only puts the event on a bounded queue and returns; one background
thread sends the commands, retrying with backoff while bookend is
unreachable. bookend's commands are idempotent (a retried start returns the
original LSN, a second end returns the first), so retries never double an
event.

Settings (environment): BOOKEND_URL (default http://127.0.0.1:7311),
BOOKEND_TOKEN (bearer token, if the server requires one).
"""

import logging
import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from bookend_client import BookendClient, BookendError  # noqa: E402

log = logging.getLogger("bookend.hook")

QUEUE_MAX = 10_000
RETRY_MAX_SECONDS = 30.0

_client = BookendClient(os.environ.get("BOOKEND_URL", "http://127.0.0.1:7311"), os.environ.get("BOOKEND_TOKEN"))
_queue = queue.Queue(maxsize=QUEUE_MAX)


def command_for(event_type, context):
    """The bookend command for a gateway event, or None to ignore it."""
    session_id = context.get("session_id")
    if not session_id:
        return None
    key = context.get("session_key")
    if event_type in ("session:start", "agent:start"):
        return {"cmd": "start", "session_id": session_id, "key": key,
                "platform": context.get("platform"), "user_id": context.get("user_id")}
    if event_type in ("session:end", "session:reset"):
        return {"cmd": "end", "session_id": session_id, "reason": context.get("reason") or "manual_reset"}
    return None


def _send_forever():
    while True:
        cmd = _queue.get()
        delay = 0.1
        while True:
            try:
                _client.command(cmd)
                break
            except BookendError as e:
                # Refused for a reason retrying will not change (for example
                # an unknown session): log it and move on.
                if e.status is None or 400 <= (e.status or 0) < 500:
                    log.warning("bookend refused %s: %s", cmd.get("cmd"), e)
                    break
                log.warning("bookend failed (%s); retrying in %.1fs", e, delay)
            except OSError as e:
                log.warning("bookend unreachable (%s); retrying in %.1fs", e, delay)
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
        _queue.task_done()


threading.Thread(target=_send_forever, name="bookend-hook", daemon=True).start()


async def handle(event_type, context):
    """The hook entry point hermes calls; never blocks the event loop."""
    cmd = command_for(event_type, context)
    if cmd is None:
        return
    try:
        _queue.put_nowait(cmd)
    except queue.Full:
        log.error("bookend hook queue is full (%d); dropping %s for %s", QUEUE_MAX, event_type, cmd["session_id"])


def drain(timeout=10.0):
    """Waits until every queued command was sent (for shutdown and tests)."""
    deadline = time.monotonic() + timeout
    while _queue.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    return _queue.unfinished_tasks == 0
