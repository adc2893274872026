//! `starling`: one binary, one subcommand per role.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use starling::{App, Config, FlagOverrides, LogFormat, Role};
use starling_core::accounts::Registration;
use starling_core::workers::ConsumerKind;
use starling_domain::SystemClock;
use tracing_subscriber::EnvFilter;

/// Starling: a social server that speaks the Mastodon client API.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone, Default)]
struct CommonArgs {
    /// TOML configuration file (see README.md for every setting).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Directory for the embedded database [default: ./data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Public base URL, e.g. https://social.example [default: from --listen].
    #[arg(long, global = true, value_name = "URL")]
    public_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role in one process (the default).
    Serve,
    /// Serve HTTP only (the distributed shape's stateless API role).
    Api,
    /// Run the outbox relay and the event consumers only.
    Worker {
        /// Consumer groups to run (comma-separated: fanout, notifier, media);
        /// all of them when omitted.
        #[arg(long, value_delimiter = ',', value_name = "KINDS")]
        consumers: Vec<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Operator tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a local account (no app, no agreement needed).
    CreateAccount {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// The password (8 to 72 characters).
        #[arg(long)]
        password: String,
    },
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// mimalloc: glibc's malloc was about a fifth of the server's CPU on home
/// reads (docs/BENCHMARKS.md, "Where the time goes").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = FlagOverrides {
        listen: cli.common.listen,
        data_dir: cli.common.data_dir.clone(),
        public_url: cli.common.public_url.clone(),
    };
    let config = match Config::load(cli.common.config.as_deref(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("starling: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    match run(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("starling: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let clock = Arc::new(SystemClock);
    match command {
        Command::Serve => {
            let app = App::build(&config, clock, Role::Serve).await?;
            app.run(starling::shutdown_signal()).await
        }
        Command::Api => {
            let app = App::build(&config, clock, Role::Api).await?;
            app.run(starling::shutdown_signal()).await
        }
        Command::Worker { consumers } => {
            let kinds = consumers
                .iter()
                .map(|c| {
                    ConsumerKind::parse(c.trim()).ok_or_else(|| {
                        anyhow::anyhow!("unknown consumer {c:?} (known: fanout, notifier, media)")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let store = starling::open_store(&config).await?;
            store.ping().await?;
            let base = config.public_url_for(config.listen)?;
            let core = starling::build_core(&config, store, clock, base.as_str()).await?;
            let workers = starling::Workers::start(&core, &config, &kinds).await?;
            tracing::info!(
                "worker started: relaying the outbox to the fan-out and notification consumers"
            );
            workers.run(starling::shutdown_signal()).await;
            Ok(())
        }
        Command::Migrate => {
            let store = starling::open_store(&config).await?;
            starling::migrate(&*store).await
        }
        Command::Admin(AdminCommand::CreateAccount {
            username,
            email,
            password,
        }) => {
            let store = starling::open_store(&config).await?;
            starling::migrate(&*store).await?;
            let base = config.public_url_for(config.listen)?;
            let core = starling::build_core(&config, store, clock, base.as_str()).await?;
            let account = core
                .create_account(&Registration {
                    username: Some(username),
                    email: Some(email),
                    password: Some(password),
                    agreement: true,
                    locale: None,
                    reason: None,
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created account @{} (id {})", account.username, account.id);
            Ok(())
        }
    }
}
