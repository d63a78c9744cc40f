"""A gateway in a dozen lines: every lifecycle change goes to bookend first.

Runs to completion against `bookend serve` on BOOKEND_URL (default
http://127.0.0.1:7311), and can be run again: its ids are fresh each run.
"""
import os
import uuid

from bookend_client import BookendClient

bookend = BookendClient(os.environ.get("BOOKEND_URL", "http://127.0.0.1:7311"))
run = uuid.uuid4().hex[:8]
chat = f"telegram:{run}"
bookend.start(f"{run}-1", key=chat, platform="telegram", user_id="u1")   # a user says hi
bookend.touch(f"{run}-1")                                                # more messages
bookend.start(f"{run}-2", key=chat)                 # auto-reset: the first session ends `superseded`
bookend.end(f"{run}-2", "idle_expiry")              # what the expiry watcher would do
for s in bookend.sessions(end_reason="idle_expiry"):    # memory hooks, once each
    if s["session_id"].startswith(run) and not s["expiry_finalized"]:
        bookend.flush(s["session_id"], "memory")
        bookend.finalized(s["session_id"])
print([s["session_id"] for s in bookend.sessions(key=chat)])
