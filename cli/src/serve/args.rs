//! The settings of `bookend serve`: flags, or a JSON config file with the
//! same names (snake_case or the flags' own kebab-case; flags win), checked
//! once at startup against the ranges they can work in.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use bookend_journal::Durability;
use bookend_projector::{CloseReason, Command, OnUnclean, ResetMode, ResetPolicy, Sessions};
use clap::Args;
use serde::Deserialize;

use crate::forward::ForwardArgs;

/// Default address: loopback only.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:7311";

/// A numeric setting: its default and the range it can work in.
struct Range {
    flag: &'static str,
    default: u64,
    min: u64,
    max: u64,
}

impl Range {
    fn check(&self, value: Option<u64>) -> anyhow::Result<u64> {
        let v = value.unwrap_or(self.default);
        if !(self.min..=self.max).contains(&v) {
            bail!("--{} {v} is out of range: it must be {}..={}", self.flag, self.min, self.max);
        }
        Ok(v)
    }
}

const BODY_LIMIT: Range = Range { flag: "body-limit-bytes", default: 1 << 20, min: 1024, max: 64 << 20 };
const MAX_CONCURRENT: Range = Range { flag: "max-concurrent", default: 256, min: 1, max: 65_536 };
const MAX_CONNECTIONS: Range = Range { flag: "max-connections", default: 1024, min: 1, max: 65_536 };
const MAX_STREAMS: Range = Range { flag: "max-streams", default: 256, min: 1, max: 65_536 };
const HEADER_TIMEOUT: Range = Range { flag: "header-timeout-ms", default: 10_000, min: 100, max: 600_000 };
const BODY_TIMEOUT: Range = Range { flag: "body-timeout-ms", default: 10_000, min: 100, max: 600_000 };
const POLICY_INTERVAL: Range =
    Range { flag: "policy-interval-ms", default: 60_000, min: 10, max: 86_400_000 };
const COALESCE: Range = Range { flag: "activity-coalesce-ms", default: 1000, min: 0, max: 3_600_000 };
const CLOCK_SKEW: Range = Range { flag: "clock-skew-ms", default: 300_000, min: 0, max: 86_400_000 };
const IDLE_MINUTES: Range = Range { flag: "idle-minutes", default: 0, min: 1, max: 525_600 };
const REAP_TTL: Range = Range { flag: "reap-ttl-ms", default: 0, min: 1000, max: 31_536_000_000 };
const DAILY_HOUR: Range = Range { flag: "daily-at-hour", default: 0, min: 0, max: 23 };

