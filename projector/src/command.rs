//! What a gateway asks for, and what it is told back.
//!
//! The JSON form of a command (`{"cmd":"start","session_id":"s1",…}`) is the
//! language of `bookend append` and `POST /v1/commands`; it is parsed here,
//! once, so the CLI and the server hold no lifecycle logic.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::LifecycleError;
use crate::event::{CloseReason, EndReason, Event, StartFields};

/// When sessions are due for an automatic reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ResetMode {
    #[default]
    None,
    Idle,
    Daily,
    Both,
}

/// The reset policy `expire` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetPolicy {
    pub mode: ResetMode,
    /// Idle sessions end after this many minutes without activity.
    pub idle_minutes: u64,
    /// Daily resets happen at this hour (0–23) of the day…
    pub daily_at_hour: u8,
    /// …in this time zone, as an offset from UTC in minutes.
    pub utc_offset_minutes: i32,
}

impl ResetPolicy {
    pub fn idle(minutes: u64) -> ResetPolicy {
        ResetPolicy { mode: ResetMode::Idle, idle_minutes: minutes, daily_at_hour: 4, utc_offset_minutes: 0 }
    }

    pub fn daily(at_hour: u8) -> ResetPolicy {
        ResetPolicy { mode: ResetMode::Daily, idle_minutes: 0, daily_at_hour: at_hour, utc_offset_minutes: 0 }
    }
}

/// What sessions a close does with active sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sessions {
    /// End every active session (reason `shutdown` or `restart`).
    End,
    /// Leave them for the next epoch to resume (the reaper closes strays).
    Keep,
}

/// A start command: the fields of `session:start`, and what to do when its
/// key already has an active session.
///
/// ```
/// use bookend_projector::Start;
///
/// let start = Start::new("s1").key("slack:T01:C02").platform("slack").user_id("U03").attr("model", "m1");
/// assert_eq!(start.fields.key.as_deref(), Some("slack:T01:C02"));
/// assert!(start.supersede, "a new start on a busy key ends the old session first");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Start {
    /// An empty `session_id` means "mint one" (a UUIDv7).
    ///
    /// Shared: the start event and the started session's state take it
    /// without a copy.
    #[serde(flatten)]
    pub fields: Arc<StartFields>,
    /// Whether a start on a key with an active session supersedes it
    /// (default) or is refused with `key_busy`.
    pub supersede: bool,
}

impl Default for Start {
    fn default() -> Self {
        Start { fields: Arc::default(), supersede: true }
    }
}

impl Start {
    /// A start of the session `session_id` (empty: mint one).
    pub fn new(session_id: impl Into<String>) -> Start {
        Start {
            fields: Arc::new(StartFields { session_id: session_id.into(), ..StartFields::default() }),
            supersede: true,
        }
    }

    /// On `key` (a chat, a channel: at most one active session each).
    pub fn key(mut self, key: impl Into<String>) -> Start {
        Arc::make_mut(&mut self.fields).key = Some(key.into());
        self
    }

    pub fn platform(mut self, platform: impl Into<String>) -> Start {
        Arc::make_mut(&mut self.fields).platform = Some(platform.into());
        self
    }

    pub fn user_id(mut self, user_id: impl Into<String>) -> Start {
        Arc::make_mut(&mut self.fields).user_id = Some(user_id.into());
        self
    }

    pub fn parent_id(mut self, parent_id: impl Into<String>) -> Start {
        Arc::make_mut(&mut self.fields).parent_id = Some(parent_id.into());
        self
    }

    pub fn attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Start {
        Arc::make_mut(&mut self.fields).attrs.insert(name.into(), value.into());
        self
    }
}

/// The JSON form of a start: `session:start`'s fields (all optional but the
/// command name; an unknown field is refused) and `supersede`.
impl<'de> Deserialize<'de> for Start {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = serde_json::Map::<String, Value>::deserialize(d)?;
        let supersede = match map.remove("supersede") {
            None => true,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Err(D::Error::custom(format!("supersede must be true or false, not {other}")));
            }
        };
        match map.get("session_id") {
            Some(Value::String(id)) if id.is_empty() => {
                return Err(D::Error::custom("session_id is empty (leave it out to have one minted)"));
            }
            Some(Value::Null) => {
                map.remove("session_id");
            }
            _ => {}
        }
        let fields = StartFields::deserialize(Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Start { fields: Arc::new(fields), supersede })
    }
}

