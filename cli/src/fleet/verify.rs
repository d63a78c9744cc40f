//! `bookend fleet verify`: reads the whole stream once (an ordered
//! consumer) and checks, per journal: each LSN at most once (no duplicate
//! got past the window), LSNs dense from 1 to the last, and every session
//! span ended exactly once (no end without an open span; none left open
//! when the journal's last epoch closed).

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull};
use clap::Args;
use futures_util::StreamExt;
use serde_json::{Value, json};

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The NATS server, for example nats://127.0.0.1:4222.
    #[arg(long)]
    pub nats: String,
    /// The JetStream stream the forwarders publish to.
    #[arg(long, default_value = "bookend")]
    pub stream: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What one journal's messages said.
#[derive(Default)]
struct Journal {
    lsns: BTreeMap<u64, u32>,
    /// session id -> whether a span is open
    open: HashMap<String, bool>,
    problems: Vec<String>,
    closed_with_sessions_open: bool,
}

impl Journal {
    fn take(&mut self, lsn: u64, event: &Value) {
        *self.lsns.entry(lsn).or_default() += 1;
        if self.lsns[&lsn] > 1 {
            return;
        }
        let id = event["session_id"].as_str().unwrap_or_default().to_string();
        let was_open = self.open.get(&id).copied() == Some(true);
        match event["type"].as_str().unwrap_or_default() {
            "session:start" | "session:reopen" => {
                self.open.insert(id.clone(), true);
                if was_open {
                    self.problems.push(format!("LSN {lsn}: {id} started or reopened while open"));
                }
            }
            "session:end" => {
                self.open.insert(id.clone(), false);
                if !was_open {
                    self.problems.push(format!("LSN {lsn}: {id} ended with no open span"));
                }
            }
            "journal:close" => {
                self.closed_with_sessions_open = self.open.values().any(|o| *o);
            }
            "journal:open" => self.closed_with_sessions_open = false,
            _ => {}
        }
    }

    fn report(mut self, id: &str) -> Value {
        let last = self.lsns.keys().next_back().copied().unwrap_or(0);
        let duplicates: Vec<u64> = self.lsns.iter().filter(|(_, n)| **n > 1).map(|(l, _)| *l).collect();
        let missing = last - self.lsns.len() as u64;
        if !duplicates.is_empty() {
            self.problems.push(format!(
                "{} LSNs more than once (first: {})",
                duplicates.len(),
                duplicates[0]
            ));
        }
        if missing > 0 {
            self.problems.push(format!("{missing} LSNs missing below the last, {last}"));
        }
        let open = self.open.values().filter(|o| **o).count();
        json!({"journal_id": id, "messages": self.lsns.values().map(|n| u64::from(*n)).sum::<u64>(),
               "last_lsn": last, "open_sessions": open, "problems": self.problems})
    }
}

pub fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let journals = runtime.block_on(read_stream(&args))?;
    let reports: Vec<Value> = journals.into_iter().map(|(id, j)| j.report(&id)).collect();
    let clean = reports.iter().all(|r| r["problems"].as_array().is_some_and(Vec::is_empty));
    if args.json {
        println!("{}", json!({"clean": clean, "journals": reports}));
    } else {
        for r in &reports {
            let id = r["journal_id"].as_str().unwrap_or_default();
            println!(
                "journal {id}: {} messages, last LSN {}, {} sessions open",
                r["messages"], r["last_lsn"], r["open_sessions"]
            );
            for p in r["problems"].as_array().into_iter().flatten() {
                println!("  PROBLEM {}", p.as_str().unwrap_or_default());
            }
        }
        println!("{}", if clean { "OK: every journal is whole in the stream" } else { "PROBLEMS found" });
    }
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

async fn read_stream(args: &VerifyArgs) -> anyhow::Result<BTreeMap<String, Journal>> {
    let client = async_nats::connect(args.nats.as_str())
        .await
        .with_context(|| format!("connecting to {}", args.nats))?;
    let js = jetstream::new(client);
    let mut stream =
        js.get_stream(&args.stream).await.with_context(|| format!("opening stream {}", args.stream))?;
    let total = stream.info().await?.state.messages;
    let consumer = stream.create_consumer(pull::OrderedConfig::default()).await?;
    let mut messages = consumer.messages().await?;
    let mut journals: BTreeMap<String, Journal> = BTreeMap::new();
    let mut read = 0u64;
    while read < total {
        let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
        let message = match next {
            Ok(Some(m)) => m?,
            Ok(None) => break,
            Err(_) => anyhow::bail!("the stream stopped delivering after {read} of {total} messages"),
        };
        read += 1;
        let header =
            |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
        let (Some(id), Some(lsn)) = (header("Bookend-Journal"), header("Bookend-Lsn")) else { continue };
        let event: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
        let lsn = lsn.parse::<u64>().unwrap_or(0);
        journals.entry(id).or_default().take(lsn, &event);
    }
    Ok(journals)
}
