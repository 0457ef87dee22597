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
    },
    /// Route messages offline (arguments, or one per line on stdin) and show the decision.
    Route {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Messages; read from stdin when none are given.
        messages: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Chat { customer } => chat(config, &customer).await,
        Command::Train { data, out, cv, no_embed } => {
            let args = fenliu_server::commands::TrainArgs { data, out, folds: cv, no_embed };
            fenliu_server::commands::train(&config, &args).await
        }
        Command::Route { json, messages } => {
            fenliu_server::commands::route(&config, messages, json).await
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = Runtime::build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.server.bind)
        .await
        .with_context(|| format!("binding {}", config.server.bind))?;
    tracing::info!(addr = %listener.local_addr()?, "fenliu is serving");
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