/// Settings of `bookend serve`: flags, or a JSON config file with the same
/// names (flags win).
#[derive(Args, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeArgs {
    /// The journal directory (created if missing; refused if it holds other files).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:7311 or localhost:7311 (loopback unless --allow-remote).
    #[arg(long)]
    pub listen: Option<String>,
    /// Allow a non-loopback --listen address (requires --token-file).
    #[arg(long)]
    #[serde(alias = "allow-remote")]
    pub allow_remote: bool,
    /// File holding the bearer token every request (but /v1/health) must carry.
    #[arg(long)]
    #[serde(alias = "token-file")]
    pub token_file: Option<PathBuf>,
    /// On SIGTERM/SIGINT: end active sessions (`shutdown`) or keep them (`restart`, the default).
    #[arg(long, value_parser = ["end", "keep"])]
    #[serde(alias = "on-shutdown")]
    pub on_shutdown: Option<String>,
    /// On open after a crash: end (default) or keep the sessions left active.
    #[arg(long, value_parser = ["end", "keep"])]
    #[serde(alias = "on-unclean")]
    pub on_unclean: Option<String>,
    /// Durability of every command (default: touch buffered, the rest durable).
    #[arg(long, value_parser = ["durable", "buffered"])]
    pub durability: Option<String>,
    /// Largest request body in bytes (1024..=67108864, default 1048576); larger gets 413.
    #[arg(long)]
    #[serde(alias = "body-limit-bytes")]
    pub body_limit_bytes: Option<u64>,
    /// Most requests handled at once (1..=65536, default 256); more wait their turn.
    #[arg(long)]
    #[serde(alias = "max-concurrent")]
    pub max_concurrent: Option<u64>,
    /// Most open connections (1..=65536, default 1024); more are closed at once.
    #[arg(long)]
    #[serde(alias = "max-connections")]
    pub max_connections: Option<u64>,
    /// Most event streams at once (1..=65536, default 256); more get 503.
    #[arg(long)]
    #[serde(alias = "max-streams")]
    pub max_streams: Option<u64>,
    /// Longest wait for a request's headers, and for the next request on an idle connection (ms, default 10000).
    #[arg(long)]
    #[serde(alias = "header-timeout-ms")]
    pub header_timeout_ms: Option<u64>,
    /// Longest wait for a request's whole body (ms, default 10000); slower gets 408.
    #[arg(long)]
    #[serde(alias = "body-timeout-ms")]
    pub body_timeout_ms: Option<u64>,
    /// Reaper: end active sessions idle for this long (ms, at least 1000), on a timer.
    #[arg(long)]
    #[serde(alias = "reap-ttl-ms")]
    pub reap_ttl_ms: Option<u64>,
    /// Idle reset: end sessions idle this many minutes (1..=525600), on a timer.
    #[arg(long)]
    #[serde(alias = "idle-minutes")]
    pub idle_minutes: Option<u64>,
    /// Daily reset at this hour (0..=23), on a timer.
    #[arg(long)]
    #[serde(alias = "daily-at-hour")]
    pub daily_at_hour: Option<u64>,
    /// Time zone of --daily-at-hour, minutes east of UTC (-720..=840).
    #[arg(long, allow_hyphen_values = true)]
    #[serde(alias = "utc-offset-minutes")]
    pub utc_offset_minutes: Option<i64>,
    /// How often the reset and reaper policies run (ms, 10..=86400000, default 60000).
    #[arg(long)]
    #[serde(alias = "policy-interval-ms")]
    pub policy_interval_ms: Option<u64>,
    /// Touches of one session within this window are coalesced (ms, 0..=3600000, default 1000).
    #[arg(long)]
    #[serde(alias = "activity-coalesce-ms")]
    pub activity_coalesce_ms: Option<u64>,
    /// How far a command's `at` may be ahead of this machine's clock (ms, default 300000).
    #[arg(long)]
    #[serde(alias = "clock-skew-ms")]
    pub clock_skew_ms: Option<u64>,
    /// Forward every durable event into NATS JetStream from this process, as `bookend forward` does (e.g. nats://127.0.0.1:4222).
    #[arg(long)]
    #[serde(alias = "forward-nats")]
    pub forward_nats: Option<String>,
    /// The JetStream stream --forward-nats publishes to (default bookend; created when missing).
    #[arg(long)]
    #[serde(alias = "forward-stream")]
    pub forward_stream: Option<String>,
    /// A file holding the NATS token for --forward-nats.
    #[arg(long)]
    #[serde(alias = "forward-token-file")]
    pub forward_token_file: Option<PathBuf>,
    /// Write the journal beside other processes opened the same way
    /// (other servers, `bookend append --shared-writers`, Python's
    /// `bookend.open(..., shared_writers=True)`); a writer that dies has its
    /// sessions ended by a survivor.
    #[arg(long)]
    #[serde(alias = "shared-writers", default)]
    pub shared_writers: bool,
    /// A JSON file with any of these settings (snake_case or kebab-case names).
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

/// Every setting, checked, with its default filled in.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub token: Option<String>,
    pub on_shutdown: (CloseReason, Sessions),
    pub on_unclean: OnUnclean,
    pub durability: Option<Durability>,
    pub body_limit: usize,
    pub max_concurrent: usize,
    pub max_connections: usize,
    pub max_streams: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub reset_policy: Option<ResetPolicy>,
    pub reap_ttl_ms: Option<u64>,
    pub policy_interval: Duration,
    pub activity_coalesce_ms: u64,
    pub clock_skew_ms: u64,
    pub accept_data_loss: bool,
    pub shared_writers: bool,
    /// The in-process forwarder (`--forward-nats`).
    pub forward: Option<ForwardArgs>,
}

impl ServeArgs {
    /// Flags over the config file, checked.
    pub fn settings(self) -> anyhow::Result<Settings> {
        let args = self.merged()?;
        let dir =
            args.dir.clone().context("--dir is required (on the command line or in the config file)")?;
        let token = args.token_file.as_deref().map(read_token).transpose()?;
        let addr = resolve(args.listen.as_deref().unwrap_or(LISTEN_DEFAULT))?;
        check_exposure(addr, args.allow_remote, token.is_some())?;
        let forward = args.forward_args(&dir)?;
        Ok(Settings {
            dir,
            addr,
            token,
            on_shutdown: match args.on_shutdown.as_deref() {
                Some("end") => (CloseReason::Shutdown, Sessions::End),
                _ => (CloseReason::Restart, Sessions::Keep),
            },
            on_unclean: args
                .on_unclean
                .as_deref()
                .map(OnUnclean::from_str)
                .transpose()
                .map_err(anyhow::Error::msg)?
                .unwrap_or_default(),
            durability: args
                .durability
                .as_deref()
                .map(Durability::from_str)
                .transpose()
                .map_err(anyhow::Error::msg)?,
            body_limit: BODY_LIMIT.check(args.body_limit_bytes)? as usize,
            max_concurrent: MAX_CONCURRENT.check(args.max_concurrent)? as usize,
            max_connections: MAX_CONNECTIONS.check(args.max_connections)? as usize,
            max_streams: MAX_STREAMS.check(args.max_streams)? as usize,
            header_timeout: Duration::from_millis(HEADER_TIMEOUT.check(args.header_timeout_ms)?),
            body_timeout: Duration::from_millis(BODY_TIMEOUT.check(args.body_timeout_ms)?),
            reset_policy: args.reset_policy()?,
            reap_ttl_ms: args.reap_ttl_ms.map(|t| REAP_TTL.check(Some(t))).transpose()?,
            policy_interval: Duration::from_millis(POLICY_INTERVAL.check(args.policy_interval_ms)?),
            activity_coalesce_ms: COALESCE.check(args.activity_coalesce_ms)?,
            clock_skew_ms: CLOCK_SKEW.check(args.clock_skew_ms)?,
            accept_data_loss: args.accept_data_loss,
            shared_writers: args.shared_writers,
            forward,
        })
    }

