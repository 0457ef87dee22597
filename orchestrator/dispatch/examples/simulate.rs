//! Runs a simulation scenario and prints one line per policy × AI front line: the library side of
//! `fenliu simulate --scenario`, without the server.
//!
//! `cargo run -p fenliu-dispatch --example simulate -- orchestrator/dispatch/scenarios/surge-10x.toml`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "orchestrator/dispatch/scenarios/surge-10x.toml".to_owned());
    let scenario = fenliu_dispatch::sim::Scenario::from_toml(&std::fs::read_to_string(&path)?)?;
    for r in scenario.run_all()? {
        println!(
            "{:<16} ai={:<5} to_humans={:>5} served={:>5} mean={:>7.1}s p50={:>7.1}s p95={:>7.1}s \
             SL={:>5.1}% util={:>5.1}% abandon={:>5.1}% vip_mean={:>7.1}s vip_p95={:>7.1}s \
             regular_mean={:>7.1}s skill={:>5.1}%",
            r.policy.name(),
            r.ai_front_line,
            r.to_humans,
            r.served,
            r.mean_wait_seconds,
            r.p50_wait_seconds,
            r.p95_wait_seconds,
            100.0 * r.service_level,
            100.0 * r.utilisation,
            100.0 * r.abandonment,
            r.priority_mean_wait_seconds,
            r.priority_p95_wait_seconds,
            r.regular_mean_wait_seconds,
            100.0 * r.skill_match
        );
    }
    Ok(())
}
