//! The NATS side of forwarding: the connection, the stream, subjects.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};

use super::ForwardArgs;

/// Where one journal's events go.
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub stream: String,
    pub prefix: String,
    pub journal_id: String,
    pub duplicate_window: Duration,
    pub max_age: Duration,
}

impl Target {
    pub fn new(args: &ForwardArgs, journal_id: String, token: Option<String>) -> Target {
        Target {
            url: args.nats.clone(),
            token,
            stream: args.stream.clone(),
            prefix: args.subject_prefix.clone(),
            journal_id,
            duplicate_window: Duration::from_secs(args.duplicate_window_s),
            max_age: Duration::from_secs(args.max_age_s),
        }
    }

    pub async fn connect(&self) -> anyhow::Result<async_nats::Client> {
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name(format!("bookend forward {}", self.journal_id));
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        options.connect(self.url.as_str()).await.with_context(|| format!("connecting to {}", self.url))
    }

    /// The stream, created when missing: file storage, a duplicate window,
    /// every subject under the prefix.
    pub async fn stream(&self, js: &jetstream::Context) -> anyhow::Result<stream::Stream> {
        let config = stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.prefix)],
            storage: stream::StorageType::File,
            duplicate_window: self.duplicate_window,
            max_age: self.max_age,
            ..Default::default()
        };
        js.get_or_create_stream(config).await.with_context(|| format!("opening the stream {}", self.stream))
    }

    /// Every subject of this journal.
    pub fn journal_subjects(&self) -> String {
        format!("{}.{}.>", self.prefix, self.journal_id)
    }
}

/// `<prefix>.<journal id>.<type>` with `:` in the type mapped to `.`.
pub fn subject_for(prefix: &str, journal_id: &str, event_type: &str) -> String {
    format!("{prefix}.{journal_id}.{}", event_type.replace(':', "."))
}

/// The highest LSN the stream holds for the journal (0: none): the last
/// message on the journal's subjects, whose `Bookend-Lsn` header says it.
pub async fn last_lsn_in_stream(stream: &stream::Stream, subjects: &str) -> anyhow::Result<u64> {
    match stream.get_last_raw_message_by_subject(subjects).await {
        Ok(message) => {
            let lsn = message.headers.get("Bookend-Lsn").map(|v| v.as_str().to_string());
            lsn.as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .with_context(|| format!("the last message on {subjects} has no Bookend-Lsn header"))
        }
        Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => Ok(0),
        Err(e) => Err(e).with_context(|| format!("asking the stream for the last message on {subjects}")),
    }
}
