//! The `bookend` command line. Thin: it parses arguments, calls the
//! projector and the journal, and prints. No format or lifecycle logic lives
//! here.

/// mimalloc, built without transparent huge pages, giving freed memory
/// back at once: why is in `alloc/src/lib.rs`. Folding a large journal
/// allocates and frees millions of small strings, where glibc's free
/// dominated `verify`.
#[global_allocator]
static ALLOCATOR: bookend_alloc::Allocator = bookend_alloc::Allocator;

mod ack_line;
mod append;
mod demo;
mod fleet;
mod forward;
mod inspect;
mod output;
mod serve;
mod tail;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  bookend demo --dir ./bookend-demo
  echo '{\"cmd\":\"start\",\"session_id\":\"s1\",\"key\":\"telegram:42\"}' | bookend append --dir ./j
  bookend tail --dir ./j --follow --consumer memory-hooks --type session:end
  bookend sessions --dir ./j --active
  bookend verify --dir ./j --json";

#[derive(Parser)]
#[command(name = "bookend", version, about = "An event-sourced session journal for chat and agent gateways.")]
#[command(after_help = EXAMPLES)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DirArg {
    /// The journal directory.
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Read JSON commands from stdin, one a line; write one JSON ack a line, in order.
    #[command(
        after_help = "Example:\n  printf '%s\\n' '{\"cmd\":\"start\",\"session_id\":\"s1\",\"key\":\"k\"}' \\\n    '{\"cmd\":\"end\",\"session_id\":\"s1\",\"reason\":\"manual_reset\"}' | bookend append --dir ./j"
    )]
    Append {
        #[command(flatten)]
        dir: DirArg,
        /// Durability of every command: durable or buffered (default: touch
        /// buffered, the rest durable).
        #[arg(long, value_name = "durable|buffered")]
        durability: Option<bookend_journal::Durability>,
        /// What to do with sessions an unclean shutdown left active: end them
        /// crash_recovered, or keep them.
        #[arg(long, value_name = "end|keep", default_value = "end")]
        on_unclean: bookend_projector::OnUnclean,
        /// If acknowledged events are missing (a deleted or cut segment),
        /// record the loss in the journal and continue after it instead of
        /// refusing to open. See docs/operations.md before using it.
        #[arg(long)]
        accept_data_loss: bool,
        /// Write the journal beside other processes opened the same way
        /// (docs/ARCHITECTURE.md, "Several writer processes"): this
        /// process's sessions are its own, and a writer that dies has its
        /// sessions ended by a survivor.
        #[arg(long)]
        shared_writers: bool,
        /// With --shared-writers: how often to check whether another writer
        /// has died, in ms (10..=60000).
        #[arg(long, value_name = "MS", default_value_t = 500, requires = "shared_writers",
              value_parser = clap::value_parser!(u64).range(10..=60_000))]
        writer_check_ms: u64,
    },
    /// Print events as JSON lines.
    #[command(
        after_help = "Examples:\n  bookend tail --dir ./j --from 100\n  bookend tail --dir ./j --follow --consumer dashboard --type session:start,session:end"
    )]
    Tail {
        #[command(flatten)]
        dir: DirArg,
        /// First LSN to print.
        #[arg(long, default_value_t = 1, conflicts_with = "consumer")]
        from: u64,
        /// Keep waiting for new events (stop with Ctrl-C or SIGTERM).
        #[arg(long)]
        follow: bool,
        /// Resume from, and acknowledge, this durable consumer's cursor.
        #[arg(long)]
        consumer: Option<String>,
        /// Only these event types (comma separated), e.g. session:end.
        #[arg(long = "type", value_delimiter = ',')]
        types: Vec<String>,
    },
    /// Show the session table folded from the journal, in start order.
    #[command(
        after_help = "Examples:\n  bookend sessions --dir ./j --active\n  bookend sessions --dir ./j --limit 20\n  bookend sessions --dir ./j --key telegram:42 --json"
    )]
    Sessions {
        #[command(flatten)]
        dir: DirArg,
        /// Only active sessions.
        #[arg(long)]
        active: bool,
        /// Only sessions on this key.
        #[arg(long)]
        key: Option<String>,
        /// At most this many sessions (the first ones, in start order).
        #[arg(long)]
        limit: Option<usize>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check every frame and every lifecycle invariant (exit 0 clean, 1 violation, 2 corruption).
    #[command(after_help = "Example:\n  bookend verify --dir ./j --json")]
    Verify {
        #[command(flatten)]
        dir: DirArg,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Truncate a torn tail, or move a corrupt suffix into quarantine files (never deletes bytes).
    #[command(after_help = "Example:\n  bookend repair --dir ./j")]
    Repair {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Rebuild the projection from LSN 1 and compare it with the stored checkpoint.
    #[command(after_help = "Example:\n  bookend replay --dir ./j")]
    Replay {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Segments, bytes, events, sessions by state, consumers and their lag.
    #[command(after_help = "Example:\n  bookend stats --dir ./j")]
    Stats {
        #[command(flatten)]
        dir: DirArg,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a simulated gateway (resets, expiry, a kill -9 crash, a restart) on a fresh journal, then verify.
    #[command(after_help = "Example:\n  bookend demo --dir ./bookend-demo")]
    Demo {
        /// Where to create the demo journal (a previous demo there is replaced).
        #[arg(long, default_value = "./bookend-demo")]
        dir: PathBuf,
    },
    /// Serve the journal over HTTP/JSON and Server-Sent Events (see docs/http.md).
    #[command(
        after_help = "Examples:\n  bookend serve --dir ./j --listen 127.0.0.1:7311\n  bookend serve --dir ./j --idle-minutes 30 --reap-ttl-ms 90000 --on-shutdown end\n  bookend serve --config serve.json"
    )]
    Serve(Box<serve::ServeArgs>),
    /// Forward the journal's durable events into a NATS JetStream stream, exactly once (see docs/fleet.md).
    #[command(after_help = "Example:\n  bookend forward --dir ./j --nats nats://127.0.0.1:4222")]
    Forward(forward::ForwardArgs),
    /// Read the fleet's stream: `bookend fleet serve` views it, `bookend fleet verify` checks it.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// (internal) The gateway process the demo kills.
    #[command(hide = true)]
    DemoChild {
        #[command(flatten)]
        dir: DirArg,
    },
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Serve the fleet-wide view (every journal's sessions and events) read-only over HTTP.
    #[command(
        after_help = "Example:\n  bookend fleet serve --nats nats://127.0.0.1:4222 --listen 127.0.0.1:7312"
    )]
    Serve(fleet::FleetArgs),
    /// Check every journal in the stream: no duplicate, no gap, each span ended once.
    #[command(after_help = "Example:\n  bookend fleet verify --nats nats://127.0.0.1:4222")]
    Verify(fleet::VerifyArgs),
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    // sled's own debug output is its internals, not bookend's: quiet unless
    // BOOKEND_LOG names it (for example BOOKEND_LOG=debug,sled=debug).
    let directives = match std::env::var("BOOKEND_LOG") {
        Ok(v) if v.contains("sled") => v,
        Ok(v) => format!("{v},sled=warn"),
        Err(_) => format!("{level},sled=warn"),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // What runs beside a gateway gives freed memory back at once; an audit
    // keeps what it folds until it ends, and would only pay for the returns
    // (alloc/src/lib.rs).
    if !matches!(cli.command, Command::Verify { .. } | Command::Replay { .. }) {
        bookend_alloc::return_freed_memory_at_once();
    }
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Append {
            dir,
            durability,
            on_unclean,
            accept_data_loss,
            shared_writers,
            writer_check_ms,
        } => {
            let shared = shared_writers.then_some(std::time::Duration::from_millis(writer_check_ms));
            append::run(&dir.dir, append::Opening { durability, on_unclean, accept_data_loss, shared })
        }
        Command::Tail { dir, from, follow, consumer, types } => {
            tail::run(&dir.dir, from, follow, consumer, types)
        }
        Command::Sessions { dir, active, key, limit, json } => {
            inspect::sessions(&dir.dir, inspect::SessionFilter { active, key, limit }, json)
        }
        Command::Verify { dir, json } => inspect::verify(&dir.dir, json),
        Command::Repair { dir } => inspect::repair(&dir.dir),
        Command::Replay { dir } => inspect::replay(&dir.dir),
        Command::Stats { dir, json } => inspect::stats(&dir.dir, json),
        Command::Demo { dir } => demo::run(&dir),
        Command::Serve(args) => serve::run(*args),
        Command::Forward(args) => forward::run(args),
        Command::Fleet(FleetCommand::Verify(args)) => fleet::run_verify(args),
        Command::Fleet(FleetCommand::Serve(args)) => fleet::run(args),
        Command::DemoChild { dir } => demo::child(&dir.dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => output::report_error(&e),
    }
}
