"""The same API over HTTP: :func:`bookend.connect` to a ``bookend serve``.

Standard library only. Each thread keeps one keep-alive connection; event
streams are Server-Sent Events read by a thread of their own.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import queue
import threading
import urllib.parse
import weakref
from typing import Any, Sequence

from ._commands import Ack, Commands
from ._embedded import _check_listing, _check_stream
from ._errors import BookendError, Unavailable, error_from_json, error_for
from ._stream import Stream

#: Sessions asked for per page when listing (the server's maximum).
_PAGE = 1000


class Client(Commands):
    """A journal served by ``bookend serve``, with the methods, answers and
    exceptions of :class:`bookend.Journal`. ``close()`` closes this client's
    connections; the server's journal stays open (stop the server to close it)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"connect(): {url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        self._parts = parts
        self._token = token
        self._timeout = timeout
        self._local = threading.local()
        self._closed = False
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<bookend.Client {self.url!r}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ----

    def _connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        return cls(self._parts.hostname, self._parts.port, timeout=timeout or self._timeout)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self._closed:
            raise error_for("closed", f"this client of {self.url} is closed")
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = self._local.conn = self._connection()
            try:
                conn.request(method, self._parts.path.rstrip("/") + path, body=data, headers=self._headers())
                response = conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A kept-alive connection the server had closed: the request
                # never reached it, so sending it again is safe, once.
                conn.close()
                self._local.conn = None
                if not reused or attempt:
                    raise Unavailable(f"{self.url}: {e}") from None
            except OSError as e:
                conn.close()
                self._local.conn = None
                raise Unavailable(f"{self.url} cannot be reached: {e}") from None
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            raise error_for("http", f"{method} {path}: HTTP {response.status}, not JSON", status=response.status) from None
        if response.status >= 400:
            error = answer.get("error") if isinstance(answer, dict) else None
            if isinstance(error, dict):
                raise error_from_json(error, response.status)
            raise error_for("http", f"{method} {path}: HTTP {response.status}", status=response.status)
        return response.status, answer

    def _command(self, cmd: dict[str, Any]) -> Ack:
        _, ack = self._request("POST", "/v1/commands", cmd)
        if not isinstance(ack, dict):
            raise error_for("http", f"the server answered a command with {ack!r}")
        if not ack.get("ok"):
            raise error_from_json(ack.get("error") or {"kind": "http", "message": repr(ack)})
        return Ack(ack)

    def _batch(self, cmds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        _, acks = self._request("POST", "/v1/commands", cmds)
        if not isinstance(acks, list) or len(acks) != len(cmds):
            raise error_for("http", f"the server answered a batch of {len(cmds)} with {acks!r:.200}")
        return acks

    async def _command_async(self, cmd: dict[str, Any]) -> Ack:
        # Commands awaited together go to the server as one request (an
        # array), so they share one fsync there; the request runs on a
        # worker thread, never on the event loop.
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _Batcher(self, loop)
        return await batcher.add(cmd)

    # ---- queries ----

    def get(self, session_id: str) -> dict[str, Any] | None:
        """The session's row, or ``None``."""
        if not isinstance(session_id, str):
            raise TypeError(f"get(): session_id must be a str, not {type(session_id).__name__}")
        try:
            return self._request("GET", "/v1/sessions/" + urllib.parse.quote(session_id, safe=""))[1]
        except BookendError as e:
            if e.kind == "unknown_session":
                return None
            raise

    def sessions(self, active: bool | None = None, key: str | None = None, end_reason: str | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
        """Sessions in start order, filtered, at most ``limit`` (pages through the server)."""
        _check_listing(active, key, end_reason, limit)
        query: dict[str, str] = {}
        if active is not None:
            query["active"] = "true" if active else "false"
        if key is not None:
            query["key"] = key
        if end_reason is not None:
            query["end_reason"] = end_reason
        rows: list[dict[str, Any]] = []
        after = 0
        while limit is None or len(rows) < limit:
            page = _PAGE if limit is None else min(_PAGE, limit - len(rows))
            params = urllib.parse.urlencode({**query, "limit": page, "after": after})
            _, answer = self._request("GET", f"/v1/sessions?{params}")
            rows.extend(answer["sessions"])
            if answer.get("next") is None:
                break
            after = answer["next"]
        return rows

    def pending_finalization(self) -> list[dict[str, Any]]:
        """Sessions ended by expiry whose finalization has not succeeded and has attempts left."""
        return self._request("GET", "/v1/pending/finalization")[1]["sessions"]

    def pending_flush(self, marker: str) -> list[dict[str, Any]]:
        """Ended sessions that have no flush marker ``marker``."""
        if not isinstance(marker, str):
            raise TypeError(f"pending_flush(): marker must be a str, not {type(marker).__name__}")
        return self._request("GET", "/v1/pending/flush/" + urllib.parse.quote(marker, safe=""))[1]["sessions"]

    def stats(self) -> dict[str, Any]:
        """The server's journal: identity, LSNs, session counts, ends by reason, consumers."""
        return self._request("GET", "/v1/stats")[1]

    @property
    def journal_id(self) -> str:
        return self.stats()["journal_id"]

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- consumers ----

    def events(self, consumer: str | None = None, types: Sequence[str] | None = None,
               from_lsn: int | None = None, *, idle_timeout: float | None = None) -> ClientEventStream:
        """Durable events over Server-Sent Events, like :meth:`bookend.Journal.events`."""
        consumer, types = _check_stream(consumer, types, from_lsn, idle_timeout)
        query: dict[str, str] = {}
        if consumer is not None:
            query["consumer"] = consumer
        if from_lsn is not None:
            query["from"] = str(from_lsn)
        if types:
            query["type"] = ",".join(types)
        return ClientEventStream(self, "/v1/events?" + urllib.parse.urlencode(query), consumer, idle_timeout)

    def ack(self, consumer: str, lsn: int) -> int:
        """Acknowledges everything up to ``lsn`` for ``consumer``; returns its acked LSN."""
        if not isinstance(consumer, str) or isinstance(lsn, bool) or not isinstance(lsn, int):
            raise TypeError("ack(consumer: str, lsn: int)")
        path = f"/v1/consumers/{urllib.parse.quote(consumer, safe='')}/ack"
        return self._request("POST", path, {"lsn": lsn})[1]["acked_lsn"]

    def close(self, reason: str = "restart", sessions: str = "keep") -> None:
        """Closes this client's connections (the server keeps its journal open)."""
        self._closed = True
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    async def close_async(self, reason: str = "restart", sessions: str = "keep") -> None:
        self.close(reason, sessions)


class _Batcher:
    """Collects the commands of one event loop into requests of up to
    ``_BATCH_MAX``, with at most ``_BATCHES_IN_FLIGHT`` requests at once."""

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[Ack]]] = []
        self._in_flight = 0

    def add(self, cmd: dict[str, Any]) -> asyncio.Future[Ack]:
        future: asyncio.Future[Ack] = self._loop.create_future()
        self._waiting.append((cmd, future))
        if len(self._waiting) == 1:
            self._loop.call_soon(self._send)
        return future

    def _send(self) -> None:
        while self._waiting and self._in_flight < _BATCHES_IN_FLIGHT:
            batch, self._waiting = self._waiting[:_BATCH_MAX], self._waiting[_BATCH_MAX:]
            self._in_flight += 1
            self._loop.create_task(self._run(batch))

    async def _run(self, batch: list[tuple[dict[str, Any], asyncio.Future[Ack]]]) -> None:
        try:
            _, acks = await asyncio.to_thread(self._client._request, "POST", "/v1/commands",
                                              [cmd for cmd, _ in batch])
            for (_, future), ack in zip(batch, acks, strict=True):
                if future.done():
                    continue
                if ack.get("ok"):
                    future.set_result(Ack({k: v for k, v in ack.items() if k != "index"}))
                else:
                    future.set_exception(error_from_json(ack["error"]))
        except BaseException as e:  # noqa: BLE001 - every waiter is told
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
        finally:
            self._in_flight -= 1
            self._send()


