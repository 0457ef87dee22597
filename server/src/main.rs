//! The `fenliu` command: `serve` runs the HTTP API, `chat` talks to the AI front line in the
//! terminal. Both assemble the same runtime from `fenliu.toml` and the environment.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use fenliu_agent::Channel;
use fenliu_orchestrator::TurnRequest;
use fenliu_server::config::Config;
use fenliu_server::runtime::Runtime;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "fenliu",
    version,
    about = "Customer service that keeps working when traffic spikes"
)]
struct Cli {
    /// Configuration file (default: ./fenliu.toml if present).
    #[arg(long, global = true, env = "FENLIU_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve,
    /// Chat with the AI front line in the terminal, as a customer.
    Chat {
        /// The customer's id in the shop, e.g. `james_li_5688`.
        #[arg(long)]
        customer: String,
    },
    /// Train the supervisor from labelled CSV/JSONL files plus every agent's phrases.
    Train {
        /// Labelled files (CSV with `text`,`route` columns, or JSONL).
        #[arg(long = "data", required = true)]
        data: Vec<PathBuf>,
        /// Where to write the router artefact.
        #[arg(long, default_value = "data/router/default.json")]
        out: PathBuf,
        /// Folds of the cross-validation report (0 or 1: no report).
        #[arg(long, default_value_t = 5)]
        cv: usize,
        /// Train the lexical stage only (no embedding model needed).
        #[arg(long)]
        no_embed: bool,
        /// Write every example the cross-validation misrouted to this CSV (text, label,
        /// predicted, stage, source): where to look for mislabelled or ambiguous training data.
        #[arg(long)]
        misrouted: Option<PathBuf>,
    },
    /// Route messages offline (arguments, or one per line on stdin) and show the decision.
    Route {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Messages; read from stdin when none are given.
        messages: Vec<String>,
    },
    /// Contact-centre staffing (Erlang C): the people needed for a service-level target.
    Staffing(StaffingArgs),
    /// Simulate the human queue: the plain M/M/c case from flags, or a scenario file.
    Simulate(SimulateArgs),
    /// Ingest documents into the knowledge base: Markdown, text, HTML, Q&A CSV/JSONL, the
    /// product catalogue JSON; directories recursively. Changed files replace their chunks,
    /// deleted files (under a given directory) are removed.
    Ingest(IngestCli),
    /// The knowledge base: `search QUESTION`, `eval` (hit@k on labelled questions), `backup DIR`,
    /// `stats`.
    Kb {
        #[command(subcommand)]
        what: KbCommand,
    },
    /// Offline evals: run datasets through the orchestrator, print the metrics and write JSON,
    /// Markdown and HTML reports; `fenliu eval compare BASE NEW` checks for regressions.
    Eval(EvalCli),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

fn main() -> anyhow::Result<()> {
    pin_compute_threads();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

/// Fixes candle's thread settings once, before any thread exists, unless the user set them:
/// - `RAYON_NUM_THREADS` to candle's own default, so that candle stops reading `/proc/cpuinfo`
///   on every matrix product (see [`fenliu_models::default_compute_threads`]);
/// - `CANDLE_NUM_THREADS=1`: candle's element-wise kernels run inline instead of on a process-wide
///   spinning pool that the models' own thread pools (`threads` options) cannot bound, and that
///   serialises two embedding batches running side by side.
///
/// Measured with `fenliu bench models` (MiniLM sentences/s, 2 threads): batch 1 117 → 214,
/// batch 32 287 → 440.
#[allow(unsafe_code)]
fn pin_compute_threads() {
    let threads = fenliu_models::default_compute_threads().to_string();
    for (name, value) in [("RAYON_NUM_THREADS", threads.as_str()), ("CANDLE_NUM_THREADS", "1")] {
        if std::env::var_os(name).is_none() {
            // SAFETY: called first in `main`, before the runtime or any other thread exists, so
            // nothing can read the environment concurrently.
            unsafe { std::env::set_var(name, value) };
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // An eval handles thousands of turns: their info lines would bury the metrics table.
    let level = if matches!(cli.command, Command::Eval(_)) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Chat { customer } => chat(config, &customer).await,
        Command::Train { data, out, cv, no_embed, misrouted } => {
            let args =
                fenliu_server::commands::TrainArgs { data, out, folds: cv, no_embed, misrouted };
            fenliu_server::commands::train(&config, &args).await
        }
        Command::Route { json, messages } => {
            fenliu_server::commands::route(&config, messages, json).await
        }
        Command::Eval(cli) => eval(&config, cli).await,
        Command::Staffing(args) => staffing(&args),
        Command::Simulate(args) => simulate(&args),
        Command::Ingest(args) => {
            let args = fenliu_server::knowledge::IngestArgs {
                paths: args.paths,
                tenant: args.tenant,
                doc_type: args.doc_type,
                language: args.language,
            };
            fenliu_server::knowledge::ingest(&config, &args).await
        }
        Command::Kb { what: KbCommand::Eval { questions, k, verbose } } => {
            fenliu_server::knowledge::eval(&config, &questions, k, verbose).await
        }
        Command::Kb { what: KbCommand::Backup { dest } } => {
            fenliu_server::knowledge::backup(&config, &dest).await
        }
        Command::Kb { what: KbCommand::Stats } => fenliu_server::knowledge::stats(&config).await,
        Command::Kb { what: KbCommand::Search { question, doc_type, language, top_k } } => {
            fenliu_server::knowledge::search(&config, &question, doc_type, language, top_k).await
        }
        Command::Bench { what: BenchCommand::Knowledge(args) } => {
            let args = fenliu_server::bench_knowledge::BenchKnowledgeArgs {
                sizes: args.sizes,
                real: args.real,
                queries: args.queries,
                ef: args.ef,
                ingest: args.ingest,
            };
            fenliu_server::bench_knowledge::run(&config, &args).await
        }
        Command::Bench { what: BenchCommand::Dispatch(args) } => bench_dispatch(&args).await,
        Command::Bench { what: BenchCommand::Models(args) } => bench_models(args).await,
        Command::Bench { what: BenchCommand::Turns(args) } => {
            let args = fenliu_server::bench_turns::BenchTurnsArgs {
                shop: args.shop,
                concurrency: args.concurrency,
                turns: args.turns,
                runs: args.runs,
                json: args.json,
            };
            fenliu_server::bench_turns::bench_turns(&args).await
        }
        Command::Bench { what: BenchCommand::Route(args) } => {
            let args = fenliu_server::commands::BenchRouteArgs {
                data: args.data,
                messages: args.messages,
                json: args.json,
            };
            fenliu_server::commands::bench_route(&config, &args).await
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = Runtime::build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.server.bind)
        .await
        .with_context(|| format!("binding {}", config.server.bind))?;
    tracing::info!(addr = %listener.local_addr()?, "fenliu is serving");
    // The ticket SLA sweep and the delivery of ticket notifications, on their timers.
    let _tickets = fenliu_server::tickets::spawn_background(
        runtime.orchestrator.conversations().clone(),
        config.server.tickets.clone(),
    );
    axum::serve(listener, fenliu_server::app::router(runtime, &config.server))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
    tracing::info!("shutting down");
}

async fn chat(config: Config, customer_id: &str) -> anyhow::Result<()> {
    let runtime = Runtime::build(&config).await?;
    let customer = runtime
        .customer(customer_id)
        .await?
        .with_context(|| format!("unknown customer {customer_id:?}"))?;
    println!("Chatting as {} ({}). Empty line or Ctrl-D to quit.", customer.name, customer.id);
    let mut conversation_id = None;
    let stdin = std::io::stdin();
    loop {
        print!("> ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok(());
        }
        let request = TurnRequest {
            conversation_id: conversation_id.clone(),
            customer: customer.clone(),
            channel: Channel::Api,
            text: line.trim().to_owned(),
        };
        match runtime.orchestrator.handle_turn(request).await {
            Ok(outcome) => {
                conversation_id = Some(outcome.conversation_id.clone());
                let tools: Vec<&str> = outcome.tool_calls.iter().map(|c| c.name.as_str()).collect();
                println!("{}", outcome.reply);
                println!(
                    "  [{} {:.2} via {}; agent {}; tools [{}]]",
                    outcome.decision.route,
                    outcome.decision.confidence,
                    outcome.decision.stage,
                    outcome.agent.as_deref().unwrap_or("-"),
                    tools.join(", ")
                );
            }
            Err(e) => println!("  error: {e}"),
        }
    }
}

// ---- offline evals: `eval`, `eval compare` ----------------------------------------------------

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct EvalCli {
    #[command(subcommand)]
    action: Option<EvalAction>,
    #[command(flatten)]
    run: EvalRunArgs,
}

#[derive(Subcommand)]
enum EvalAction {
    /// Compare a new report with a baseline; exits with 1 when a metric regressed past its
    /// tolerance.
    Compare(EvalCompareArgs),
}

#[derive(clap::Args)]
struct EvalRunArgs {
    /// Dataset files (default: data/evals/scenarios.jsonl).
    #[arg(long = "data")]
    data: Vec<PathBuf>,
    /// Dataset format: transcripts, bitext, clinc150, banking77, crosswoz, tau_retail (default:
    /// guessed from each file name).
    #[arg(long)]
    format: Option<String>,
    /// At most this many conversations per dataset (a seeded sample).
    #[arg(long)]
    limit: Option<usize>,
    /// Runs of each conversation (the k of pass^k).
    #[arg(long, default_value_t = 1)]
    trials: u32,
    /// Seed of sampling and of simulated users.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Conversations run in parallel (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Directory of the reports.
    #[arg(long, default_value = "target/evals")]
    out: PathBuf,
    /// File name (without extension) of the reports.
    #[arg(long, default_value = "report")]
    name: String,
    /// Customer of conversations that name none.
    #[arg(long, default_value = "james_li_5688")]
    customer: String,
    /// Models: `none` (deterministic agents, no LLM stage), `config` (the [models] roles), a
    /// provider or chain of [models] (e.g. `local`, `hosted`) for every role, or `replay`
    /// (answers only from --replay-cache).
    #[arg(long, default_value = "none")]
    model: String,
    /// Record model answers into this JSONL file, and answer from it when a request repeats.
    #[arg(long)]
    replay_cache: Option<PathBuf>,
    /// Who plays the customer in tasks: `scripted`, or `llm` (needs --user-model).
    #[arg(long, default_value = "scripted")]
    user: String,
    /// The provider or chain of [models] playing the LLM user.
    #[arg(long)]
    user_model: Option<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct EvalCompareArgs {
    /// The baseline report (JSON).
    base: PathBuf,
    /// The new report (JSON).
    new: PathBuf,
    /// Largest allowed drop of a quality share (accuracy, F1, precision, recall, automation,
    /// exact match, pass^1), absolute.
    #[arg(long, default_value_t = 0.02)]
    tolerance: f64,
    /// Largest allowed drop of one route's F1.
    #[arg(long, default_value_t = 0.05)]
    route_tolerance: f64,
    /// Routes with fewer labelled turns are not compared one by one.
    #[arg(long, default_value_t = 10)]
    min_support: usize,
    /// Largest allowed relative increase of LLM calls and tokens per turn.
    #[arg(long, default_value_t = 0.10)]
    cost_tolerance: f64,
    /// Largest allowed relative increase of median latency (default: not compared).
    #[arg(long)]
    latency_tolerance: Option<f64>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

async fn eval(config: &Config, cli: EvalCli) -> anyhow::Result<()> {
    use fenliu_server::eval::{CompareArgs, EvalArgs, compare_reports};
    match cli.action {
        Some(EvalAction::Compare(a)) => {
            let args = CompareArgs {
                base: a.base,
                new: a.new,
                thresholds: fenliu_evals::compare::Thresholds {
                    quality: a.tolerance,
                    route_f1: a.route_tolerance,
                    min_support: a.min_support,
                    cost: a.cost_tolerance,
                    latency: a.latency_tolerance,
                },
                json: a.json,
            };
            if !compare_reports(&args)? {
                std::process::exit(1);
            }
            Ok(())
        }
        None => {
            let r = cli.run;
            let args = EvalArgs {
                data: r.data,
                format: r.format,
                limit: r.limit,
                trials: r.trials,
                seed: r.seed,
                jobs: r.jobs,
                out: r.out,
                name: r.name,
                customer: r.customer,
                model: r.model,
                replay_cache: r.replay_cache,
                user: r.user,
                user_model: r.user_model,
                quiet: r.quiet,
            };
            fenliu_server::eval::eval(config, &args).await.map(|_| ())
        }
    }
}

// ---- the human dispatcher's tools: `staffing`, `simulate`, `bench dispatch` ------------------

#[derive(clap::Args)]
struct StaffingArgs {
    /// Contacts arriving per hour.
    #[arg(long)]
    arrivals_per_hour: f64,
    /// Mean handle time in minutes.
    #[arg(long)]
    handle_minutes: f64,
    /// Answer-time target in seconds.
    #[arg(long, default_value_t = 20.0)]
    target_seconds: f64,
    /// Share to answer within the target: 0.8 or 80 (%).
    #[arg(long, default_value_t = 0.8)]
    service_level: f64,
    /// Staffing levels shown below and above the answer.
    #[arg(long, default_value_t = 3)]
    around: u32,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn staffing(args: &StaffingArgs) -> anyhow::Result<()> {
    use fenliu_dispatch::erlang::Staffing;
    let level =
        if args.service_level > 1.0 { args.service_level / 100.0 } else { args.service_level };
    let s = Staffing {
        arrivals_per_hour: args.arrivals_per_hour,
        handle_seconds: args.handle_minutes * 60.0,
        target_seconds: args.target_seconds,
        service_level: level,
    };
    let needed = s.agents_needed().with_context(
        || "arrivals, handle time and service level must be positive (service level below 100%)",
    )?;
    let rows = s.table(needed, args.around, args.around);
    if args.json {
        let out = serde_json::json!({
            "load_erlangs": s.load(),
            "agents_needed": needed,
            "input": s,
            "table": rows,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:.1} arrivals/h × {:.1} min = {:.2} Erlangs; target {:.0}% answered within {:.0} s",
        s.arrivals_per_hour,
        args.handle_minutes,
        s.load(),
        100.0 * level,
        s.target_seconds
    );
    println!("agents needed: {needed}\n");
    println!(
        "{:>7} {:>9} {:>14} {:>14} {:>10}",
        "agents", "P(wait)", "service level", "mean wait (s)", "occupancy"
    );
    for r in rows {
        println!(
            "{:>7} {:>8.1}% {:>13.1}% {:>14.1} {:>9.1}%{}",
            r.agents,
            100.0 * r.probability_wait,
            100.0 * r.service_level,
            r.mean_wait_seconds,
            100.0 * r.occupancy,
            if r.agents == needed { "  <- needed" } else { "" }
        );
    }
    Ok(())
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// A TOML scenario (arrival profile, AI share, teams, patience, policies); overrides the
    /// plain-case flags.
    #[arg(long, conflicts_with_all = ["arrivals_per_hour", "handle_minutes", "agents", "hours"])]
    scenario: Option<PathBuf>,
    /// Contacts arriving per hour.
    #[arg(long, required_unless_present = "scenario")]
    arrivals_per_hour: Option<f64>,
    /// Mean handle time in minutes.
    #[arg(long, required_unless_present = "scenario")]
    handle_minutes: Option<f64>,
    /// People.
    #[arg(long, required_unless_present = "scenario")]
    agents: Option<u32>,
    /// Hours simulated.
    #[arg(long, default_value_t = 8.0)]
    hours: f64,
    /// PRNG seed (overrides the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Answer-time target in seconds for the service level (plain case).
    #[arg(long, default_value_t = 20.0)]
    target_seconds: f64,
    /// Mean patience in minutes before a customer leaves (plain case; default: nobody leaves).
    #[arg(long)]
    patience_minutes: Option<f64>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    use fenliu_dispatch::sim::Scenario;
    let mut scenario = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Scenario::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => {
            let mut s = Scenario::plain(
                args.arrivals_per_hour.unwrap_or_default(),
                args.handle_minutes.unwrap_or_default(),
                args.agents.unwrap_or_default(),
                args.hours,
                0,
            );
            s.target_seconds = args.target_seconds;
            s.patience_minutes = args.patience_minutes;
            s
        }
    };
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let reports = scenario.run_all()?;
    if args.json {
        let out = if args.scenario.is_none() && reports.len() == 1 {
            serde_json::to_value(&reports[0])?
        } else {
            serde_json::json!({ "scenario": scenario, "runs": reports })
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "seed {}, {} h, {:.0} arrivals/h base, handle {:.1} min, target {:.0} s",
        scenario.seed,
        scenario.hours,
        scenario.arrivals_per_hour,
        scenario.handle_minutes,
        scenario.target_seconds
    );
    println!(
        "{:<16} {:>3} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}",
        "policy",
        "AI",
        "to human",
        "served",
        "mean (s)",
        "p50 (s)",
        "p95 (s)",
        "SL",
        "util",
        "abandon",
        "VIP mean",
        "VIP p95",
        "skill"
    );
    for r in &reports {
        println!(
            "{:<16} {:>3} {:>8} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>7.1}% {:>7.1}% {:>7.1}% {:>9.1} {:>9.1} {:>6.1}%",
            r.policy.name(),
            if r.ai_front_line { "yes" } else { "no" },
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
            100.0 * r.skill_match,
        );
    }
    Ok(())
}

#[derive(clap::Args)]
struct IngestCli {
    /// Files and directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Tenant the documents belong to (default: shop.tenant).
    #[arg(long)]
    tenant: Option<String>,
    /// Document type instead of the detected one (policy, faq, product, manual, promotion).
    #[arg(long)]
    doc_type: Option<String>,
    /// Language instead of the detected one (en, zh).
    #[arg(long)]
    language: Option<String>,
}

#[derive(Subcommand)]
enum KbCommand {
    /// hit@k and "no answer" accuracy on a labelled question set (seeds an empty knowledge base
    /// first).
    Eval {
        /// JSONL questions: question, language, sources (null: not covered), section.
        #[arg(long, default_value = "data/knowledge/questions.jsonl")]
        questions: PathBuf,
        /// k of hit@k.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// Print every question, not only the misses.
        #[arg(long)]
        verbose: bool,
    },
    /// Copy the catalogue and the vectors to DIR (consistent; restore by pointing
    /// knowledge.path at it).
    Backup {
        /// Target directory (must not exist).
        dest: PathBuf,
    },
    /// Documents, chunks and vectors.
    Stats,
    /// What `kb_search` finds for a question: hits with citations, or "no answer".
    Search {
        /// The question.
        question: String,
        /// Only this document type (policy, faq, product, manual, promotion).
        #[arg(long)]
        doc_type: Option<String>,
        /// Only this language (en, zh).
        #[arg(long)]
        language: Option<String>,
        /// Hits shown.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
    },
}

#[derive(clap::Args)]
struct BenchKnowledgeArgs {
    /// Collection sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
    sizes: Vec<usize>,
    /// Real MiniLM vectors (the rest of each size is synthetic, derived from them).
    #[arg(long, default_value_t = 10_000)]
    real: usize,
    /// Queries per configuration (held-out real embeddings).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// hnsw_ef values, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [32, 64, 128, 256])]
    ef: Vec<usize>,
    /// Documents ingested for the throughput figure.
    #[arg(
        long,
        value_delimiter = ',',
        default_values = ["data/demo/docs", "data/demo/products.json", "data/knowledge/telecom"]
    )]
    ingest: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Knowledge base: ingest chunks/s, vector search p50/p99 and recall@10 against exact search
    /// at several sizes and hnsw_ef values, with and without filters.
    Knowledge(BenchKnowledgeArgs),
    /// Assignments per second of the human dispatcher, embedded and (with `--postgres`) on
    /// PostgreSQL with several replicas.
    Dispatch(BenchDispatchArgs),
    /// Routing latency per deciding stage and messages per second (run with RAYON_NUM_THREADS=1
    /// for the one-core figure).
    Route(BenchRouteArgs),
    /// Orchestration cost of a model-driven turn (LLM routing, tool call, answer) with a scripted
    /// in-process model and over loopback HTTP, at several concurrencies.
    Turns(BenchTurnsArgs),
    /// Local models: load time, prompt and decode tokens/s (Gemma), sentences/s per batch size
    /// (MiniLM); medians over several runs.
    Models(BenchModelsArgs),
}

#[derive(clap::Args)]
struct BenchTurnsArgs {
    /// The demo shop whose orders are looked up.
    #[arg(long, default_value = "data/demo")]
    shop: PathBuf,
    /// Concurrent conversations, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 100, 1000])]
    concurrency: Vec<usize>,
    /// Turns per measurement.
    #[arg(long, default_value_t = 2000)]
    turns: usize,
    /// Runs per figure; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchModelsArgs {
    /// The models directory (`scripts/setup.sh` fills it).
    #[arg(long, default_value = "models")]
    models_dir: PathBuf,
    /// Thread counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2])]
    threads: Vec<usize>,
    /// Runs per figure; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Greedy decoding steps.
    #[arg(long, default_value_t = 64)]
    decode_tokens: usize,
    /// Embedding batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 32])]
    batch: Vec<usize>,
    /// Only one model: `gemma` or `minilm`.
    #[arg(long)]
    only: Option<BenchModelChoice>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchModelChoice {
    Gemma,
    Minilm,
}

async fn bench_models(args: BenchModelsArgs) -> anyhow::Result<()> {
    use fenliu_models::bench::{ModelBenchOptions, ModelSelection};
    let options = ModelBenchOptions {
        models_dir: args.models_dir,
        threads: args.threads,
        runs: args.runs,
        prompt_tokens: args.prompt_tokens,
        decode_tokens: args.decode_tokens,
        batch_sizes: args.batch,
        models: match args.only {
            None => ModelSelection::All,
            Some(BenchModelChoice::Gemma) => ModelSelection::Gemma,
            Some(BenchModelChoice::Minilm) => ModelSelection::MiniLm,
        },
    };
    let json = args.json;
    let report = tokio::task::spawn_blocking(move || {
        fenliu_models::bench::run(&options, &mut |step| {
            if !json {
                eprintln!("bench: {step}");
            }
        })
    })
    .await??;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

#[derive(clap::Args)]
struct BenchRouteArgs {
    /// Labelled messages to route.
    #[arg(long, default_value = "data/training/routes.csv")]
    data: PathBuf,
    /// How many messages to route.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchDispatchArgs {
    /// People.
    #[arg(long, default_value_t = 500)]
    agents: usize,
    /// Conversations arriving at once.
    #[arg(long, default_value_t = 20_000)]
    items: usize,
    /// Also persist the embedded run to this SQLite file (created; use a scratch path).
    #[arg(long)]
    sqlite: Option<PathBuf>,
    /// A PostgreSQL URL to benchmark too (its tables are created in the URL's search_path).
    #[arg(long)]
    postgres: Option<String>,
    /// PostgreSQL replicas (separate pools).
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

async fn bench_dispatch(args: &BenchDispatchArgs) -> anyhow::Result<()> {
    use fenliu_dispatch::bench::{bench_policy, run, system_clock};
    use fenliu_dispatch::{EmbeddedBackend, PostgresBackend};
    let mut reports = Vec::new();
    let memory = EmbeddedBackend::in_memory(bench_policy(), system_clock());
    reports.push(run("embedded (memory)", &[memory], args.agents, args.items).await?);
    if let Some(path) = &args.sqlite {
        let b = EmbeddedBackend::open(path, bench_policy(), system_clock()).await?;
        reports.push(
            run("embedded (SQLite)", std::slice::from_ref(&b), args.agents, args.items).await?,
        );
        b.close().await;
    }
    if let Some(url) = &args.postgres {
        let mut replicas = Vec::new();
        for _ in 0..args.replicas.max(1) {
            replicas.push(PostgresBackend::connect(url, bench_policy(), system_clock()).await?);
        }
        reports.push(run("postgres", &replicas, args.agents, args.items).await?);
        for r in &replicas {
            r.close().await;
        }
    }
    for r in &reports {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!(
                "{:<18} replicas {:>2}  agents {:>5}  items {:>6}  offers {:>6} in {:>7.2} s of ticks = {:>9.0} assignments/s  (enqueue {:.2} s, total {:.2} s)",
                r.backend,
                r.replicas,
                r.agents,
                r.items,
                r.offers,
                r.tick_seconds,
                r.assignments_per_second,
                r.enqueue_seconds,
                r.total_seconds
            );
        }
    }
    Ok(())
}
