//! `bookend serve`: the session journal over HTTP/JSON and Server-Sent
//! Events, for gateways written in Python or TypeScript. HTTP glue only:
//! commands are parsed and executed by the projector, exactly as for
//! `bookend append`.

mod metrics;
mod routes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, bail};
use bookend_journal::Durability;
use bookend_projector::{
    CloseReason, Command, OnUnclean, ResetMode, ResetPolicy, SessionJournal, SessionJournalOptions, Sessions,
};
use clap::Args;
use serde::Deserialize;
use tokio::sync::watch;

/// Default address: loopback only.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:7311";
/// Default largest request body.
pub const BODY_LIMIT_BYTES_DEFAULT: usize = 1024 * 1024;
/// Default most requests handled at once (more wait their turn).
pub const CONCURRENCY_MAX_DEFAULT: usize = 256;
/// Default period of the background expiry/reaper policies.
pub const POLICY_INTERVAL_MS_DEFAULT: u64 = 60_000;

/// Settings of `bookend serve`: flags, or a JSON config file with the same
/// names (flags win).
#[derive(Args, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeArgs {
    /// The journal directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Address to listen on (loopback unless --allow-remote).
    #[arg(long)]
    pub listen: Option<String>,
    /// Allow a non-loopback --listen address (requires --token-file).
    #[arg(long)]
    #[serde(skip)]
    pub allow_remote: bool,
    /// File holding the bearer token every request (but /v1/health) must carry.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// On SIGTERM/SIGINT: end active sessions (`shutdown`) or keep them (`restart`, the default).
    #[arg(long, value_parser = ["end", "keep"])]
    pub on_shutdown: Option<String>,
    /// On open after a crash: end (default) or keep the sessions left active.
    #[arg(long, value_parser = ["end", "keep"])]
    pub on_unclean: Option<String>,
    /// Durability of every command (default: touch buffered, the rest durable).
    #[arg(long, value_parser = ["durable", "buffered"])]
    pub durability: Option<String>,
    /// Largest request body in bytes (default 1 MiB); larger gets 413.
    #[arg(long)]
    pub body_limit_bytes: Option<usize>,
    /// Most requests handled at once (default 256).
    #[arg(long)]
    pub max_concurrent: Option<usize>,
    /// Reaper: end active sessions idle for this long, on a timer.
    #[arg(long)]
    pub reap_ttl_ms: Option<u64>,
    /// Idle reset: end sessions idle this many minutes, on a timer.
    #[arg(long)]
    pub idle_minutes: Option<u64>,
    /// Daily reset at this hour (0-23), on a timer.
    #[arg(long)]
    pub daily_at_hour: Option<u8>,
    /// Time zone of --daily-at-hour, minutes east of UTC.
    #[arg(long)]
    pub utc_offset_minutes: Option<i32>,
    /// How often the reset and reaper policies run (default 60 000 ms).
    #[arg(long)]
    pub policy_interval_ms: Option<u64>,
    /// Touches of one session within this window are coalesced (default 1000 ms).
    #[arg(long)]
    pub activity_coalesce_ms: Option<u64>,
    /// A JSON file with any of these settings (snake_case names).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// If acknowledged events are missing (a deleted or cut segment),
    /// record the loss and serve from after it instead of refusing to
    /// start. A flag only, never in a config file: see docs/operations.md.
    #[arg(long)]
    #[serde(skip)]
    pub accept_data_loss: bool,
}