#: Commands per request from the asyncio face, and requests at once.
_BATCH_MAX = 256
_BATCHES_IN_FLIGHT = 4


class ClientEventStream(Stream):
    """An SSE stream, read by a thread into a queue; the same face as
    :class:`bookend.EventStream`."""

    def __init__(self, client: Client, path: str, consumer: str | None, idle_timeout: float | None) -> None:
        super().__init__(consumer, idle_timeout)
        self._client = client
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=4096)
        self._acked: int | None = None
        self._conn = client._connection(timeout=None)
        headers = client._headers()
        headers["Accept"] = "text/event-stream"
        try:
            self._conn.request("GET", client._parts.path.rstrip("/") + path, headers=headers)
            response = self._conn.getresponse()
        except OSError as e:
            self._conn.close()
            raise Unavailable(f"{client.url} cannot be reached: {e}") from None
        if response.status != 200:
            raw = response.read()
            self._conn.close()
            try:
                error = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                error = {"kind": "http", "message": f"GET {path}: HTTP {response.status}"}
            raise error_from_json(error, response.status)
        self._thread = threading.Thread(target=self._read, args=(response,), daemon=True,
                                        name="bookend-sse")
        self._thread.start()

    def _read(self, response: http.client.HTTPResponse) -> None:
        data: list[str] = []
        try:
            for raw in response:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif line == "" and data:
                    self._queue.put(json.loads("\n".join(data)))
                    data = []
        except Exception:  # noqa: BLE001
            # The server ended the stream, or close() shut the socket under
            # the reading thread (http.client then fails in several ways):
            # either way the stream is over, which the None below says.
            pass
        self._queue.put(None)

    def poll(self, timeout: float = 0.0) -> dict[str, Any] | None:
        """The next event, waiting up to ``timeout`` seconds; ``None`` if none came."""
        try:
            event = self._queue.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return None
        if event is None:
            self._queue.put(None)
            raise error_for("closed", "the server ended this event stream")
        return event

    def ack(self, lsn: int) -> None:
        """Acknowledges every event up to ``lsn`` for this stream's consumer."""
        if self.consumer is None:
            return
        self._acked = self._client.ack(self.consumer, lsn)

    @property
    def acked(self) -> int | None:
        return self._acked

    def close(self) -> None:
        """Ends the stream (the server lets go of the consumer's cursor)."""
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(2)
            except OSError:
                pass
        self._conn.close()
        self._thread.join(timeout=5)
