"""A standard-library-only client for `bookend serve`.

    from bookend_client import BookendClient
    bookend = BookendClient("http://127.0.0.1:7311")
    bookend.start("s1", key="telegram:42", platform="telegram", user_id="u1")
    bookend.end("s1", "idle_expiry")
    for event in bookend.events(consumer="memory-hooks"):
        ...
        bookend.ack("memory-hooks", event["lsn"])

Every command is idempotent where it matters (a retried start returns the
original LSN, a second end returns the first end), so retrying after a
connection error is safe.
"""

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request


class BookendError(Exception):
    """A command bookend refused, or an HTTP error, with its `kind`."""

    def __init__(self, kind, message, status=None):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.status = status


class BookendClient:
    def __init__(self, base_url="http://127.0.0.1:7311", token=None, timeout=10.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # ---- plumbing ----

    def _headers(self, extra=None):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                error = json.loads(e.read())["error"]
            except Exception:
                error = {"kind": "http", "message": str(e)}
            raise BookendError(error["kind"], error["message"], e.code) from None

    # ---- commands ----

    def command(self, cmd):
        """Sends one command; returns its ack, or raises BookendError."""
        ack = self._request("POST", "/v1/commands", cmd)
        if not ack.get("ok"):
            raise BookendError(ack["error"]["kind"], ack["error"]["message"])
        return ack

    def commands(self, cmds):
        """Sends several commands in one request (they share fsyncs);
        returns the acks, errors included, in order."""
        return self._request("POST", "/v1/commands", list(cmds))

    def start(self, session_id=None, key=None, **fields):
        cmd = {"cmd": "start", "key": key, **fields}
        if session_id is not None:
            cmd["session_id"] = session_id
        return self.command(cmd)

    def touch(self, session_id):
        return self.command({"cmd": "touch", "session_id": session_id})

    def flush(self, session_id, marker):
        return self.command({"cmd": "flush", "session_id": session_id, "marker": marker})

    def end(self, session_id, reason):
        return self.command({"cmd": "end", "session_id": session_id, "reason": reason})

    def reopen(self, session_id, reason="resume"):
        return self.command({"cmd": "reopen", "session_id": session_id, "reason": reason})

    def expire(self, idle_minutes=None, daily_at_hour=None):
        cmd = {"cmd": "expire"}
        if idle_minutes is not None:
            cmd["idle_minutes"] = idle_minutes
        if daily_at_hour is not None:
            cmd["daily_at_hour"] = daily_at_hour
        return self.command(cmd)

    def finalized(self, session_id):
        return self.command({"cmd": "finalized", "session_id": session_id})

    def finalize_failed(self, session_id, error):
        return self.command({"cmd": "finalize_failed", "session_id": session_id, "error": error})

    def reap(self, ttl_ms):
        return self.command({"cmd": "reap", "ttl_ms": ttl_ms})

    # ---- queries ----

    def sessions_page(self, active=None, key=None, end_reason=None, limit=None, after=None):
        """One page: {"sessions": [...], "next": LSN or None}, in start order."""
        query = {"active": None if active is None else ("true" if active else "false"),
                 "key": key, "end_reason": end_reason, "limit": limit, "after": after}
        query = {k: v for k, v in query.items() if v is not None}
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        return self._request("GET", "/v1/sessions" + suffix)

    def sessions(self, active=None, key=None, end_reason=None):
        """Every matching session, page by page, in start order."""
        out, after = [], None
        while True:
            page = self.sessions_page(active, key, end_reason, limit=1000, after=after)
            out.extend(page["sessions"])
            after = page["next"]
            if after is None:
                return out

    def session(self, session_id):
        try:
            return self._request("GET", "/v1/sessions/" + urllib.parse.quote(session_id, safe=""))
        except BookendError as e:
            if e.status == 404:
                return None
            raise

    def health(self):
        return self._request("GET", "/v1/health")

    # ---- events ----

    def ack(self, consumer, lsn):
        """The consumer has processed everything up to `lsn`."""
        return self._request("POST", f"/v1/consumers/{urllib.parse.quote(consumer, safe='')}/ack", {"lsn": lsn})

    def events(self, from_lsn=None, consumer=None, types=None, last_event_id=None, read_timeout=None):
        """Yields events (dicts) from the Server-Sent Events stream: catch-up
        from disk, then live. With `consumer`, starts after its cursor."""
        query = {}
        if from_lsn is not None:
            query["from"] = str(from_lsn)
        if consumer is not None:
            query["consumer"] = consumer
        if types:
            query["type"] = ",".join(types)
        url = urllib.parse.urlsplit(self.base_url)
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=read_timeout)
        headers = self._headers({"Accept": "text/event-stream"})
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        connection.request("GET", "/v1/events?" + urllib.parse.urlencode(query), headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            error = json.loads(response.read())["error"]
            raise BookendError(error["kind"], error["message"], response.status)
        try:
            data = []
            while True:
                line = response.readline()
                if not line:
                    return
                line = line.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "" and data:
                    yield json.loads("\n".join(data))
                    data = []
        finally:
            connection.close()


def consume(client, consumer, handle, types=None, stop=lambda: False, retry_seconds=1.0):
    """Runs `handle(event)` for every event after the consumer's cursor,
    acknowledging each one after `handle` returns. Reconnects after errors
    and resumes from the cursor, so delivery is at-least-once: make
    `handle` idempotent (or store its effect with the LSN)."""
    while not stop():
        try:
            for event in client.events(consumer=consumer, types=types, read_timeout=30):
                handle(event)
                client.ack(consumer, event["lsn"])
                if stop():
                    return
        except (OSError, http.client.HTTPException, BookendError) as e:
            if isinstance(e, BookendError) and e.status == 400:
                raise
            time.sleep(retry_seconds)
