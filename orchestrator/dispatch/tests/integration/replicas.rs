//! The acceptance test: two dispatcher replicas as separate OS processes
//! (`dispatch-replica`, this crate's binary) on one PostgreSQL, the benchmark population's people
//! and conversations all arriving at once with random skills, channels and priorities; one
//! replica is killed (SIGKILL) in the middle of an assignment round.
//!
//! The test drives rounds like a floor of people would: both replicas tick at once; the people
//! each replica offered work to accept it and close it. Checked:
//! - while the replicas tick, continuously: no person is over capacity (loads equal held items,
//!   within capacity: one snapshot each time);
//! - after every round: no conversation accepted twice; VIP/urgent first — in every skill group,
//!   once a regular item has been offered, no VIP/urgent item of the group is still queued
//!   (except right after the kill: what the dead replica had locked is queued again and is
//!   offered first in the next round);
//! - the killed replica's open offers expire and are re-offered by the survivor;
//! - at the end every conversation was closed exactly once: nothing lost.

use std::future::Future;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::backends::{check_loads, check_no_double_acceptance, check_vip_first, last_offer};
use crate::core::t0;
use crate::support::{PgSchema, clock, with_postgres};

/// The population's seed.
const SEED: u64 = 7;

/// Offer timeout of the replicas, in their (manual) clock's seconds.
const OFFER_TIMEOUT: i64 = 30;

/// Both replicas tick at once in rounds `0..KILL_ROUND - 1`; in round `KILL_ROUND - 1` the
/// people of replica B walk away from their offers; in round `KILL_ROUND` both tick again and B
/// is killed 15 ms into its tick.
const KILL_ROUND: usize = 3;

/// One `dispatch-replica` process, driven over its stdin/stdout.
struct Replica {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    out: Lines<BufReader<ChildStdout>>,
}

