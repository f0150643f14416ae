//! The command line: clap definitions (raw flags) → validated settings → run → one printer for
//! output and one renderer for failures. No protocol, crypto or policy logic lives here.

mod admin;
mod args;
mod cert_cmd;
mod credential_cmd;
mod demo;
mod exchange;
mod failure;
mod files;
mod ledger_rec;
mod login_cmd;
mod onboard_cmd;
mod onprem_cmd;
mod password;
mod printer;
mod progress;
mod remind_cmd;
mod renew_cmd;
mod state_cmd;
mod status_cmd;
mod tenant_cmd;
mod verify_cmd;

pub use failure::Failure;
pub use printer::{OutputFormat, Printer};

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Onboard and keep alive the OAuth server-to-server trust between on-premises Skype for
/// Business / Lync Server and a Microsoft 365 tenant.
#[derive(Parser, Debug)]
#[command(
    name = "hybrid-trust",
    version,
    propagate_version = true,
    after_help = "Start with: hybrid-trust demo"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CloudName {
    Global,
    GccHigh,
    Dod,
    China,
}

/// Options every command takes (docs/contract.md "Global options").
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// National cloud.
    #[arg(
        long,
        global = true,
        env = "HYBRID_TRUST_CLOUD",
        value_enum,
        default_value = "global"
    )]
    pub cloud: CloudName,
    /// A custom cloud (JSON: name, login_url, graph_url, acs_url, exchange_url, ca_file); overrides --cloud.
    #[arg(
        long,
        global = true,
        env = "HYBRID_TRUST_CLOUD_FILE",
        value_name = "PATH"
    )]
    pub cloud_file: Option<PathBuf>,
    /// Where the ledger and audit log live.
    #[arg(
        long,
        global = true,
        env = "HYBRID_TRUST_STATE_DIR",
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,
    /// Keep the ledger, audit log, reminder records and locks in PostgreSQL, shared by a team:
    /// postgres://USER@HOST:PORT/DB?sslmode=disable|require|verify-full (no password: PGPASSWORD,
    /// ~/.pgpass or the keyring). Default: the state dir.
    #[arg(
        long,
        global = true,
        env = "HYBRID_TRUST_STATE_URL",
        value_name = "URL"
    )]
    pub state_url: Option<String>,
    /// Output format: text for people, json for scripts (exactly one JSON document on stdout).
    #[arg(
        long,
        global = true,
        env = "HYBRID_TRUST_OUTPUT",
        value_enum,
        default_value = "text"
    )]
    pub output: OutputFormat,
    /// Evaluate dates as if now were this instant (RFC 3339); read-only commands only.
    #[arg(long, global = true, env = "HYBRID_TRUST_AS_OF", value_name = "RFC3339", value_parser = parse_as_of)]
    pub as_of: Option<DateTime<Utc>>,
    /// Admin application (client) id for Microsoft Graph.
    #[arg(long, global = true, env = "HYBRID_TRUST_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// Environment variable holding the admin application's client secret.
    #[arg(long, global = true, value_name = "VAR")]
    pub client_secret_env: Option<String>,
    /// Certificate (PFX or PEM with key) of the admin application.
    #[arg(long, global = true, value_name = "PATH")]
    pub client_cert: Option<PathBuf>,
    /// Environment variable holding the password of --client-cert (a PFX).
    #[arg(long, global = true, value_name = "VAR")]
    pub client_cert_password_env: Option<String>,
    /// The TOML settings file.
    #[arg(long, global = true, env = "HYBRID_TRUST_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// Show the plan and change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// More diagnostics on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

fn parse_as_of(s: &str) -> Result<DateTime<Utc>, String> {
    let d = DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("{e}; give an RFC 3339 instant such as 2027-03-01T00:00:00Z"))?;
    hybrid_trust::dates::check(d).map_err(|e| e.to_string())
}

