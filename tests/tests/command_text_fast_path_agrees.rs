//! The quick parse of a command's JSON text gives exactly what the thorough
//! parse gives: the same command for every text it takes, and the same error
//! (kind and message) for every text it does not.
//!
//! `parse_command_text` (what `bookend append` and the Python binding call
//! for each line) reads the common commands straight from the text and hands
//! everything else to the thorough parse, `parse_json` then `parse_command`,
//! which refuses a key given twice at any depth and every unknown field. A
//! quick path that took a little more than the thorough one would let a
//! malformed command through (`{"cmd":"end","session_id":"a",
//! "session_id":"b"}` ending `b` without a word, a `supersede` on a touch
//! silently ignored); one that read a field differently would append a
//! different event than the same command sent over HTTP. Proptest builds
//! command objects from every key either path knows plus unknown and
//! escaped ones, with values of every JSON type, repeated keys, nested
//! objects, and text around the object, and checks that the two agree.

use bookend_projector::{CommandLine, LifecycleError, parse_command, parse_command_text, parse_json};
use proptest::prelude::*;
use proptest::sample::Index;

const KEYS: &[&str] = &[
    "cmd",
    "at",
    "session_id",
    "key",
    "platform",
    "user_id",
    "source",
    "parent_id",
    "attrs",
    "supersede",
    "reason",
    "marker",
    "error",
    "ttl_ms",
    "idle_minutes",
    "sessions",
    "sesion_id",
    r"c\u006dd",
    r"session\u005fid",
];

const COMMANDS: &[&str] = &[
    "start",
    "touch",
    "flush",
    "end",
    "reopen",
    "finalized",
    "finalize_failed",
    "expire",
    "reap",
    "close",
    "explode",
    r"st\u0061rt",
];

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#""""#.to_string()),
        Just(r#""s1""#.to_string()),
        Just(r#""completed""#.to_string()),
        Just(r#""shutdown""#.to_string()),
        Just(r#""a\nb\u00e9""#.to_string()),
        "[a-z_]{1,8}".prop_map(|s| format!("\"{s}\"")),
    ]
}

fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => string_value(),
        1 => Just("null".to_string()),
        1 => prop_oneof![Just("5"), Just("-1"), Just("1.5"), Just("1e2"), Just("18446744073709551616")]
            .prop_map(str::to_string),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just(r#"{"m":"1","n":"x"}"#.to_string()),
        1 => Just(r#"{"m":"1","m":"2"}"#.to_string()),
        1 => Just(r#"{"m":1}"#.to_string()),
        1 => Just("{}".to_string()),
        1 => Just(r#"["a"]"#.to_string()),
    ]
}

/// One `"key": value` pair of any key, with a value it could well have.
fn any_pair() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS)
        .prop_flat_map(|key| (Just(key), value_for(key)))
        .prop_map(|(key, value)| format!("\"{key}\": {value}"))
}

/// The keys a command has (and a few it is often sent with).
fn keys_of(cmd: &str) -> &'static [&'static str] {
    match cmd {
        "start" => &["session_id", "key", "platform", "user_id", "source", "parent_id", "attrs", "supersede"],
        "touch" | "finalized" => &["session_id"],
        "flush" => &["session_id", "marker"],
        "end" => &["session_id", "reason", "key"],
        "reopen" => &["session_id", "reason"],
        "finalize_failed" => &["session_id", "error"],
        "expire" => &["idle_minutes"],
        "reap" => &["ttl_ms"],
        _ => &["reason", "sessions"],
    }
}

/// A value `key` could well have; now and then any value at all.
fn value_for(key: &'static str) -> BoxedStrategy<String> {
    let good = match key {
        "attrs" => prop_oneof![
            Just(r#"{"m":"1","n":"x"}"#.to_string()),
            Just("{}".to_string()),
            Just(r#"{"m":"1","m":"2"}"#.to_string()),
        ]
        .boxed(),
        "supersede" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        "at" | "idle_minutes" | "ttl_ms" => (0u64..100_000).prop_map(|n| n.to_string()).boxed(),
        _ => string_value().boxed(),
    };
    prop_oneof![12 => good, 1 => Just("null".to_string()), 1 => any_value()].boxed()
}

/// A command object: a command with most of its own keys (and `at`), now
/// and then an extra pair or a key given twice, in any order, sometimes
/// with text around it that makes it something else.
fn command_text() -> impl Strategy<Value = String> {
    let around = prop_oneof![8 => Just(("", "")), 1 => Just(("", " x")), 1 => Just(("[", "]")), 1 => Just((" ", "\n"))];
    let extra = prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec(any_pair(), 1..3)];
    let flags = (prop::bool::weighted(0.3), prop::bool::weighted(0.1), prop::bool::weighted(0.95));
    (prop::sample::select(COMMANDS), flags, extra, around)
        .prop_flat_map(|(cmd, flags, extra, around)| {
            let own = keys_of(cmd);
            let least = own.len().min(if cmd == "start" { 0 } else { 2 });
            let keys = prop::sample::subsequence(own, least..=own.len());
            (Just((cmd, flags, extra, around)), keys, prop::sample::Index::arbitrary())
        })
        .prop_flat_map(|((cmd, (with_at, twice, with_cmd), extra, around), mut keys, which)| {
            if with_at {
                keys.push("at");
            }
            if twice && !keys.is_empty() {
                keys.push(keys[which.index(keys.len())]);
            }
            let values: Vec<BoxedStrategy<String>> = keys.iter().map(|k| value_for(k)).collect();
            let cmd_value = prop_oneof![12 => Just(format!("\"{cmd}\"")), 1 => any_value()];
            (Just((keys, extra, around, with_cmd)), values, cmd_value, Index::arbitrary(), Index::arbitrary())
        })
        .prop_map(|((keys, extra, (before, after), with_cmd), values, cmd_value, at, turn)| {
            let mut parts: Vec<String> =
                keys.iter().zip(values).map(|(k, v)| format!("\"{k}\": {v}")).collect();
            parts.extend(extra);
            let len = parts.len();
            parts.rotate_left(turn.index(len.max(1)) % len.max(1));
            if with_cmd || parts.is_empty() {
                parts.insert(at.index(parts.len() + 1), format!("\"cmd\": {cmd_value}"));
            }
            format!("{before}{{{}}}{after}", parts.join(","))
        })
}

fn thorough(text: &[u8]) -> Result<CommandLine, LifecycleError> {
    parse_command(parse_json(text)?)
}

fn assert_agree(text: &str) {
    let quick = parse_command_text(text.as_bytes());
    let slow = thorough(text.as_bytes());
    match (&quick, &slow) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
        (Err(a), Err(b)) => {
            assert_eq!((a.kind(), a.to_string()), (b.kind(), b.to_string()), "{text}");
        }
        _ => panic!("{text}: the quick parse gave {quick:?}, the thorough one {slow:?}"),
    }
}

/// The generated texts are not all refused: a good share are commands.
#[test]
fn the_generated_texts_are_often_commands_and_often_not() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = command_text();
    let samples = 2000;
    let accepted = (0..samples)
        .filter(|_| {
            let text = strategy.new_tree(&mut runner).expect("a sample").current();
            parse_command_text(text.as_bytes()).is_ok()
        })
        .count();
    assert!(accepted * 4 > samples && accepted * 4 < samples * 3, "{accepted} of {samples} accepted");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn the_quick_and_the_thorough_parse_agree(text in command_text()) {
        assert_agree(&text);
    }
}

