"""The journal inside this process: :func:`bookend.open`."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Sequence

from . import _native
from ._commands import Ack, Commands
from ._errors import error_from_json
from ._stream import POLL_MS, Stream



def _settle(future: asyncio.Future[Ack], ack: str | None, error: str | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error_from_json(error))
    else:
        future.set_result(Ack(json.loads(ack or "{}")))


class Journal(Commands):
    """An open journal. Safe to share between threads and asyncio tasks: calls
    release the GIL while they wait for the disk, and concurrent callers
    share fsyncs. Use it as a context manager, or call :meth:`close`."""

    def __init__(self, native: _native.NativeJournal, directory: str) -> None:
        self._native = native
        #: The journal directory.
        self.dir = directory

    def __repr__(self) -> str:
        state = "closed" if self._native.closed else "open"
        return f"<bookend.Journal {self.dir!r} {state}>"

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Journal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close_async()

    # ---- commands ----

    def _command(self, cmd: dict[str, Any]) -> Ack:
        return Ack(json.loads(self._native.execute(json.dumps(cmd))))

    def _batch(self, cmds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(json.loads(self._native.execute_batch(json.dumps(cmds))))

    async def _command_async(self, cmd: dict[str, Any]) -> Ack:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Ack] = loop.create_future()

        def resolve(ack: str | None, error: str | None) -> None:
            try:
                loop.call_soon_threadsafe(_settle, future, ack, error)
            except RuntimeError:
                pass  # the loop has closed: nobody is waiting any more

        self._native.submit(json.dumps(cmd), resolve)
        return await future

    # ---- queries ----

    def get(self, session_id: str) -> dict[str, Any] | None:
        """The session's row (the shape of ``GET /v1/sessions/{id}``), or ``None``."""
        if not isinstance(session_id, str):
            raise TypeError(f"get(): session_id must be a str, not {type(session_id).__name__}")
        row = self._native.get(session_id)
        return None if row is None else json.loads(row)

    def sessions(self, active: bool | None = None, key: str | None = None, end_reason: str | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
        """Sessions in start order, filtered, at most ``limit`` of them."""
        _check_listing(active, key, end_reason, limit)
        return json.loads(self._native.sessions(active, key, end_reason, limit))

    def pending_finalization(self) -> list[dict[str, Any]]:
        """Sessions ended by expiry whose finalization has not succeeded and has attempts left."""
        return json.loads(self._native.pending_finalization())

    def pending_flush(self, marker: str) -> list[dict[str, Any]]:
        """Ended sessions that have no flush marker ``marker``."""
        if not isinstance(marker, str):
            raise TypeError(f"pending_flush(): marker must be a str, not {type(marker).__name__}")
        return json.loads(self._native.pending_flush(marker))

    def stats(self) -> dict[str, Any]:
        """Identity, LSNs, session counts, ends by reason and consumers (``GET /v1/stats``)."""
        return json.loads(self._native.stats())

    @property
    def open_report(self) -> dict[str, Any]:
        """What open found: ``epoch``, ``unclean``, ``crash_recovered`` ids, ``replayed_events``."""
        return json.loads(self._native.open_report())

    @property
    def journal_id(self) -> str:
        return self._native.journal_id

    @property
    def closed(self) -> bool:
        return self._native.closed

    # ---- consumers ----

    def events(self, consumer: str | None = None, types: Sequence[str] | None = None,
               from_lsn: int | None = None, *, idle_timeout: float | None = None) -> EventStream:
        """Durable events: a named ``consumer`` resumes after its cursor (and holds it
        until the stream is closed); without one, from ``from_lsn`` (default 1).
        Iterate with ``for`` or ``async for``; ``ack(lsn)`` moves the cursor.
        ``idle_timeout`` (seconds) ends the iteration after that long without an event."""
        consumer, types = _check_stream(consumer, types, from_lsn, idle_timeout)
        native = self._native.subscribe(consumer, types, from_lsn)
        return EventStream(native, consumer, idle_timeout)

    def ack(self, consumer: str, lsn: int) -> int:
        """Acknowledges everything up to ``lsn`` for ``consumer``; returns its acked LSN."""
        if not isinstance(consumer, str) or isinstance(lsn, bool) or not isinstance(lsn, int):
            raise TypeError("ack(consumer: str, lsn: int)")
        return self._native.ack_consumer(consumer, lsn)

    # ---- closing ----

    def close(self, reason: str = "restart", sessions: str = "keep") -> Ack | None:
        """Closes the journal: ``close()`` keeps active sessions for the next process
        (``restart``); ``close(reason="shutdown", sessions="end")`` is the shutdown
        drain. Returns the close's ack the first time, ``None`` after."""
        done = self._native.close(reason, sessions)
        return None if done is None else Ack(json.loads(done))

    async def close_async(self, reason: str = "restart", sessions: str = "keep") -> Ack | None:
        """:meth:`close`, awaitable (runs on a worker thread)."""
        return await asyncio.to_thread(self.close, reason, sessions)


def _check_listing(active: Any, key: Any, end_reason: Any, limit: Any) -> None:
    if active is not None and not isinstance(active, bool):
        raise TypeError("sessions(): active must be a bool or None")
    for name, value in (("key", key), ("end_reason", end_reason)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"sessions(): {name} must be a str or None")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise TypeError("sessions(): limit must be a positive int or None")


def _check_stream(consumer: Any, types: Any, from_lsn: Any, idle_timeout: Any) -> tuple[str | None, list[str] | None]:
    if consumer is not None and not isinstance(consumer, str):
        raise TypeError("events(): consumer must be a str or None")
    if isinstance(types, str):
        types = [types]
    if types is not None:
        types = list(types)
        if not all(isinstance(t, str) for t in types):
            raise TypeError("events(): types must be event type names (str)")
    if from_lsn is not None and (isinstance(from_lsn, bool) or not isinstance(from_lsn, int) or from_lsn < 1):
        raise TypeError("events(): from_lsn must be a positive int or None")
    if idle_timeout is not None and (not isinstance(idle_timeout, (int, float)) or idle_timeout < 0):
        raise TypeError("events(): idle_timeout must be seconds (a non-negative number) or None")
    return consumer, types


class EventStream(Stream):
    """The embedded journal's event stream (see :class:`bookend._stream.Stream`)."""

    def __init__(self, native: _native.NativeEvents, consumer: str | None, idle_timeout: float | None) -> None:
        super().__init__(consumer, idle_timeout)
        self._native = native

    def poll(self, timeout: float = 0.0) -> dict[str, Any] | None:
        """The next event, waiting up to ``timeout`` seconds; ``None`` if none came."""
        waited_ms = max(0, int(timeout * 1000))
        while True:
            step = min(POLL_MS, waited_ms)
            text = self._native.next(step)
            if text is not None:
                return json.loads(text)
            waited_ms -= step
            if waited_ms <= 0:
                return None

    def ack(self, lsn: int) -> None:
        """Acknowledges every event up to ``lsn`` (durably, before returning)."""
        if isinstance(lsn, bool) or not isinstance(lsn, int):
            raise TypeError("ack(): lsn must be an int")
        self._native.ack(lsn)

    @property
    def acked(self) -> int | None:
        return self._native.acked

    def close(self) -> None:
        self._native.close()


def open(directory: str | os.PathLike[str], *, durability: str | None = None, on_unclean: str = "end",
         checkpoint_every_events: int | None = None, clock_skew_max_ms: int | None = None,
         store: bool = True, shared_writers: bool = False, writer_check_ms: int = 500) -> Journal:
    """Opens (or creates) the journal in ``directory`` for writing.

    ``durability``: ``"durable"`` (every command after fdatasync) or
    ``"buffered"`` (after the write; synced within milliseconds); the
    default is durable for everything but ``touch``. ``on_unclean``: what to
    do with sessions a crashed process left active: ``"end"`` them
    ``crash_recovered`` or ``"keep"`` them for the gateway to resume.
    ``store=False`` keeps no projection store (every open replays).
    ``shared_writers=True`` writes the journal beside other processes
    opened the same way (a gateway, CLI sessions, cron jobs): each owns the
    sessions it starts, and one killed with -9 has its sessions ended by a
    survivor within about ``writer_check_ms`` milliseconds (no store is
    kept; each process folds the journal at open).
    Raises :class:`Locked` (naming the holder's pid) if another process has
    it: a single writer, or shared writers when this one is not shared.
    """
    if durability is not None and durability not in ("durable", "buffered"):
        raise _invalid(f"durability {durability!r}: use \"durable\" or \"buffered\"")
    if on_unclean not in ("end", "keep"):
        raise _invalid(f"on_unclean {on_unclean!r}: use \"end\" or \"keep\"")
    path = os.fspath(directory)
    check_ms = writer_check_ms if shared_writers else None
    native = _native.NativeJournal(path, durability, on_unclean, checkpoint_every_events,
                                   clock_skew_max_ms, store, check_ms)
    return Journal(native, path)


def _invalid(message: str) -> Exception:
    from ._errors import InvalidArgument
    return InvalidArgument(message)