/// A date given in `flag`, refused (exit 2) outside the range every date from outside must be
/// in ([`hybrid_trust::dates`]): recorded in the ledger, it would make the ledger unreadable.
pub(crate) fn date_in_range(flag: &str, d: DateTime<Utc>) -> Result<DateTime<Utc>, Failure> {
    hybrid_trust::dates::check(d).map_err(|e| {
        Failure::input(
            anyhow::anyhow!("{flag}: {e}"),
            Some("give a date between 0001-01-01 and 9999-12-31".to_string()),
        )
    })
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Inspect and export the on-prem OAuthTokenIssuer certificate.
    #[command(subcommand)]
    Cert(cert_cmd::CertCommand),
    /// The whole cross-premises setup in order, with a plan shown first.
    Onboard(onboard_cmd::OnboardArgs),
    /// List, upload and remove the key credentials of the service principal.
    #[command(subcommand)]
    Credential(credential_cmd::CredentialCommand),
    /// Add the pools' service principal names.
    #[command(subcommand)]
    Spn(credential_cmd::SpnCommand),
    /// Store the admin identity for Microsoft Graph in the OS keyring.
    Login(login_cmd::LoginArgs),
    /// Remove a stored admin identity from the OS keyring.
    Logout(login_cmd::LogoutArgs),
    /// Prove the trust end to end: get a token as Skype for Business Online with the on-prem
    /// certificate, as the server will.
    Verify(verify_cmd::VerifyArgs),
    /// Send the reminders that are due (email, webhooks, stdout), each once.
    Remind(remind_cmd::RemindArgs),
    /// Renew what is due: a new window for the same certificate, or a roll to a new one.
    Renew(renew_cmd::RenewArgs),
    /// Every tenant's state: ok, due, expiring, expired, missing, roll-pending (from the ledger, or --live).
    Status(status_cmd::StatusArgs),
    /// Discover a tenant and validate metadata documents.
    #[command(subcommand)]
    Tenant(tenant_cmd::TenantCommand),
    /// The team's shared state: copy it between a state dir and PostgreSQL.
    #[command(subcommand)]
    State(state_cmd::StateCommand),
    /// Generate the on-prem Management Shell script (with a drift check).
    #[command(subcommand)]
    Onprem(onprem_cmd::OnpremCommand),
    /// Onboard an emulated tenant end to end on loopback, in seconds: no network, no prompts.
    #[command(
        after_help = "Example:\n  hybrid-trust demo\n  hybrid-trust demo --serve     # keep the emulator running afterwards"
    )]
    Demo {
        /// Keep the emulator running until Ctrl-C after the demo.
        #[arg(long)]
        serve: bool,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  hybrid-trust completions bash > /etc/bash_completion.d/hybrid-trust"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    #[command(
        after_help = "Example:\n  hybrid-trust man > /usr/local/share/man/man1/hybrid-trust.1"
    )]
    Man,
}

/// Settings every command sees once the flags are validated.
pub struct Context {
    pub printer: Printer,
    /// The instant dates are evaluated at (the clock's reading when the run started).
    pub now: DateTime<Utc>,
    /// Where "now" comes from: the system time, or `--as-of`.
    pub clock: hybrid_trust::clock::Clock,
    pub as_of: Option<DateTime<Utc>>,
    pub global: GlobalArgs,
    /// Token providers by cloud and tenant, shared across the steps of one run.
    pub providers: std::sync::Mutex<
        std::collections::HashMap<String, std::sync::Arc<hybrid_trust::sts::TokenProvider>>,
    >,
    /// One HTTPS client per cloud for the run (its TLS setup and connection pool shared).
    pub clients:
        std::sync::Mutex<std::collections::HashMap<String, hybrid_trust::http::HttpClient>>,
    /// The cloud of `--cloud-file`, read once (a run over a fleet makes a session per tenant).
    pub cloud_file: std::sync::OnceLock<hybrid_trust::cloud::Cloud>,
    /// The state dir once created and checked.
    pub state_dir_checked: std::sync::OnceLock<std::path::PathBuf>,
    /// The admin identity from `--client-cert` (the same for every tenant): loaded, and its
    /// password asked for, once per run rather than once per tenant.
    pub cert_credential: std::sync::OnceLock<hybrid_trust::sts::AdminCredential>,
    /// The team's state database (`--state-url`), opened once per run.
    pub state_db: std::sync::OnceLock<Option<std::sync::Arc<hybrid_trust::state::pg::PgState>>>,
}

impl Context {
    /// The cloud: `--cloud-file` wins over `--cloud`.
    pub fn cloud(&self) -> Result<hybrid_trust::cloud::Cloud, Failure> {
        use hybrid_trust::cloud::{Cloud, National};
        match &self.global.cloud_file {
            Some(p) => {
                if let Some(c) = self.cloud_file.get() {
                    return Ok(c.clone());
                }
                let c = Cloud::from_file(p).map_err(|e| Failure::input(e, Some("fix the cloud file: JSON with name, login_url, graph_url, acs_url, exchange_url (no trailing slash) and optionally ca_file".to_string())))?;
                Ok(self.cloud_file.get_or_init(|| c).clone())
            }
            None => Ok(match self.global.cloud {
                CloudName::Global => National::Global,
                CloudName::GccHigh => National::GccHigh,
                CloudName::Dod => National::Dod,
                CloudName::China => National::China,
            }
            .cloud()),
        }
    }

