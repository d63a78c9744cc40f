"""bookend's exceptions: one class per error ``kind``.

Every error the journal or the server reports is a :class:`BookendError`
whose ``kind`` is the stable machine-readable name of the JSON error
(``"unknown_session"``, ``"key_busy"``, ...), whose ``message`` says what
happened and what to do, and whose other attributes are the error's details
(``session_id``, ``key``, ``active_id``, ``pid``, ``segment``,
``offset``...; ``None`` when the error has none). The same class is raised
for the same failure by the embedded journal (:func:`bookend.open`) and by
the HTTP client (:func:`bookend.connect`).
"""

from __future__ import annotations

import json
from typing import Any


class BookendError(Exception):
    """Base of every bookend error."""

    kind: str = "error"

    def __init__(self, message: str, *, kind: str | None = None, details: dict[str, Any] | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        #: The HTTP status, for errors that came from a server.
        self.status = status

    def __getattr__(self, name: str) -> Any:
        # Details as attributes (e.session_id); absent ones read as None.
        if name.startswith("__"):
            raise AttributeError(name)
        return self.__dict__.get("details", {}).get(name)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class CommandRefused(BookendError):
    """A command broke a lifecycle rule or was malformed; nothing was appended."""


class JournalFailure(BookendError):
    """The journal (or the server holding it) could not do what was asked."""


def _refusal(name: str, kind: str, doc: str, *extra: type) -> type[BookendError]:
    return type(name, (CommandRefused, *extra), {"kind": kind, "__doc__": doc})


def _failure(name: str, kind: str, doc: str, *extra: type) -> type[BookendError]:
    return type(name, (JournalFailure, *extra), {"kind": kind, "__doc__": doc})


UnknownSession = _refusal("UnknownSession", "unknown_session", "No session has that id (``.session_id``).", LookupError)
EmptyField = _refusal("EmptyField", "empty_field", "A field that must not be empty was empty (``.field``).", ValueError)
TooLong = _refusal("TooLong", "too_long", "A field is over its limit (``.field``, ``.len``/``.count``, ``.max``).", ValueError)
InvalidChars = _refusal("InvalidChars", "invalid_chars", "A field holds characters it may not (``.field``).", ValueError)
InvalidTime = _refusal("InvalidTime", "invalid_time", "An ``at`` before the session's last event or too far ahead of the clock.", ValueError)
KeyMismatch = _refusal("KeyMismatch", "key_mismatch", "A retried start names another key than the first (``.existing``, ``.requested``).")
KeyBusy = _refusal("KeyBusy", "key_busy", "The key has an active session and the start did not supersede it (``.key``, ``.active_id``).")
SessionEnded = _refusal("SessionEnded", "session_ended", "The session has ended; only reopen is allowed (``.session_id``, ``.reason``).")
AlreadyActive = _refusal("AlreadyActive", "already_active", "Only an ended session can be reopened (``.session_id``).")
AlreadyFinalized = _refusal("AlreadyFinalized", "already_finalized", "The session is already finalized (``.session_id``).")
AttemptsExhausted = _refusal("AttemptsExhausted", "attempts_exhausted", "Every finalize attempt was used (``.session_id``, ``.max``).")
InvalidCommand = _refusal("InvalidCommand", "invalid_command", "A command the command language does not accept.", ValueError)
MalformedJson = _refusal("MalformedJson", "malformed_json", "Text that is not JSON, or JSON with a key given twice.", ValueError)
Oversize = _refusal("Oversize", "oversize", "A command or batch over the record limit.", ValueError)
InvalidArgument = _refusal("InvalidArgument", "invalid_argument", "An argument of the Python API with a wrong value.", ValueError)

Closed = _failure("Closed", "closed", "The journal (or this event stream) is closed.")
Locked = _failure("Locked", "locked", "Another process holds the journal (``.pid``, ``.dir``).")
Corruption = _failure("Corruption", "corruption", "Damaged bytes in a segment (``.segment``, ``.offset``); see ``bookend verify``.")
DataLoss = _failure("DataLoss", "data_loss", "Acknowledged events are missing (``.found_lsn``, ``.expected_lsn``).")
NoJournal = _failure("NoJournal", "no_journal", "The directory holds no journal.")
ForeignState = _failure("ForeignState", "foreign_state", "State from another journal was found beside this one.")
Timeout = _failure("Timeout", "timeout", "The disk did not answer in time.", TimeoutError)
Poisoned = _failure("Poisoned", "poisoned", "An earlier I/O failure; reopen the journal.")
StoreError = _failure("StoreError", "store", "The projection store failed (it is rebuilt from the journal).")
StoreLocked = _failure("StoreLocked", "store_locked", "Another process has the projection store open.")
DecodeError = _failure("DecodeError", "decode", "An event in the journal could not be decoded (``.lsn``).")
ConsumerBusy = _failure("ConsumerBusy", "consumer_busy", "Another reader holds this consumer's cursor (``.consumer``).")
InvalidConsumer = _failure("InvalidConsumer", "invalid_consumer", "A consumer name that cannot be a cursor file name.", ValueError)
InvalidCursor = _failure("InvalidCursor", "invalid_cursor", "A consumer's cursor file cannot be read.")
CursorAhead = _failure("CursorAhead", "cursor_ahead", "A cursor past the journal's end: the journal lost events.")
InvalidAck = _failure("InvalidAck", "invalid_ack", "An acknowledgement past the journal's durable end.", ValueError)
UnknownEventType = _failure("UnknownEventType", "unknown_event_type", "An event type bookend does not know.", ValueError)
IoError = _failure("IoError", "io", "An I/O error outside the journal (a cursor file).", OSError)
JournalError = _failure("JournalError", "journal", "The journal failed (I/O, limits).")
ServerError = _failure("ServerError", "http", "The server answered with an error that has no class of its own.")
Unauthorized = _failure("Unauthorized", "unauthorized", "The server wants a bearer token (``connect(..., token=...)``).")
Unavailable = _failure("Unavailable", "unavailable", "The server cannot be reached, or is shutting down.", ConnectionError)

#: Every exception class by its kind.
BY_KIND: dict[str, type[BookendError]] = {
    cls.kind: cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, BookendError) and cls not in (BookendError, CommandRefused, JournalFailure)
}


def error_for(kind: str, message: str, details: dict[str, Any] | None = None,
              status: int | None = None) -> BookendError:
    """The exception for an error ``kind`` (a :class:`BookendError` for a kind without a class)."""
    cls = BY_KIND.get(kind)
    if cls is None:
        return JournalFailure(message, kind=kind, details=details, status=status)
    return cls(message, details=details, status=status)


def error_from_json(text: str | dict[str, Any], status: int | None = None) -> BookendError:
    """The exception for an error object ``{"kind", "message", ...details}``."""
    error = json.loads(text) if isinstance(text, str) else dict(text)
    kind = str(error.pop("kind", "error"))
    message = str(error.pop("message", "bookend reported an error without a message"))
    return error_for(kind, message, error, status)
