"""A ten-line gateway: every lifecycle change goes to bookend first."""
from bookend_client import BookendClient

bookend = BookendClient("http://127.0.0.1:7311")
bookend.start("s1", key="telegram:42", platform="telegram", user_id="u1")  # user says hi
bookend.touch("s1")                                                        # more messages
bookend.start("s2", key="telegram:42")                  # auto-reset: s1 ends `superseded`
bookend.expire(idle_minutes=30)                         # the expiry watcher's tick
for s in bookend.sessions(end_reason="idle_expiry"):    # memory hooks, once each
    bookend.flush(s["session_id"], "memory"); bookend.finalized(s["session_id"])
print(bookend.sessions(active=True))