impl ServeArgs {
    /// Flags over the config file.
    fn merged(self) -> anyhow::Result<ServeArgs> {
        let Some(path) = &self.config else { return Ok(self) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: ServeArgs =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        macro_rules! pick {
            ($($f:ident),*) => { ServeArgs {
                $($f: self.$f.or(file.$f),)*
                allow_remote: self.allow_remote,
                config: self.config,
                accept_data_loss: self.accept_data_loss,
            } };
        }
        Ok(pick!(
            dir,
            listen,
            token_file,
            on_shutdown,
            on_unclean,
            durability,
            body_limit_bytes,
            max_concurrent,
            reap_ttl_ms,
            idle_minutes,
            daily_at_hour,
            utc_offset_minutes,
            policy_interval_ms,
            activity_coalesce_ms
        ))
    }

    fn reset_policy(&self) -> Option<ResetPolicy> {
        let policy = Command::reset_policy(self.idle_minutes, self.daily_at_hour, self.utc_offset_minutes);
        (policy.mode != ResetMode::None).then_some(policy)
    }
}

/// What every handler shares.
pub struct AppState {
    pub journal: SessionJournal,
    pub token: Option<String>,
    pub body_limit: usize,
    /// Becomes true when the server is stopping: event streams end.
    pub stopping: watch::Receiver<bool>,
    pub requests: [AtomicU64; 5],
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    let token = token.trim().to_string();
    if token.len() < 16 {
        bail!("the token in {} is shorter than 16 characters", path.display());
    }
    Ok(token)
}

fn journal_options(args: &ServeArgs) -> anyhow::Result<SessionJournalOptions> {
    let mut options = SessionJournalOptions {
        durability: args
            .durability
            .as_deref()
            .map(Durability::from_str)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        on_unclean: args
            .on_unclean
            .as_deref()
            .map(OnUnclean::from_str)
            .transpose()
            .map_err(anyhow::Error::msg)?
            .unwrap_or_default(),
        ..SessionJournalOptions::default()
    };
    if let Some(ms) = args.activity_coalesce_ms {
        options.rules.activity_coalesce_ms = ms;
    }
    options.journal.accept_data_loss = args.accept_data_loss;
    Ok(options)
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let args = args.merged()?;
    let dir = args.dir.clone().context("--dir is required (on the command line or in the config file)")?;
    let listen = args.listen.clone().unwrap_or_else(|| LISTEN_DEFAULT.to_string());
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen:?} is not an address like 127.0.0.1:7311"))?;
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    if !addr.ip().is_loopback() {
        if !args.allow_remote {
            bail!(
                "--listen {addr} is not a loopback address; pass --allow-remote (with --token-file) to expose the journal"
            );
        }
        if token.is_none() {
            bail!(
                "a non-loopback --listen needs --token-file: every request must then carry the bearer token"
            );
        }
    }
    let journal = SessionJournal::open(&dir, journal_options(&args)?)
        .with_context(|| format!("opening the journal in {}", dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let served = runtime.block_on(serve(journal.clone(), addr, token, &args));
    let (reason, sessions) = match args.on_shutdown.as_deref() {
        Some("end") => (CloseReason::Shutdown, Sessions::End),
        _ => (CloseReason::Restart, Sessions::Keep),
    };
    let closed = journal.close(reason, sessions).context("closing the journal")?;
    tracing::info!(lsn = ?closed.lsn, ended = closed.events.len().saturating_sub(1), "journal closed");
    served?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    journal: SessionJournal,
    addr: SocketAddr,
    token: Option<String>,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let (stop_tx, stopping) = watch::channel(false);
    let state = Arc::new(AppState {
        journal: journal.clone(),
        token,
        body_limit: args.body_limit_bytes.unwrap_or(BODY_LIMIT_BYTES_DEFAULT),
        stopping: stopping.clone(),
        requests: Default::default(),
    });
    let app = routes::router(state, args.max_concurrent.unwrap_or(CONCURRENCY_MAX_DEFAULT));
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    // The first line on stdout says where the server listens (port 0 picks one).
    println!("bookend serve listening on http://{local}");
    tracing::info!(%local, dir = %journal.journal().dir().display(), "serving");
    let policies = tokio::spawn(run_policies(journal, args.clone(), stopping.clone()));
    let mut wait_stop = stopping.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: draining in-flight requests, then closing the journal");
        let _ = stop_tx.send(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = wait_stop.wait_for(|s| *s).await;
        })
        .await?;
    policies.abort();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!(
                "cannot listen for SIGTERM/SIGINT; stop the server with SIGKILL (the next open recovers)"
            );
            std::future::pending::<()>().await;
        }
    }
}

/// Runs the reset policy and the reaper on a timer until the server stops.
async fn run_policies(journal: SessionJournal, args: ServeArgs, mut stopping: watch::Receiver<bool>) {
    let policy = args.reset_policy();
    if policy.is_none() && args.reap_ttl_ms.is_none() {
        return;
    }
    let period = Duration::from_millis(args.policy_interval_ms.unwrap_or(POLICY_INTERVAL_MS_DEFAULT).max(10));
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let now = journal.now_ms();
        if let Some(policy) = policy {
            report_policy("expire", tokio::task::block_in_place(|| journal.expire(now, policy)), now).await;
        }
        if let Some(ttl) = args.reap_ttl_ms {
            report_policy("reap", tokio::task::block_in_place(|| journal.reap(now, ttl)), now).await;
        }
    }
}

async fn report_policy(
    name: &str,
    pending: bookend_projector::Result<bookend_projector::Pending<bookend_projector::Ack>>,
    now: u64,
) {
    match pending {
        Ok(pending) => match pending.await {
            Ok(ack) if !ack.events.is_empty() => {
                tracing::info!(policy = name, now, ended = ack.events.len(), "policy ended sessions")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(policy = name, error = %e, "policy failed"),
        },
        Err(e) => tracing::error!(policy = name, error = %e, "policy failed"),
    }
}
