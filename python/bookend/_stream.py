"""What both event streams share: iteration, sync and async, and the
context manager. Each face supplies ``poll``, ``ack`` and ``close``."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterator

#: How long one wait lasts before Python gets control back (to notice
#: Ctrl-C, a closed stream or an idle timeout).
POLL_MS = 200


class Stream:
    """Events in LSN order, as dicts in the JSON shape of ``bookend tail``.
    A context manager; ``close()`` lets go of the consumer's cursor."""

    def __init__(self, consumer: str | None, idle_timeout: float | None) -> None:
        self.consumer = consumer
        self._idle = idle_timeout

    def poll(self, timeout: float = 0.0) -> dict[str, Any] | None:  # pragma: no cover - each face has its own
        raise NotImplementedError

    def ack(self, lsn: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            event = self.poll(self._idle if self._idle is not None else 3600.0)
            if event is None:
                if self._idle is not None:
                    return
                continue
            yield event

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        # Short waits on a worker thread, so a cancelled task leaves no
        # thread blocked for long.
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            event = await asyncio.to_thread(self.poll, POLL_MS / 1000)
            if event is not None:
                quiet_since = loop.time()
                yield event
            elif self._idle is not None and loop.time() - quiet_since >= self._idle:
                return

    async def ack_async(self, lsn: int) -> None:
        """:meth:`ack`, awaitable (the acknowledgement runs on a worker thread)."""
        await asyncio.to_thread(self.ack, lsn)
