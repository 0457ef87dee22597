//! The dispatch benchmark without the server: `cargo run --release -p fenliu-dispatch --example
//! bench -- [agents] [items] [postgres-url]` (what `fenliu bench dispatch` runs).

use fenliu_dispatch::bench::{bench_policy, run, system_clock};
use fenliu_dispatch::{EmbeddedBackend, PostgresBackend};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let agents = args.next().map(|a| a.parse()).transpose()?.unwrap_or(500);
    let items = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    let memory = EmbeddedBackend::in_memory(bench_policy(), system_clock());
    let mut reports = vec![run("embedded (memory)", &[memory], agents, items).await?];
    if let Some(url) = args.next() {
        let mut replicas = Vec::new();
        for _ in 0..2 {
            replicas.push(PostgresBackend::connect(&url, bench_policy(), system_clock()).await?);
        }
        reports.push(run("postgres", &replicas, agents, items).await?);
    }
    for r in reports {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}
