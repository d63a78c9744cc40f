"""A gateway in a dozen lines: every lifecycle change goes to bookend first.

Runs to completion against `bookend serve` on BOOKEND_URL (default
http://127.0.0.1:7311), and can be run again: its ids are fresh each run.
Embedded instead of served? Replace `bookend.connect(...)` with
`bookend.open("journal-dir")`: the rest is the same.
"""
import os
import uuid

import bookend

journal = bookend.connect(os.environ.get("BOOKEND_URL", "http://127.0.0.1:7311"))
run = uuid.uuid4().hex[:8]
chat = f"telegram:{run}"
journal.start(f"{run}-1", key=chat, platform="telegram", user_id="u1")   # a user says hi
journal.touch(f"{run}-1")                                                # more messages
journal.start(f"{run}-2", key=chat)                 # auto-reset: the first session ends `superseded`
journal.end(f"{run}-2", "idle_expiry")              # what the expiry watcher would do
for s in journal.pending_finalization():            # memory hooks, once each, even after a restart
    if s["session_id"].startswith(run):
        journal.flush(s["session_id"], "memory")
        journal.finalized(s["session_id"])
print([s["session_id"] for s in journal.sessions(key=chat)])
