//! The quick way from JSON text to the commands a gateway sends most
//! (`start`, `touch`, `flush`, `end`, `reopen`, `finalized`,
//! `finalize_failed`): one pass over the text straight into a [`Command`],
//! with no `serde_json::Value` in between.
//!
//! It answers only when it is sure: anything it does not take (another
//! command, an unknown or repeated key, a value of an unexpected type, a
//! field the command does not have) makes it give up, and the caller parses
//! the text the thorough way, which gives the same answer for what this
//! takes and the error for the rest. So what is accepted and every error
//! message are defined in one place, `command.rs`; the test
//! `command_text_fast_path_agrees` checks the two agree on generated text.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, Error as _, MapAccess, Visitor};

use crate::command::{Command, CommandLine, Start, parse_command, parse_json};
use crate::error::LifecycleError;
use crate::event::{EndReason, StartFields};

/// Parses one command from JSON text, refusing what `serde_json` would let
/// through silently: a key given twice (which value was meant?).
///
/// The common commands take the quick path here, straight from the text;
/// whatever it does not take is parsed the thorough way (`command.rs`),
/// which decides.
pub fn parse_command_text(text: &[u8]) -> Result<CommandLine, LifecycleError> {
    match parse(text) {
        Some(line) => Ok(line),
        None => parse_command(parse_json(text)?),
    }
}

/// The command in `text`, or `None` when the thorough parse must decide.
pub(crate) fn parse(text: &[u8]) -> Option<CommandLine> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let fields = de.deserialize_map(FieldsVisitor).ok()?;
    de.end().ok()?;
    fields.into_command()
}

/// A string field as given: a string or `null`.
enum Text {
    Null,
    Value(String),
}

impl Text {
    /// The string, for a field that must be one.
    fn required(this: Option<Text>) -> Option<String> {
        match this {
            Some(Text::Value(s)) => Some(s),
            _ => None,
        }
    }

    /// An optional field of a start: absent and `null` are both `None`.
    fn optional(this: Option<Text>) -> Option<String> {
        this.and_then(|t| match t {
            Text::Null => None,
            Text::Value(s) => Some(s),
        })
    }
}

/// Every key the quick path knows, in the order of `Fields::present`'s bits.
#[derive(Clone, Copy)]
enum Field {
    Cmd,
    At,
    SessionId,
    Key,
    Platform,
    UserId,
    Source,
    ParentId,
    Attrs,
    Supersede,
    Reason,
    Marker,
    Error,
}

impl Field {
    fn named(name: &str) -> Option<Field> {
        Some(match name {
            "cmd" => Field::Cmd,
            "at" => Field::At,
            "session_id" => Field::SessionId,
            "key" => Field::Key,
            "platform" => Field::Platform,
            "user_id" => Field::UserId,
            "source" => Field::Source,
            "parent_id" => Field::ParentId,
            "attrs" => Field::Attrs,
            "supersede" => Field::Supersede,
            "reason" => Field::Reason,
            "marker" => Field::Marker,
            "error" => Field::Error,
            _ => return None,
        })
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// The commands the quick path takes, and the keys each may have besides
/// `cmd` and `at`.
const QUICK_COMMANDS: [(&str, &[Field]); 7] = {
    use Field::*;
    [
        ("start", &[SessionId, Key, Platform, UserId, Source, ParentId, Attrs, Supersede]),
        ("touch", &[SessionId]),
        ("finalized", &[SessionId]),
        ("flush", &[SessionId, Marker]),
        ("end", &[SessionId, Key, Reason]),
        ("reopen", &[SessionId, Reason]),
        ("finalize_failed", &[SessionId, Error]),
    ]
};

/// The command named `name`, as the quick path's table spells it.
fn quick_command(name: &str) -> Option<&'static (&'static str, &'static [Field])> {
    QUICK_COMMANDS.iter().find(|(cmd, _)| *cmd == name)
}

/// The keys `cmd` may have, as bits of `Fields::present`.
fn allowed(cmd: &str) -> Option<u16> {
    let (_, keys) = quick_command(cmd)?;
    Some(keys.iter().fold(Field::Cmd.bit() | Field::At.bit(), |bits, k| bits | k.bit()))
}

#[derive(Default)]
struct Fields {
    present: u16,
    cmd: Option<&'static str>,
    at: Option<u64>,
    session_id: Option<Text>,
    key: Option<Text>,
    platform: Option<Text>,
    user_id: Option<Text>,
    source: Option<Text>,
    parent_id: Option<Text>,
    attrs: BTreeMap<String, String>,
    supersede: Option<bool>,
    reason: Option<Text>,
    marker: Option<Text>,
    error: Option<Text>,
}

impl Fields {
    fn into_command(self) -> Option<CommandLine> {
        let cmd = self.cmd?;
        if self.present & !allowed(cmd)? != 0 {
            return None;
        }
        let at = self.at;
        let command = match cmd {
            "start" => self.into_start()?,
            "touch" => Command::Touch { session_id: Text::required(self.session_id)? },
            "finalized" => Command::Finalized { session_id: Text::required(self.session_id)? },
            "flush" => Command::Flush {
                session_id: Text::required(self.session_id)?,
                marker: Text::required(self.marker)?,
            },
            "finalize_failed" => Command::FinalizeFailed {
                session_id: Text::required(self.session_id)?,
                error: Text::required(self.error)?,
            },
            "end" => self.into_end()?,
            "reopen" => Command::Reopen {
                session_id: Text::required(self.session_id)?,
                reason: match self.reason {
                    None => "resume".to_string(),
                    reason => Text::required(reason)?,
                },
            },
            _ => return None,
        };
        Some(CommandLine { command, at })
    }

