//! `bookend forward`: one journal's durable events into a NATS JetStream
//! stream, exactly once (docs/fleet.md has the argument step by step).
//!
//! * `nats`: connecting, the stream, subjects, and the last LSN the stream
//!   holds for this journal.
//! * `pump`: the journal read through the durable consumer cursor,
//!   published with a bounded number of acks in flight; the cursor is
//!   acknowledged only after JetStream's publish ack.
//! * `in_process`: the same forwarder as a task of `serve`.
//!
//! A failure of NATS (down, restarting, an ack that never comes) drops
//! what is in flight and starts over from the cursor after a backoff; the
//! duplicate window and the last-LSN check drop what is sent twice.

mod in_process;
mod nats;
mod pump;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;

use crate::output::require_journal_dir;

pub use in_process::InProcess;
pub use nats::{Target, last_lsn_in_stream, subject_for};

#[derive(Args, Debug, Clone)]
pub struct ForwardArgs {
    /// The journal to forward (another process writes it).
    #[arg(long)]
    pub dir: PathBuf,
    /// The NATS server, for example nats://127.0.0.1:4222.
    #[arg(long)]
    pub nats: String,
    /// The JetStream stream (created when missing).
    #[arg(long, default_value = "bookend")]
    pub stream: String,
    /// Subjects are `<prefix>.<journal id>.<type>`.
    #[arg(long, default_value = "bookend")]
    pub subject_prefix: String,
    /// A file holding the NATS token (trailing whitespace ignored).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The consumer cursor the forwarder keeps in the journal.
    #[arg(long, default_value = "nats-forward")]
    pub consumer: String,
    /// Publishes awaiting JetStream's ack, at most (1 to 65536).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_in_flight: u64,
    /// The duplicate window of a stream this creates, in seconds (at least 1).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub duplicate_window_s: u64,
    /// How long a stream this creates keeps messages, in seconds (0: forever).
    #[arg(long, default_value_t = 0)]
    pub max_age_s: u64,
}

impl ForwardArgs {
    /// `bookend forward --dir DIR --nats URL` with every other flag at its
    /// default, for `serve --forward-nats`.
    pub fn with_defaults(dir: PathBuf, nats: String) -> anyhow::Result<ForwardArgs> {
        use clap::{Args as _, FromArgMatches as _};
        let command = ForwardArgs::augment_args(clap::Command::new("forward"));
        let argv: [std::ffi::OsString; 5] =
            ["forward".into(), "--dir".into(), dir.into(), "--nats".into(), nats.into()];
        let matches = command.try_get_matches_from(argv)?;
        Ok(ForwardArgs::from_arg_matches(&matches)?)
    }
}

/// Longest wait between reconnect attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the forwarder is told about stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Keep forwarding.
    No,
    /// Stop once JetStream has acknowledged everything through this LSN
    /// (`serve` after closing its journal: the close reaches the stream).
    OnceAcked(u64),
    /// Stop now; what JetStream acknowledged is acknowledged in the cursor.
    Now,
}

pub fn run(args: ForwardArgs) -> anyhow::Result<ExitCode> {
    require_journal_dir(&args.dir)?;
    // One thread: the reader, the publisher and the ack waiter hand work
    // to each other many times per event, and across threads each hand-off
    // would be a wake-up.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (stop_tx, stop) = watch::channel(Stop::No);
    runtime.spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(Stop::Now);
    });
    runtime.block_on(forward_until(args, stop))?;
    Ok(ExitCode::SUCCESS)
}

/// Forwards until `stop` says so (or the journal cannot be read).
pub async fn forward_until(args: ForwardArgs, stop: watch::Receiver<Stop>) -> anyhow::Result<()> {
    let journal_id = bookend_journal::journal_id(&bookend_journal::fs::StdFs, &args.dir)?
        .with_context(|| format!("{} has no journal id yet: start its writer first", args.dir.display()))?;
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the NATS token from {}", path.display()))?
                .trim_end()
                .to_string(),
        ),
        None => None,
    };
    let target = Target::new(&args, journal_id.to_string(), token);
    let mut backoff = Duration::from_millis(100);
    loop {
        match pump::run_once(&args, &target, stop.clone()).await {
            Ok(pump::Ended::Stopped) => return Ok(()),
            Ok(pump::Ended::Progress) => backoff = Duration::from_millis(100),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64,
                "forwarding to NATS failed; starting again from the cursor"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = wait_stopped(stop.clone()) => return Ok(()),
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Resolves once `stop` says `Now` (or its sender is gone).
pub(crate) async fn wait_stopped(mut stop: watch::Receiver<Stop>) {
    let _ = stop.wait_for(|s| *s == Stop::Now).await;
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn stop_signal() {
    wait_for_signal().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
