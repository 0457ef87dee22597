//! One dispatcher replica on PostgreSQL, driven line by line over stdin: the separate OS process
//! the multi-replica acceptance test (and a load drill by hand) starts twice and kills.
//!
//! `dispatch-replica --url postgres://… [--schema NAME] --start RFC3339 [--offer-timeout SECS]`
//!
//! The replica's clock starts at `--start` and moves only on `advance`, so several processes share
//! one notion of time. Commands, one per line; each is answered with one line, `ok …` or
//! `error …`:
//! - `agents SEED AGENTS ITEMS`: adds the benchmark population's people (`bench::population`);
//! - `enqueue SEED AGENTS ITEMS PART PARTS`: queues the population's conversations whose index
//!   is `PART` modulo `PARTS` → `ok <queued>`;
//! - `tick` → `ok <offers made> <offers expired>`;
//! - `work`: the people this replica offered work to accept it and close it → `ok <closed>`;
//! - `advance SECS`: moves the clock;
//! - `quit`.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use fenliu_dispatch::bench::{bench_policy, population};
use fenliu_dispatch::{
    AgentId, DispatchBackend, EventKind, ItemId, ManualClock, Outcome, PostgresBackend,
};
use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Concurrent people-actions in `work`.
const WORKERS: usize = 8;

type Failure = Box<dyn std::error::Error + Send + Sync>;

struct Replica {
    backend: PostgresBackend,
    clock: ManualClock,
    /// Offers this replica made and nobody has worked yet.
    open: Vec<(ItemId, AgentId)>,
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut url = None;
    let mut schema = None;
    let mut start = None;
    let mut offer_timeout = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = Some(value),
            "--schema" => schema = Some(value),
            "--start" => start = Some(DateTime::parse_from_rfc3339(&value)?.with_timezone(&Utc)),
            "--offer-timeout" => offer_timeout = Some(value.parse::<i64>()?),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let url = url.ok_or("--url is required")?;
    let mut options = PgConnectOptions::from_str(&url)?;
    if let Some(schema) = &schema {
        options = options.options([("search_path", schema.as_str())]);
    }
    let clock = ManualClock::new(start.unwrap_or_else(Utc::now));
    let mut policy = bench_policy();
    if let Some(t) = offer_timeout {
        policy.offer_timeout_seconds = t;
    }
    let backend = PostgresBackend::connect_with(options, policy, Arc::new(clock.clone())).await?;
    let mut replica = Replica { backend, clock, open: Vec::new() };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"quit") {
            break;
        }
        let reply = match replica.run(&words).await {
            Ok(r) => format!("ok {r}\n"),
            Err(e) => format!("error {}\n", e.to_string().replace('\n', " ")),
        };
        out.write_all(reply.as_bytes()).await?;
        out.flush().await?;
    }
    replica.backend.close().await;
    Ok(())
}

fn num<T: FromStr>(words: &[&str], i: usize) -> Result<T, Failure> {
    words
        .get(i)
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("argument {i} of {:?} is missing or not a number", words).into())
}

impl Replica {
    async fn run(&mut self, words: &[&str]) -> Result<String, Failure> {
        match words.first().copied().unwrap_or_default() {
            "agents" => {
                let (people, _) = population(num(words, 2)?, num(words, 3)?, num(words, 1)?, "");
                let n = people.len();
                for p in people {
                    self.backend.upsert_agent(p).await?;
                }
                Ok(n.to_string())
            }
            "enqueue" => {
                let (_, work) = population(num(words, 2)?, num(words, 3)?, num(words, 1)?, "");
                let (part, parts): (usize, usize) = (num(words, 4)?, num(words, 5)?);
                let mine: Vec<_> = work
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| i % parts.max(1) == part)
                    .map(|(_, w)| w)
                    .collect();
                let n = mine.len();
                self.backend.enqueue_many(mine).await?;
                Ok(n.to_string())
            }
            "tick" => {
                let (mut offered, mut expired) = (0, 0);
                for e in self.backend.tick().await? {
                    match e.kind {
                        EventKind::Offered { item, agent, .. } => {
                            offered += 1;
                            self.open.push((item, agent));
                        }
                        EventKind::OfferExpired { .. } => expired += 1,
                        _ => {}
                    }
                }
                Ok(format!("{offered} {expired}"))
            }
            "work" => {
                let open = std::mem::take(&mut self.open);
                let n = open.len();
                let chunk = n.div_ceil(WORKERS).max(1);
                let mut tasks = Vec::new();
                for part in open.chunks(chunk) {
                    let (b, part) = (self.backend.clone(), part.to_vec());
                    tasks.push(tokio::spawn(async move {
                        let done = Outcome { resolved_first_contact: true, csat: None };
                        for (item, agent) in &part {
                            b.accept(item, agent).await?;
                            b.complete(item, agent, done).await?;
                        }
                        Ok::<_, fenliu_dispatch::DispatchError>(())
                    }));
                }
                for t in tasks {
                    t.await??;
                }
                Ok(n.to_string())
            }
            "advance" => {
                self.clock.advance(TimeDelta::seconds(num(words, 1)?));
                Ok(String::new())
            }
            other => Err(format!("unknown command {other:?}").into()),
        }
    }
}