    fn into_end(self) -> Option<Command> {
        let reason = EndReason::parse(&Text::required(self.reason)?);
        match (self.session_id, self.key) {
            (Some(id), None) => Some(Command::End { session_id: Text::required(Some(id))?, reason }),
            (None, Some(key)) => Some(Command::EndKey { key: Text::required(Some(key))?, reason }),
            _ => None,
        }
    }

    fn into_start(self) -> Option<Command> {
        let session_id = match self.session_id {
            None | Some(Text::Null) => String::new(),
            Some(Text::Value(id)) if id.is_empty() => return None,
            Some(Text::Value(id)) => id,
        };
        let fields = StartFields {
            session_id,
            key: Text::optional(self.key),
            platform: Text::optional(self.platform),
            user_id: Text::optional(self.user_id),
            source: Text::optional(self.source),
            parent_id: Text::optional(self.parent_id),
            attrs: self.attrs,
        };
        Some(Command::Start(Start { fields: fields.into(), supersede: self.supersede.unwrap_or(true) }))
    }

    /// Reads the value of `key` (refused if it was given before).
    fn read<'de, A: MapAccess<'de>>(&mut self, key: Field, map: &mut A) -> Result<(), A::Error> {
        if self.present & key.bit() != 0 {
            return Err(A::Error::custom("a key given twice"));
        }
        self.present |= key.bit();
        let text =
            |map: &mut A| map.next_value::<Option<String>>().map(|v| Some(v.map_or(Text::Null, Text::Value)));
        match key {
            Field::Cmd => self.cmd = Some(map.next_value_seed(CmdSeed)?),
            Field::At => self.at = map.next_value()?,
            Field::SessionId => self.session_id = text(map)?,
            Field::Key => self.key = text(map)?,
            Field::Platform => self.platform = text(map)?,
            Field::UserId => self.user_id = text(map)?,
            Field::Source => self.source = text(map)?,
            Field::ParentId => self.parent_id = text(map)?,
            Field::Attrs => self.attrs = map.next_value_seed(AttrsSeed)?,
            Field::Supersede => self.supersede = Some(map.next_value()?),
            Field::Reason => self.reason = text(map)?,
            Field::Marker => self.marker = text(map)?,
            Field::Error => self.error = text(map)?,
        }
        Ok(())
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            fields.read(key, &mut map)?;
        }
        Ok(fields)
    }
}

/// A key of the command object, matched without copying it.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Field;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command field")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
        Field::named(name).ok_or_else(|| E::custom("a key the quick path does not take"))
    }
}

/// The value of `cmd`, if it is a command the quick path takes.
struct CmdSeed;

impl<'de> DeserializeSeed<'de> for CmdSeed {
    type Value = &'static str;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CmdSeed {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<&'static str, E> {
        quick_command(name)
            .map(|(cmd, _)| *cmd)
            .ok_or_else(|| E::custom("a command the quick path does not take"))
    }
}

/// `attrs`: an object of strings, each name given once.
struct AttrsSeed;

impl<'de> DeserializeSeed<'de> for AttrsSeed {
    type Value = BTreeMap<String, String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AttrsSeed {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut attrs = BTreeMap::new();
        while let Some((name, value)) = map.next_entry::<String, String>()? {
            if attrs.insert(name, value).is_some() {
                return Err(A::Error::custom("an attribute given twice"));
            }
        }
        Ok(attrs)
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::command::parse_command;

    #[test]
    fn takes_the_common_commands_and_reads_them_as_the_thorough_parse_does() {
        for text in [
            r#"{"cmd": "start", "session_id": "s0", "key": "k0"}"#,
            r#"{"cmd":"start","platform":"slack","attrs":{"model":"m","tier":"1"},"supersede":false,"at":9}"#,
            r#"{"cmd":"start","session_id":null}"#,
            r#"{"cmd":"touch","session_id":"s1"}"#,
            r#"{"cmd":"flush","session_id":"s1","marker":"memory"}"#,
            r#"{"cmd": "end", "session_id": "s0", "reason": "completed"}"#,
            r#"{"cmd":"end","key":"telegram:42","reason":"idle_expiry"}"#,
            r#"{"cmd":"reopen","session_id":"s1"}"#,
            r#"{"cmd":"finalized","session_id":"s1"}"#,
            r#"{"session_id":"s1","error":"disk full","cmd":"finalize_failed"}"#,
        ] {
            let quick = parse(text.as_bytes()).unwrap_or_else(|| panic!("{text}: not taken"));
            let thorough = parse_command(serde_json::from_str(text).unwrap()).unwrap();
            assert_eq!(quick, thorough, "{text}");
        }
    }

    #[test]
    fn leaves_everything_unusual_to_the_thorough_parse() {
        for text in [
            r#"{"cmd":"expire","idle_minutes":30}"#,
            r#"{"cmd":"touch","session_id":"a","session_id":"b"}"#,
            r#"{"cmd":"start","attrs":{"m":"1","m":"2"}}"#,
            r#"{"cmd":"start","session_id":""}"#,
            r#"{"cmd":"touch","session_id":"s1","marker":"m"}"#,
            r#"{"cmd":"end","session_id":"s1","key":"k","reason":"completed"}"#,
            r#"{"cmd":"touch","session_id":null}"#,
            r#"{"cmd":"touch","session_id":"s1"} x"#,
            r#"{"cmd":"touch","session_id":"s1","at":-5}"#,
        ] {
            assert!(parse(text.as_bytes()).is_none(), "{text}");
        }
    }
}