fn resume() -> String {
    "resume".to_string()
}

/// A lifecycle command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    Start(Start),
    Touch {
        session_id: String,
    },
    Flush {
        session_id: String,
        marker: String,
    },
    End {
        session_id: String,
        reason: EndReason,
    },
    /// `{"cmd":"end","key":K,"reason":R}`: ends whatever session is active
    /// on `key`; a no-op (an ack naming no session) if none is. For
    /// gateways whose end events carry only the key (hermes's `session:end`
    /// and `session:reset`).
    #[serde(rename = "end", skip_deserializing)]
    EndKey {
        key: String,
        reason: EndReason,
    },
    Reopen {
        session_id: String,
        #[serde(default = "resume")]
        reason: String,
    },
    Expire {
        #[serde(default)]
        idle_minutes: Option<u64>,
        #[serde(default)]
        daily_at_hour: Option<u8>,
        #[serde(default)]
        utc_offset_minutes: Option<i32>,
    },
    Finalized {
        session_id: String,
    },
    FinalizeFailed {
        session_id: String,
        error: String,
    },
    Reap {
        ttl_ms: u64,
    },
    Close {
        reason: CloseReason,
        sessions: Sessions,
    },
}

impl Command {
    /// The session a command is about, if it names one.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Command::Start(start) => Some(&start.fields.session_id),
            Command::Touch { session_id }
            | Command::Flush { session_id, .. }
            | Command::End { session_id, .. }
            | Command::Reopen { session_id, .. }
            | Command::Finalized { session_id }
            | Command::FinalizeFailed { session_id, .. } => Some(session_id),
            Command::EndKey { .. }
            | Command::Expire { .. }
            | Command::Reap { .. }
            | Command::Close { .. } => None,
        }
    }

    /// The reset policy of an `expire` command: idle if only `idle_minutes`
    /// is given, daily if only `daily_at_hour`, both if both.
    pub fn reset_policy(idle: Option<u64>, daily: Option<u8>, offset: Option<i32>) -> ResetPolicy {
        let mode = match (idle, daily) {
            (Some(_), Some(_)) => ResetMode::Both,
            (Some(_), None) => ResetMode::Idle,
            (None, Some(_)) => ResetMode::Daily,
            (None, None) => ResetMode::None,
        };
        ResetPolicy {
            mode,
            idle_minutes: idle.unwrap_or(0),
            daily_at_hour: daily.unwrap_or(0),
            utc_offset_minutes: offset.unwrap_or(0),
        }
    }
}

/// A command line as `bookend append` reads it: a command plus an optional
/// `at` (ms) that drives time in simulations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub command: Command,
    pub at: Option<u64>,
}

/// Parses one JSON command object: the language of `bookend append` and
/// `POST /v1/commands`, for a gateway that receives commands as JSON.
///
/// ```
/// use bookend_projector::{Command, SessionJournal, SessionJournalOptions, parse_command};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let journal = SessionJournal::open(tmp.path().join("journal"), SessionJournalOptions::default())?;
/// let line = parse_command(serde_json::json!({"cmd": "start", "session_id": "s1", "key": "cli:me"}))?;
/// assert!(matches!(line.command, Command::Start(_)));
/// let ack = journal.execute(line.command, line.at)?.wait()?;
/// assert_eq!(ack.to_json()["session_id"], "s1");
///
/// let bad = parse_command(serde_json::json!({"cmd": "touch"})).unwrap_err();
/// assert_eq!(bad.kind(), "invalid_command");
/// # Ok(())
/// # }
/// ```
pub fn parse_command(value: Value) -> Result<CommandLine, LifecycleError> {
    let Value::Object(mut map) = value else {
        return Err(LifecycleError::Invalid { reason: "a command must be a JSON object".into() });
    };
    let at = match map.remove("at") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(other) => {
            return Err(LifecycleError::Invalid {
                reason: format!("\"at\" must be milliseconds, not {other}"),
            });
        }
    };
    let cmd = map.get("cmd").and_then(Value::as_str).map(str::to_string);
    if cmd.as_deref() == Some("end") && map.contains_key("key") {
        return parse_keyed_end(map).map(|command| CommandLine { command, at });
    }
    let command = serde_json::from_value::<Command>(Value::Object(map)).map_err(|e| {
        let reason = match cmd {
            None => "missing \"cmd\" (start, touch, flush, end, reopen, expire, finalized, finalize_failed, reap, close)".to_string(),
            Some(cmd) => format!("{cmd}: {e}"),
        };
        LifecycleError::Invalid { reason }
    })?;
    Ok(CommandLine { command, at })
}