    /// `bookend forward`'s settings for the in-process forwarder.
    fn forward_args(&self, dir: &Path) -> anyhow::Result<Option<ForwardArgs>> {
        let Some(nats) = self.forward_nats.clone() else {
            if self.forward_stream.is_some() || self.forward_token_file.is_some() {
                bail!("--forward-stream and --forward-token-file need --forward-nats");
            }
            return Ok(None);
        };
        let mut args = ForwardArgs::with_defaults(dir.to_path_buf(), nats)?;
        if let Some(stream) = &self.forward_stream {
            args.stream = stream.clone();
        }
        args.token_file = self.forward_token_file.clone();
        Ok(Some(args))
    }

    fn merged(self) -> anyhow::Result<ServeArgs> {
        let Some(path) = &self.config else { return Ok(self) };
        let file = read_config(path)?;
        macro_rules! pick {
            ($($f:ident),*) => { ServeArgs {
                $($f: self.$f.or(file.$f),)*
                allow_remote: self.allow_remote || file.allow_remote,
                shared_writers: self.shared_writers || file.shared_writers,
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
            max_connections,
            max_streams,
            header_timeout_ms,
            body_timeout_ms,
            reap_ttl_ms,
            idle_minutes,
            daily_at_hour,
            utc_offset_minutes,
            policy_interval_ms,
            activity_coalesce_ms,
            clock_skew_ms,
            forward_nats,
            forward_stream,
            forward_token_file
        ))
    }

    fn reset_policy(&self) -> anyhow::Result<Option<ResetPolicy>> {
        let idle = self.idle_minutes.map(|m| IDLE_MINUTES.check(Some(m))).transpose()?;
        let daily = self.daily_at_hour.map(|h| DAILY_HOUR.check(Some(h))).transpose()?.map(|h| h as u8);
        let offset = match self.utc_offset_minutes {
            Some(m) if !(-720..=840).contains(&m) => {
                bail!(
                    "--utc-offset-minutes {m} is out of range: it must be -720..=840 (UTC-12:00 to UTC+14:00)"
                )
            }
            Some(m) => Some(m as i32),
            None => None,
        };
        let policy = Command::reset_policy(idle, daily, offset);
        Ok((policy.mode != ResetMode::None).then_some(policy))
    }
}

/// The config file; `accept_data_loss` is refused by name, not as an
/// unknown field, because it is deliberately a flag only.
fn read_config(path: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {} as JSON", path.display()))?;
    if value.get("accept_data_loss").or_else(|| value.get("accept-data-loss")).is_some() {
        bail!(
            "{}: accept_data_loss is a flag only, never a config setting (see docs/operations.md)",
            path.display()
        );
    }
    serde_json::from_value(value).with_context(|| format!("reading the settings in {}", path.display()))
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

/// `host:port`, with the host a name (`localhost`) or an address.
fn resolve(listen: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let shape = "an address like 127.0.0.1:7311, [::1]:7311 or localhost:7311";
    let mut addrs: Vec<SocketAddr> =
        listen.to_socket_addrs().with_context(|| format!("--listen {listen:?} is not {shape}"))?.collect();
    // localhost may resolve to ::1 and 127.0.0.1: prefer IPv4, which every client reaches.
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.first().copied().with_context(|| format!("--listen {listen:?} resolves to no address"))
}

fn check_exposure(addr: SocketAddr, allow_remote: bool, has_token: bool) -> anyhow::Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if !allow_remote {
        bail!(
            "--listen {addr} is not a loopback address; pass --allow-remote (with --token-file) to expose the journal"
        );
    }
    if !has_token {
        bail!("a non-loopback --listen needs --token-file: every request must then carry the bearer token");
    }
    Ok(())
}
