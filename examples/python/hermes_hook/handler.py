"""hermes gateway hook: forwards `session:*` gateway events to `bookend
serve` without blocking the gateway's event loop.

hermes emits `session:start` with the session id and its key, but
`session:end` and `session:reset` with only `platform`, `user_id` and
`session_key`: those become bookend's keyed end, which ends whatever is
active on the key (and is a no-op for the reset that follows the end).
`agent:start` records activity.

`handle` only puts the command on a bounded queue and returns; one
background thread sends the commands, retrying with backoff while bookend
is unreachable. bookend's commands are idempotent (a retried start returns
the original LSN, a second end returns the first), so retries never double
an event. Standard library only, and nothing imported from outside this
folder, so the folder can be copied to ~/.hermes/hooks/ as it is.

Settings (environment): BOOKEND_URL (default http://127.0.0.1:7311),
BOOKEND_TOKEN (bearer token, if the server requires one).
"""

import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request

log = logging.getLogger("bookend.hook")

QUEUE_MAX = 10_000
RETRY_MAX_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0

_url = os.environ.get("BOOKEND_URL", "http://127.0.0.1:7311").rstrip("/")
_token = os.environ.get("BOOKEND_TOKEN")
_queue = queue.Queue(maxsize=QUEUE_MAX)


class Refused(Exception):
    """bookend answered and refused: retrying will not change that."""


def command_for(event_type, context):
    """The bookend command for a hermes gateway event, or None to ignore it."""
    session_id = context.get("session_id")
    key = context.get("session_key")
    if event_type == "session:start" and session_id:
        return {"cmd": "start", "session_id": session_id, "key": key,
                "platform": context.get("platform") or None, "user_id": context.get("user_id") or None}
    if event_type in ("session:end", "session:reset") and key:
        return {"cmd": "end", "key": key, "reason": "manual_reset"}
    if event_type == "agent:start" and session_id:
        return {"cmd": "touch", "session_id": session_id}
    return None


def _send(cmd):
    body = json.dumps({k: v for k, v in cmd.items() if v is not None}).encode()
    headers = {"Content-Type": "application/json"}
    if _token:
        headers["Authorization"] = "Bearer " + _token
    request = urllib.request.Request(_url + "/v1/commands", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as answer:
            ack = json.loads(answer.read())
    except urllib.error.HTTPError as e:
        if 400 <= e.code < 500:
            raise Refused(f"HTTP {e.code}: {e.read()[:200]!r}") from e
        raise OSError(f"HTTP {e.code}") from e
    if not ack.get("ok"):
        raise Refused(ack.get("error"))
    return ack


def _send_forever():
    while True:
        cmd = _queue.get()
        delay = 0.1
        while True:
            try:
                _send(cmd)
                break
            except Refused as e:
                # An unknown session's touch (a session older than the hook),
                # for example: log it and move on.
                log.warning("bookend refused %s: %s", cmd["cmd"], e)
                break
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
        log.error("bookend hook queue is full (%d); dropping %s", QUEUE_MAX, event_type)


def drain(timeout=10.0):
    """Waits until every queued command was sent (for shutdown and tests)."""
    deadline = time.monotonic() + timeout
    while _queue.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    return _queue.unfinished_tasks == 0