#[test]
fn they_agree_on_the_documented_shapes_and_their_near_misses() {
    for text in [
        r#"{"cmd":"start","session_id":"s1","key":"k","platform":"p","user_id":"u","source":"s","parent_id":"p0","attrs":{"model":"m"},"supersede":false,"at":7}"#,
        r#"{"cmd":"start"}"#,
        r#"{"cmd":"start","session_id":null,"key":null,"attrs":{}}"#,
        r#"{"cmd":"start","session_id":""}"#,
        r#"{"cmd":"start","supersede":null}"#,
        r#"{"cmd":"touch","session_id":"s1","at":null}"#,
        r#"{"cmd":"touch","session_id":"s1","supersede":true}"#,
        r#"{"cmd":"flush","session_id":"s1","marker":"memory"}"#,
        r#"{"cmd":"end","session_id":"s1","reason":"gone_fishing"}"#,
        r#"{"cmd":"end","key":"k","reason":"manual_reset"}"#,
        r#"{"cmd":"end","key":null,"reason":"manual_reset"}"#,
        r#"{"cmd":"end","key":"k","session_id":"s1","reason":"manual_reset"}"#,
        r#"{"cmd":"end","session_id":"s1","session_id":"s2","reason":"completed"}"#,
        r#"{"cmd":"reopen","session_id":"s1"}"#,
        r#"{"cmd":"reopen","session_id":"s1","key":"k"}"#,
        r#"{"cmd":"finalized","session_id":"s1"}"#,
        r#"{"cmd":"finalize_failed","session_id":"s1","error":"disk full"}"#,
        r#"{"cmd":"expire","idle_minutes":30}"#,
        r#"{"cmd":"close","reason":"shutdown","sessions":"end","at":5}"#,
        r#"{"c\u006dd":"touch","session_id":"s1","cmd":"touch"}"#,
        r#"{"cmd":"touch","session_id":"s1","at":-1}"#,
        r#"{"cmd":"touch","session_id":"s1","at":1.5}"#,
        r#"{"cmd":"touch","session_id":"s1"} trailing"#,
        r#"["cmd"]"#,
    ] {
        assert_agree(text);
    }
}
