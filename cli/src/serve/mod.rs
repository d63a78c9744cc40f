//! `bookend serve`: the session journal over HTTP/JSON and Server-Sent
//! Events, for gateways written in Python or TypeScript. HTTP glue only:
//! commands are parsed and executed by the projector, exactly as for
//! `bookend append`.
//!
//! * `args`: flags and the config file, checked at startup.
//! * `listen`: connections, their cap and timeouts, the graceful shutdown.
//! * `routes`: the layers and the command route; `sessions`, `events` and
//!   `metrics` the others; `reply` the JSON errors; `policies` the timers.

mod args;
mod events;
mod listen;
mod metrics;
mod policies;
mod reply;
mod routes;
mod sessions;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::{Context, bail};
use bookend_projector::{SessionJournal, SessionJournalOptions};
use tokio::sync::{Semaphore, watch};

pub use args::ServeArgs;
use args::Settings;

use crate::forward;

/// What every handler shares.
/// The server's state, shared by every route.
pub type Shared = std::sync::Arc<AppState>;

pub struct AppState {
    pub journal: SessionJournal,
    pub settings: Settings,
    /// Becomes true when the server is stopping: event streams end.
    pub stopping: watch::Receiver<bool>,
    /// Places for event streams (`--max-streams`).
    pub streams: Arc<Semaphore>,
    pub requests: [AtomicU64; 5],
    /// Connections closed at once because `--max-connections` was reached.
    pub refused: Arc<AtomicU64>,
}

fn journal_options(s: &Settings) -> SessionJournalOptions {
    let mut options = SessionJournalOptions {
        durability: s.durability,
        on_unclean: s.on_unclean,
        clock_skew_max_ms: s.clock_skew_ms,
        ..SessionJournalOptions::default()
    };
    options.rules.activity_coalesce_ms = s.activity_coalesce_ms;
    options.journal.accept_data_loss = s.accept_data_loss;
    options.journal.shared_writers = s.shared_writers;
    options
}

/// `serve` makes a journal only in a new or empty directory: a directory
/// with other files in it (a source tree, a typo) is refused.
fn check_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() || std::fs::read_dir(dir)?.next().is_none() {
        return Ok(());
    }
    if !bookend_journal::has_journal(&bookend_journal::fs::StdFs, dir)? {
        bail!(
            "{} is not empty and holds no journal; give --dir a new or empty directory (or one holding a journal)",
            dir.display()
        );
    }
    Ok(())
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = args.settings()?;
    check_dir(&settings.dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // Bind first: a port in use must not cost the journal an open/close pair.
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(settings.addr))
        .with_context(|| format!("binding {} (is another server running there?)", settings.addr))?;
    let journal = SessionJournal::open(&settings.dir, journal_options(&settings))
        .with_context(|| format!("opening the journal in {}", settings.dir.display()))?;
    let forwarder = settings.forward.clone().map(|args| forward::InProcess::start(&runtime, args));
    let served = runtime.block_on(serve(journal.clone(), listener, settings.clone()));
    let (reason, sessions) = settings.on_shutdown;
    let closed = journal.close(reason, sessions);
    if let Some(forwarder) = forwarder {
        forwarder.finish(&runtime, closed.as_ref().ok().and_then(|c| c.lsn));
    }
    drop(runtime);
    let closed = closed.context("closing the journal")?;
    tracing::info!(lsn = ?closed.lsn, ended = closed.events.len().saturating_sub(1), "journal closed");
    served?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    journal: SessionJournal,
    listener: tokio::net::TcpListener,
    settings: Settings,
) -> anyhow::Result<()> {
    let (stop_tx, stopping) = watch::channel(false);
    let refused = Arc::new(AtomicU64::new(0));
    let state = Arc::new(AppState {
        journal: journal.clone(),
        streams: Arc::new(Semaphore::new(settings.max_streams)),
        settings: settings.clone(),
        stopping: stopping.clone(),
        requests: Default::default(),
        refused: refused.clone(),
    });
    let local = listener.local_addr()?;
    // The first line on stdout says where the server listens (port 0 picks one).
    println!("bookend serve listening on http://{local}");
    tracing::info!(%local, dir = %settings.dir.display(), "serving");
    let policies = tokio::spawn(policies::run_policies(journal, settings.clone(), stopping.clone()));
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "stopping: finishing in-flight requests (at most {:?}), then closing the journal",
            listen::SHUTDOWN_GRACE
        );
        let _ = stop_tx.send(true);
    });
    let listening = listen::Listening {
        listener,
        app: routes::router(state),
        max_connections: settings.max_connections,
        header_timeout: settings.header_timeout,
        refused,
    };
    listen::serve_connections(listening, stopping).await;
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