    pub fn http(
        &self,
        cloud: &hybrid_trust::cloud::Cloud,
    ) -> Result<hybrid_trust::http::HttpClient, Failure> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&cloud.login_url) {
            return Ok(c.clone());
        }
        let c = hybrid_trust::http::HttpClient::for_cloud(cloud).map_err(|e| {
            let hint = e.hint().to_string();
            Failure::input(e, Some(hint))
        })?;
        clients.insert(cloud.login_url.clone(), c.clone());
        Ok(c)
    }

    /// Refuses `--as-of` for a command that changes something.
    pub fn refuse_as_of(&self, what: &str) -> Result<(), Failure> {
        match self.as_of {
            Some(_) => Err(Failure::input(
                anyhow::anyhow!("--as-of is for read-only commands and cannot be used with {what}"),
                Some(
                    "drop --as-of; it only plans (status, cert inspect, remind --dry-run)"
                        .to_string(),
                ),
            )),
            None => Ok(()),
        }
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HYBRID_TRUST_LOG")
        .unwrap_or_else(|_| level.into());
    // Log lines may quote outside text (a server's error body): they go through the same
    // terminal escaping as every other output, so no colour codes of their own either.
    let _ = tracing_subscriber::fmt()
        .with_writer(|| SafeStderr)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// Standard error with control characters from outside escaped (`printer::terminal_safe`).
struct SafeStderr;

impl std::io::Write for SafeStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        // Above a progress bar, not through it.
        progress::suspend(|| {
            std::io::stderr().write_all(printer::terminal_safe(&text).as_bytes())
        })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Entry point of the `hybrid-trust` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
    let clock = match cli.global.as_of {
        Some(t) => hybrid_trust::clock::Clock::Fixed(t),
        None => hybrid_trust::clock::Clock::System,
    };
    let ctx = Context {
        printer: Printer {
            format: cli.global.output,
        },
        now: clock.now(),
        clock,
        as_of: cli.global.as_of,
        global: cli.global,
        providers: Default::default(),
        clients: Default::default(),
        cloud_file: Default::default(),
        state_dir_checked: Default::default(),
        cert_credential: Default::default(),
        state_db: Default::default(),
    };
    let result = match cli.command {
        Command::Cert(c) => cert_cmd::run(&ctx, c),
        Command::Tenant(c) => tenant_cmd::run(&ctx, c),
        Command::State(c) => state_cmd::run(&ctx, c),
        Command::Verify(a) => verify_cmd::run(&ctx, a),
        Command::Status(a) => status_cmd::run(&ctx, a),
        Command::Renew(a) => renew_cmd::run(&ctx, a),
        Command::Remind(a) => remind_cmd::run(&ctx, a),
        Command::Credential(c) => credential_cmd::run(&ctx, c),
        Command::Onboard(a) => onboard_cmd::run(&ctx, a),
        Command::Spn(c) => credential_cmd::run_spn(&ctx, c),
        Command::Login(a) => login_cmd::login(&ctx, a),
        Command::Logout(a) => login_cmd::logout(&ctx, a),
        Command::Onprem(c) => onprem_cmd::run(&ctx, c),
        Command::Demo { serve } => demo::run(&ctx, serve),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "hybrid-trust", &mut out);
            ctx.printer.raw(&String::from_utf8_lossy(&out));
            Ok(0)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            match clap_mangen::Man::new(cmd).render(&mut out) {
                Ok(()) => {
                    ctx.printer.raw(&String::from_utf8_lossy(&out));
                    Ok(0)
                }
                Err(e) => Err(Failure::runtime(e, None)),
            }
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprint!("{}", f.render());
            ExitCode::from(f.code)
        }
    }
}

/// The one tokio runtime of the process, started the first time a command talks to the network
/// (a command that needs none starts none).
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, Failure> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::runtime(
                anyhow::Error::new(e).context("cannot start the async runtime"),
                None,
            )
        })?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// A session workflow's failure: exit 2 for the user's own answer or file, else exit 1.
pub fn session_failure(e: hybrid_trust::session::SessionError) -> Failure {
    let hint = e.hint();
    if e.is_usage() {
        Failure::input(e, Some(hint))
    } else {
        Failure::runtime(e, Some(hint))
    }
}

/// The failure for a tenant argument that is neither a domain nor a GUID.
pub fn bad_tenant(e: hybrid_trust::tenant::BadTenant) -> Failure {
    Failure::input(e, Some("the tenant id is on the Overview page of the Entra admin center; the initial domain is <name>.onmicrosoft.com".to_string()))
}