impl Replica {
    fn start(name: &'static str, schema: &PgSchema) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dispatch-replica"))
            .args(["--url", &schema.url, "--schema", &schema.name])
            .args(["--start", &t0().to_rfc3339()])
            .args(["--offer-timeout", &OFFER_TIMEOUT.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { name, child, stdin, out }
    }

    async fn send(&mut self, command: &str) {
        self.stdin.write_all(format!("{command}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The numbers of the next `ok …` line.
    async fn reply(&mut self) -> Vec<usize> {
        let line = self.out.next_line().await.unwrap().unwrap_or_default();
        let rest = line
            .strip_prefix("ok")
            .unwrap_or_else(|| panic!("replica {} answered {line:?}", self.name));
        rest.split_whitespace().map(|n| n.parse().unwrap()).collect()
    }

    async fn ask(&mut self, command: impl AsRef<str>) -> Vec<usize> {
        self.send(command.as_ref()).await;
        self.reply().await
    }
}

/// Runs `f`, checking the capacity invariant every few milliseconds until it ends.
async fn checking_loads<T>(pool: &PgPool, f: impl Future<Output = T>, checks: &mut usize) -> T {
    tokio::pin!(f);
    loop {
        tokio::select! {
            out = &mut f => return out,
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                check_loads(pool).await;
                *checks += 1;
            }
        }
    }
}

async fn live(pool: &PgPool) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM dispatch_items WHERE state IN ('queued', 'offered', 'assigned')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    n
}

async fn acceptance(test: &str, agents: usize, items: usize) {
    with_postgres(test, |schema| async move {
        // The test's own connection: migrates the schema and reads it.
        let monitor = schema.backend(&clock()).await;
        let pool = monitor.pool().clone();
        let mut a = Replica::start("A", &schema);
        let mut b = Replica::start("B", &schema);
        assert_eq!(a.ask(&format!("agents {SEED} {agents} {items}")).await, [agents]);
        let started = Instant::now();
        // Everything arrives at once, half through each replica.
        let (qa, qb) = tokio::join!(
            a.ask(format!("enqueue {SEED} {agents} {items} 0 2")),
            b.ask(format!("enqueue {SEED} {agents} {items} 1 2")),
        );
        assert_eq!(qa[0] + qb[0], items);
        let enqueued = started.elapsed();

        let (mut offers, mut expired, mut closed, mut checks) = (0, 0, 0, 0);
        let mut b = Some(b);
        let mut tick_time = Duration::ZERO;
        let mut rounds = 0;
        for round in 0.. {
            assert!(round < 200, "the queue did not drain");
            rounds = round + 1;
            let mark = last_offer(&pool).await;
            let t = Instant::now();
            match b.as_mut() {
                Some(rb) if round + 1 == KILL_ROUND => {
                    // B ticks first (so it surely holds offers), then A; B's people walk away
                    // from their offers.
                    let tb = checking_loads(&pool, rb.ask("tick"), &mut checks).await;
                    let ta = checking_loads(&pool, a.ask("tick"), &mut checks).await;
                    assert!(tb[0] > 0, "replica B made offers");
                    offers += ta[0] + tb[0];
                    expired += ta[1] + tb[1];
                    tick_time += t.elapsed();
                    closed += a.ask("work").await[0];
                    check_no_double_acceptance(&pool).await;
                    check_vip_first(&pool, mark, &format!("round {round}")).await;
                    continue;
                }
                Some(rb) if round < KILL_ROUND => {
                    let (ta, tb) =
                        checking_loads(&pool, async { tokio::join!(a.ask("tick"), rb.ask("tick")) }, &mut checks).await;
                    offers += ta[0] + tb[0];
                    expired += ta[1] + tb[1];
                    tick_time += t.elapsed();
                    closed += a.ask("work").await[0];
                    closed += rb.ask("work").await[0];
                    check_no_double_acceptance(&pool).await;
                    check_vip_first(&pool, mark, &format!("round {round}")).await;
                    continue;
                }
                Some(rb) => {
                    // B dies in the middle of its assignment transaction.
                    a.send("tick").await;
                    rb.send("tick").await;
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    rb.child.start_kill().unwrap();
                    rb.child.wait().await.unwrap();
                    let ta = checking_loads(&pool, a.reply(), &mut checks).await;
                    offers += ta[0];
                    expired += ta[1];
                    tick_time += t.elapsed();
                    b = None;
                    closed += a.ask("work").await[0];
                    check_loads(&pool).await;
                    check_no_double_acceptance(&pool).await;
                    // B's offers lapse.
                    a.ask(&format!("advance {}", OFFER_TIMEOUT + 1)).await;
                }
                None => {
                    let ta = checking_loads(&pool, a.ask("tick"), &mut checks).await;
                    offers += ta[0];
                    expired += ta[1];
                    tick_time += t.elapsed();
                    closed += a.ask("work").await[0];
                    check_no_double_acceptance(&pool).await;
                    check_vip_first(&pool, mark, &format!("round {round}")).await;
                }
            }
            if live(&pool).await == 0 {
                break;
            }
        }
        a.send("quit").await;
        a.child.wait().await.unwrap();

        // Nothing lost, nothing closed twice.
        assert_eq!(closed, items);
        let (completed, once): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE n = 1) FROM (
                 SELECT item, count(*) AS n FROM dispatch_events WHERE kind = 'completed'
                 GROUP BY item) c",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((completed as usize, once as usize), (items, items));
        let (in_state,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM dispatch_items WHERE state = 'completed'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(in_state as usize, items);
        // The dead replica's offers expired, and each of those conversations was offered again.
        let (lapsed, reoffered): (i64, i64) = sqlx::query_as(
            "SELECT count(DISTINCT e.item),
                    count(DISTINCT e.item) FILTER (WHERE EXISTS (
                        SELECT 1 FROM dispatch_events o
                        WHERE o.kind = 'offered' AND o.item = e.item AND o.seq > e.seq))
             FROM dispatch_events e WHERE e.kind = 'offer_expired'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(lapsed > 0, "replica B's open offers expired");
        assert_eq!(lapsed, reoffered, "every lapsed offer was offered again");
        assert_eq!(expired as i64, lapsed);
        let line = format!(
            "acceptance: 2 replica processes, {agents} agents, {items} conversations: enqueue {enqueued:.2?}, {offers} offers in {rounds} rounds, {tick_time:.2?} of ticks ({:.0} offers/s), total {:.2?}; replica B killed 15 ms into its tick in round {KILL_ROUND}: {lapsed} of its offers expired and were re-offered; {checks} capacity checks while ticking: 0 over capacity, 0 double assignments, 0 lost, VIP/urgent first\n",
            offers as f64 / tick_time.as_secs_f64(),
            started.elapsed(),
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        monitor.close().await;
    })
    .await;
}

/// The full scale: 500 people, 20,000 conversations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replica_processes_500_agents_20000_conversations() {
    acceptance("two_replica_processes_500_agents_20000_conversations", 500, 20_000).await;
}
