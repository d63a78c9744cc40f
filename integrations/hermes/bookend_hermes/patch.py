"""The one change made to hermes, at ``register`` time: ``SessionDB``'s
lifecycle methods are wrapped (on the class, so every instance in the
process is covered). Each wrapper calls hermes's own method first, exactly
as before, then tells the recorder; it returns hermes's result and never
raises anything hermes's method did not. No file of hermes is edited;
:func:`unpatch` restores the originals.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from .recorder import Recorder

_MARK = "__bookend_original__"


def _after(recorder: Recorder, name: str, result: Any, args: dict[str, Any]) -> None:
    if args.get("self") is not None and getattr(args["self"], "read_only", False):
        return
    sid = args.get("session_id")
    if not isinstance(sid, str) or not sid:
        return
    if name in ("create_session", "ensure_session"):
        recorder.created(sid, args.get("source"), {**args.get("kwargs", {}), **args})
    elif name == "end_session":
        recorder.ended(sid, args.get("end_reason"))
    elif name == "reopen_session":
        recorder.reopened(sid)
    elif name == "promote_to_session_reset":
        if result:
            recorder.promoted(sid, args.get("reason") or "session_reset")
    elif name == "set_expiry_finalized":
        if args.get("finalized", True):
            recorder.finalized(sid)


METHODS = ("create_session", "ensure_session", "end_session", "reopen_session", "promote_to_session_reset",
           "set_expiry_finalized")


def _wrap(original: Callable[..., Any], name: str, recorder: Recorder) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        try:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            _after(recorder, name, result, dict(bound.arguments))
        except Exception as e:  # noqa: BLE001 - never break hermes
            recorder.log_limited(name, e)
        return result

    setattr(wrapper, _MARK, original)
    return wrapper


def patch(session_db_class: type, recorder: Recorder) -> None:
    for name in METHODS:
        current = getattr(session_db_class, name, None)
        if current is None:
            continue
        original = getattr(current, _MARK, current)
        setattr(session_db_class, name, _wrap(original, name, recorder))


def unpatch(session_db_class: type) -> None:
    for name in METHODS:
        current = getattr(session_db_class, name, None)
        original = getattr(current, _MARK, None)
        if original is not None:
            setattr(session_db_class, name, original)