/// `{"cmd":"end","key":K,"reason":R}`; a session id as well is refused
/// (which one would be meant?).
fn parse_keyed_end(mut map: serde_json::Map<String, Value>) -> Result<Command, LifecycleError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct KeyedEnd {
        key: String,
        reason: EndReason,
    }
    map.remove("cmd");
    if map.contains_key("session_id") {
        let reason = "end: give session_id or key, not both".to_string();
        return Err(LifecycleError::Invalid { reason });
    }
    let end: KeyedEnd = serde_json::from_value(Value::Object(map))
        .map_err(|e| LifecycleError::Invalid { reason: format!("end: {e}") })?;
    Ok(Command::EndKey { key: end.key, reason: end.reason })
}

/// JSON text as a value, refusing a key given twice in any object
/// (`malformed_json`): for a request that holds several commands.
pub fn parse_json(text: &[u8]) -> Result<Value, LifecycleError> {
    crate::json::parse_strict(text).map_err(|reason| LifecycleError::Malformed { reason })
}

/// What a command did. `lsn` is the LSN that answers it: the session's
/// start for `start`, its end for `end`, the recorded marker for `flush`,
/// the last event appended for `expire`/`reap`/`close`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ack {
    pub lsn: Option<u64>,
    /// The command had already been done; nothing was appended and `lsn`
    /// is the original one.
    pub duplicate: bool,
    pub session_id: Option<String>,
    /// For `end`: the reason that stands (the first writer's).
    pub reason: Option<EndReason>,
    /// The events appended for this command (empty for duplicates).
    pub events: Vec<Event>,
}

impl Ack {
    /// The JSON ack of `bookend append`: `{"ok":true,"lsn":N,…}`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"ok": true, "lsn": self.lsn});
        if self.duplicate {
            v["duplicate"] = json!(true);
        }
        if let Some(id) = &self.session_id {
            v["session_id"] = json!(id);
        }
        if let Some(reason) = &self.reason {
            v["reason"] = json!(reason.as_str());
        }
        if self.describes_events() {
            self.describe_events(&mut v);
        }
        v
    }

    /// Whether the JSON ack lists the events appended: when there were
    /// several, or the ack names no session (expire, reap, close).
    pub fn describes_events(&self) -> bool {
        self.events.len() > 1 || (self.session_id.is_none() && !self.events.is_empty())
    }

    /// Counts, and the first [`ACK_EVENTS_SHOWN_MAX`] events: an expire of
    /// 400 000 sessions answers in a few kilobytes, not megabytes.
    fn describe_events(&self, v: &mut Value) {
        let ended = self.events.iter().filter(|e| e.body.type_name() == "session:end").count();
        v["ended"] = json!(ended);
        v["events_total"] = json!(self.events.len());
        v["events"] = Value::Array(
            self.events
                .iter()
                .take(ACK_EVENTS_SHOWN_MAX)
                .map(|e| json!({"lsn": e.lsn, "type": e.body.type_name(), "session_id": e.body.session_id()}))
                .collect(),
        );
        if self.events.len() > ACK_EVENTS_SHOWN_MAX {
            v["events_truncated"] = json!(true);
        }
    }
}

