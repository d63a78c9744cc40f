"""bookend: an embedded, event-sourced session journal for chat and agent gateways.

Embedded (the journal lives in this process)::

    import bookend

    with bookend.open("/var/lib/gateway/bookend") as journal:
        ack = journal.start(key="telegram:42", platform="telegram", user_id="u1")
        journal.end(ack.session_id, "idle_expiry")

Against a running ``bookend serve``, the same methods, answers and exceptions::

    journal = bookend.connect("http://127.0.0.1:7311")

Every command method has an ``..._async`` twin for asyncio
(``await journal.start_async(...)``), which never blocks the event loop;
many tasks awaiting at once share fsyncs. Errors are :class:`BookendError`
subclasses named after the JSON error kinds (``bookend.SessionEnded`` is
``"session_ended"``).
"""

from __future__ import annotations

from ._commands import Ack
from ._embedded import EventStream, Journal, open
from ._client import Client, ClientEventStream
from ._errors import *  # noqa: F403 - the exception classes
from ._errors import BY_KIND, BookendError, CommandRefused, JournalFailure, error_for
from . import _native

__version__: str = _native.VERSION


def connect(url: str = "http://127.0.0.1:7311", token: str | None = None, timeout: float = 30.0) -> Client:
    """A client of ``bookend serve`` at ``url``, with the bearer ``token`` if the
    server wants one; ``timeout`` (seconds) bounds each request."""
    return Client(url, token=token, timeout=timeout)


__all__ = [
    "Ack", "BY_KIND", "BookendError", "Client", "ClientEventStream", "CommandRefused", "EventStream",
    "Journal", "JournalFailure", "connect", "error_for", "open",
    *sorted(cls.__name__ for cls in BY_KIND.values()),
]
