"""The command methods both faces share: :class:`bookend.Journal` (embedded)
and :class:`bookend.Client` (over HTTP) build the same command objects of
the command language (docs/cli.md) and get the same :class:`Ack` back.

Arguments are checked here, before anything is sent: a wrong type raises
``TypeError``; a value the rules refuse raises the ``bookend`` exception of
its kind. Either way nothing was appended.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ._errors import BookendError, error_from_json


class Ack(dict):
    """A command's answer: the ack JSON as a dict, with attributes for its fields.

    ``lsn`` answers the command (the session's start for ``start``, its end
    for ``end``...; ``None`` when nothing was due); ``events`` lists every
    event appended when there was more than one; ``duplicate`` says the
    command had already been done and nothing was appended.
    """

    @property
    def lsn(self) -> int | None:
        return self.get("lsn")

    @property
    def session_id(self) -> str | None:
        return self.get("session_id")

    @property
    def duplicate(self) -> bool:
        return bool(self.get("duplicate", False))

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self.get("events", []))


def _text(command: str, name: str, value: Any, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise TypeError(f"{command}() needs {name}")
        return None
    if not isinstance(value, str):
        raise TypeError(f"{command}(): {name} must be a str, not {type(value).__name__}")
    return value


def _count(command: str, name: str, value: Any, *, required: bool = False) -> int | None:
    if value is None:
        if required:
            raise TypeError(f"{command}() needs {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{command}(): {name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{command}(): {name} must not be negative, not {value}")
    return value


def _attrs(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"start(): attrs must be a dict of str to str, not {type(value).__name__}")
    for name, item in value.items():
        if not isinstance(name, str) or not isinstance(item, str):
            raise TypeError(f"start(): attrs must map str to str; {name!r}: {type(item).__name__}")
    return dict(value)


def _command(cmd: str, at: Any, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"cmd": cmd}
    out.update({name: value for name, value in fields.items() if value is not None})
    if at is not None:
        out["at"] = _count(cmd, "at", at)
    return out


class Commands:
    """``start``, ``touch``, ``flush``, ``end``, ``reopen``, ``expire``,
    ``finalized``, ``finalize_failed`` and ``reap``, each with an
    ``..._async`` twin to ``await`` from asyncio. ``at`` (milliseconds since
    the epoch) dates a command, for simulations; the default is now."""

    def _command(self, cmd: dict[str, Any]) -> Ack:  # pragma: no cover - each face has its own
        raise NotImplementedError

    async def _command_async(self, cmd: dict[str, Any]) -> Ack:  # pragma: no cover
        raise NotImplementedError

    def _batch(self, cmds: list[dict[str, Any]]) -> list[dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def batch(self, commands: Sequence[Mapping[str, Any]]) -> list[Ack | BookendError]:
        """Runs ``commands`` (objects of the command language, for example
        ``{"cmd": "start", "session_id": "s1", "key": "k"}``) in order as one
        batch and returns once all are durable: one answer per command, in
        order, an :class:`Ack` or, for a command the rules refused, the
        ``bookend`` exception of its kind (returned, not raised: the others
        went on). Later commands see what earlier ones did. Each command is
        atomic on its own; a crash keeps a prefix of the batch. The whole
        batch shares one fsync, so 1 000 commands cost about what one does.
        ``close`` cannot be part of a batch."""
        if isinstance(commands, (str, bytes, Mapping)):
            raise TypeError("batch() takes a list of command objects")
        cmds: list[dict[str, Any]] = []
        for i, cmd in enumerate(commands):
            if not isinstance(cmd, Mapping):
                raise TypeError(f"batch(): command {i} must be a dict, not {type(cmd).__name__}")
            cmds.append(dict(cmd))
        if not cmds:
            return []
        answers: list[Ack | BookendError] = []
        for answer in self._batch(cmds):
            if answer.get("ok"):
                answers.append(Ack(answer))
            else:
                answers.append(error_from_json(answer.get("error") or {"kind": "error", "message": repr(answer)}))
        return answers

    # ---- building commands (shared by the sync and async methods) ----

    @staticmethod
    def _start(session_id: Any = None, key: Any = None, platform: Any = None, user_id: Any = None,
               source: Any = None, parent_id: Any = None, attrs: Any = None, supersede: Any = True,
               at: Any = None) -> dict[str, Any]:
        if not isinstance(supersede, bool):
            raise TypeError(f"start(): supersede must be a bool, not {type(supersede).__name__}")
        return _command(
            "start", at,
            session_id=_text("start", "session_id", session_id), key=_text("start", "key", key),
            platform=_text("start", "platform", platform), user_id=_text("start", "user_id", user_id),
            source=_text("start", "source", source), parent_id=_text("start", "parent_id", parent_id),
            attrs=_attrs(attrs), supersede=None if supersede else False,
        )

    @staticmethod
    def _end(session_id: Any = None, reason: Any = None, key: Any = None, at: Any = None) -> dict[str, Any]:
        _text("end", "reason", reason, required=True)
        if (session_id is None) == (key is None):
            raise TypeError("end() needs session_id or key (one of them)")
        return _command("end", at, session_id=_text("end", "session_id", session_id),
                        key=_text("end", "key", key), reason=reason)

    @staticmethod
    def _expire(idle_minutes: Any = None, daily_at_hour: Any = None, utc_offset_minutes: Any = None,
                at: Any = None) -> dict[str, Any]:
        if idle_minutes is None and daily_at_hour is None:
            raise TypeError("expire() needs idle_minutes, daily_at_hour, or both")
        if utc_offset_minutes is not None and (isinstance(utc_offset_minutes, bool)
                                               or not isinstance(utc_offset_minutes, int)):
            raise TypeError("expire(): utc_offset_minutes must be an int")
        return _command("expire", at, idle_minutes=_count("expire", "idle_minutes", idle_minutes),
                        daily_at_hour=_count("expire", "daily_at_hour", daily_at_hour),
                        utc_offset_minutes=utc_offset_minutes)

    @staticmethod
    def _one(cmd: str, session_id: Any, at: Any, **fields: Any) -> dict[str, Any]:
        checked = {name: _text(cmd, name, value, required=True) for name, value in fields.items()}
        return _command(cmd, at, session_id=_text(cmd, "session_id", session_id, required=True), **checked)

    # ---- the commands ----

    def start(self, session_id: str | None = None, key: str | None = None, platform: str | None = None,
              user_id: str | None = None, source: str | None = None, parent_id: str | None = None,
              attrs: Mapping[str, str] | None = None, *, supersede: bool = True, at: int | None = None) -> Ack:
        """Starts a session (a UUIDv7 is minted without ``session_id``). A start on a
        key with an active session ends that one ``superseded`` (``supersede=False``
        raises :class:`KeyBusy` instead). A retried start returns the original LSN."""
        return self._command(self._start(session_id, key, platform, user_id, source, parent_id, attrs,
                                         supersede, at))

    def touch(self, session_id: str, *, at: int | None = None) -> Ack:
        """Records activity (buffered, coalesced: ``lsn`` is ``None`` when coalesced)."""
        return self._command(self._one("touch", session_id, at))

    def flush(self, session_id: str, marker: str, *, at: int | None = None) -> Ack:
        """Records that ``marker`` (e.g. ``"memory"``) was flushed for the session, once."""
        return self._command(self._one("flush", session_id, at, marker=marker))

    def end(self, session_id: str | None = None, reason: str | None = None, *, key: str | None = None,
            at: int | None = None) -> Ack:
        """Ends a session by id, or the active session of ``key``. The first end wins;
        a repeat returns it with ``duplicate`` set."""
        return self._command(self._end(session_id, reason, key, at))

    def reopen(self, session_id: str, reason: str = "resume", *, at: int | None = None) -> Ack:
        """Reopens an ended session (a new span)."""
        return self._command(self._one("reopen", session_id, at, reason=reason))

    def expire(self, idle_minutes: int | None = None, daily_at_hour: int | None = None, *,
               utc_offset_minutes: int | None = None, at: int | None = None) -> Ack:
        """Ends every session idle for ``idle_minutes`` or past the daily reset hour."""
        return self._command(self._expire(idle_minutes, daily_at_hour, utc_offset_minutes, at))

    def finalized(self, session_id: str, *, at: int | None = None) -> Ack:
        """Records that an expired session's finalization (memory hooks) succeeded."""
        return self._command(self._one("finalized", session_id, at))

    def finalize_failed(self, session_id: str, error: str, *, at: int | None = None) -> Ack:
        """Records a failed finalization attempt (retried until the attempts run out)."""
        return self._command(self._one("finalize_failed", session_id, at, error=error))

    def reap(self, ttl_ms: int, *, at: int | None = None) -> Ack:
        """Ends every active session with no activity for ``ttl_ms`` (``reaped``)."""
        return self._command(_command("reap", at, ttl_ms=_count("reap", "ttl_ms", ttl_ms, required=True)))

    # ---- the same, awaitable ----

    async def start_async(self, session_id: str | None = None, key: str | None = None,
                          platform: str | None = None, user_id: str | None = None, source: str | None = None,
                          parent_id: str | None = None, attrs: Mapping[str, str] | None = None, *,
                          supersede: bool = True, at: int | None = None) -> Ack:
        """:meth:`start`, awaitable; never blocks the event loop."""
        return await self._command_async(self._start(session_id, key, platform, user_id, source, parent_id,
                                                     attrs, supersede, at))

    async def touch_async(self, session_id: str, *, at: int | None = None) -> Ack:
        """:meth:`touch`, awaitable."""
        return await self._command_async(self._one("touch", session_id, at))

    async def flush_async(self, session_id: str, marker: str, *, at: int | None = None) -> Ack:
        """:meth:`flush`, awaitable."""
        return await self._command_async(self._one("flush", session_id, at, marker=marker))

    async def end_async(self, session_id: str | None = None, reason: str | None = None, *,
                        key: str | None = None, at: int | None = None) -> Ack:
        """:meth:`end`, awaitable."""
        return await self._command_async(self._end(session_id, reason, key, at))

    async def reopen_async(self, session_id: str, reason: str = "resume", *, at: int | None = None) -> Ack:
        """:meth:`reopen`, awaitable."""
        return await self._command_async(self._one("reopen", session_id, at, reason=reason))

    async def expire_async(self, idle_minutes: int | None = None, daily_at_hour: int | None = None, *,
                           utc_offset_minutes: int | None = None, at: int | None = None) -> Ack:
        """:meth:`expire`, awaitable."""
        return await self._command_async(self._expire(idle_minutes, daily_at_hour, utc_offset_minutes, at))

    async def finalized_async(self, session_id: str, *, at: int | None = None) -> Ack:
        """:meth:`finalized`, awaitable."""
        return await self._command_async(self._one("finalized", session_id, at))

    async def finalize_failed_async(self, session_id: str, error: str, *, at: int | None = None) -> Ack:
        """:meth:`finalize_failed`, awaitable."""
        return await self._command_async(self._one("finalize_failed", session_id, at, error=error))

    async def reap_async(self, ttl_ms: int, *, at: int | None = None) -> Ack:
        """:meth:`reap`, awaitable."""
        cmd = _command("reap", at, ttl_ms=_count("reap", "ttl_ms", ttl_ms, required=True))
        return await self._command_async(cmd)