/// The most events a JSON ack lists (the counts cover them all).
pub const ACK_EVENTS_SHOWN_MAX: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> CommandLine {
        parse_command(serde_json::from_str(line).unwrap()).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn command(line: &str) -> Command {
        let parsed = parsed(line);
        assert_eq!(parsed.at, None, "{line}");
        parsed.command
    }

    #[test]
    fn parses_the_documented_shapes() {
        let start = command(
            r#"{"cmd":"start","session_id":"s1","key":"telegram:42","platform":"telegram","user_id":"u1","attrs":{"model":"m"}}"#,
        );
        let expected =
            Start::new("s1").key("telegram:42").platform("telegram").user_id("u1").attr("model", "m");
        assert_eq!(start, Command::Start(expected));
        let touch = command(r#"{"cmd":"touch","session_id":"s1"}"#);
        assert_eq!(touch, Command::Touch { session_id: "s1".into() });
        let flush = command(r#"{"cmd":"flush","session_id":"s1","marker":"memory"}"#);
        assert_eq!(flush, Command::Flush { session_id: "s1".into(), marker: "memory".into() });
        let end = command(r#"{"cmd":"end","session_id":"s1","reason":"manual_reset"}"#);
        assert_eq!(end, Command::End { session_id: "s1".into(), reason: EndReason::ManualReset });
        let reopen = command(r#"{"cmd":"reopen","session_id":"s1","reason":"resume"}"#);
        assert_eq!(reopen, Command::Reopen { session_id: "s1".into(), reason: "resume".into() });
        let expire = command(r#"{"cmd":"expire","idle_minutes":30}"#);
        let policy =
            Command::Expire { idle_minutes: Some(30), daily_at_hour: None, utc_offset_minutes: None };
        assert_eq!(expire, policy);
        assert_eq!(
            command(r#"{"cmd":"finalized","session_id":"s1"}"#),
            Command::Finalized { session_id: "s1".into() }
        );
        let failed = command(r#"{"cmd":"finalize_failed","session_id":"s1","error":"disk full"}"#);
        assert_eq!(failed, Command::FinalizeFailed { session_id: "s1".into(), error: "disk full".into() });
        assert_eq!(command(r#"{"cmd":"reap","ttl_ms":90000}"#), Command::Reap { ttl_ms: 90_000 });
        let close = parsed(r#"{"cmd":"close","reason":"shutdown","sessions":"end","at":5}"#);
        assert_eq!(close.command, Command::Close { reason: CloseReason::Shutdown, sessions: Sessions::End });
        assert_eq!(close.at, Some(5));
    }

    #[test]
    fn fills_in_the_documented_defaults() {
        let Command::Start(start) = command(r#"{"cmd":"start"}"#) else { panic!("not a start") };
        assert_eq!(start.fields.session_id, "", "an absent id is minted on append");
        assert!(start.supersede, "a start supersedes by default");
        let Command::Start(start) = command(r#"{"cmd":"start","session_id":null,"supersede":false}"#) else {
            panic!("not a start")
        };
        assert!(!start.supersede);
        let reopen = command(r#"{"cmd":"reopen","session_id":"s1"}"#);
        assert_eq!(reopen, Command::Reopen { session_id: "s1".into(), reason: "resume".into() });
        let end = command(r#"{"cmd":"end","session_id":"s1","reason":"gone_fishing"}"#);
        assert_eq!(
            end,
            Command::End { session_id: "s1".into(), reason: EndReason::Other("gone_fishing".into()) }
        );
        assert_eq!(
            Command::reset_policy(Some(30), Some(4), Some(60)),
            ResetPolicy { mode: ResetMode::Both, idle_minutes: 30, daily_at_hour: 4, utc_offset_minutes: 60 }
        );
    }

    #[test]
    fn refuses_unknown_commands_and_fields() {
        for bad in [
            r#"{"cmd":"explode"}"#,
            r#"{"session_id":"s1"}"#,
            r#"{"cmd":"touch"}"#,
            r#"[1]"#,
            r#"{"cmd":"start","sesion_id":"x"}"#,
        ] {
            let parsed = parse_command(serde_json::from_str(bad).unwrap());
            assert!(matches!(parsed, Err(LifecycleError::Invalid { .. })), "{bad}: {parsed:?}");
        }
    }
}
