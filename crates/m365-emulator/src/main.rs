//! `m365-emulator`: serves the emulated Microsoft cloud until interrupted. See docs/contract.md and
//! the `m365_emulator` module docs.

use clap::Parser;
use m365_emulator::{Behaviour, Config, CustomKeyIdForm, FaultSpec, KeyResend, Seed};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// A local, stateful emulator of the Microsoft endpoints hybrid-trust uses: Entra ID discovery,
/// JWKS, token (v1/v2, client secret, certificate assertion, device code), ACS metadata and
/// Microsoft Graph servicePrincipals. Listens on loopback only.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  m365-emulator --tls --ready-file /tmp/emu.json\n  m365-emulator --tenants 1000 --latency-ms 50 --ready-file /tmp/fleet.json\n  m365-emulator --faults 429:0.1,503:0.05,reset:0.02 --seed 42\n\nThe ready file's \"cloud\" object is a --cloud-file for hybrid-trust."
)]
struct Args {
    /// Address to listen on (loopback only unless --allow-non-loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Serve HTTPS with a CA the emulator generates (named in the ready file as ca_file).
    #[arg(long)]
    tls: bool,
    /// A tenant's initial domain (repeatable). Default: contoso.onmicrosoft.com.
    #[arg(long = "tenant", value_name = "DOMAIN")]
    tenants: Vec<String>,
    /// Create N tenants tenant-0001.onmicrosoft.com … sharing one multi-tenant admin app.
    #[arg(long = "tenants", value_name = "N", default_value_t = 0)]
    generated: usize,
    /// Persist tenants, keys and emulator keys here, and reload them on start.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Write this JSON file atomically once ready to serve.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Where to write the CA certificate with --tls (default: beside the ready file).
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Delay every response by this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Random faults, KIND:PROBABILITY,… with KIND one of 429, 503, reset, timeout, malformed, lost-write (a PATCH answered 204 and not applied, as when another writer overwrites it).
    #[arg(long, value_name = "SPEC", default_value = "")]
    faults: String,
    /// Seed for the fault draws (same seed, same sequence).
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// How long a timeout fault holds a request before answering 504.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout_fault_secs: u64,
    /// Benchmark aid: hand out an app-only token again while over half its lifetime is left
    /// (Entra signs a fresh one per request; the signing CPU would be taken from the client
    /// being measured).
    #[arg(long)]
    reuse_tokens: bool,
    /// [U] Return `key` in the filtered collection query too.
    #[arg(long)]
    key_in_collection: bool,
    /// [U] Form of customKeyIdentifier Graph assigns: hex, base64, double, null.
    #[arg(long, value_name = "FORM", default_value = "hex")]
    custom_key_id_form: CustomKeyIdForm,
    /// [U] Give re-submitted keys new keyIds.
    #[arg(long)]
    regenerate_key_ids: bool,
    /// [U] How Graph treats retained keys re-sent in a PATCH: full (any properties accepted),
    /// unchanged (a re-sent keyId whose other properties differ is refused: "Update to existing
    /// credential with KeyId '<id>' is not allowed."), minimal (a retained key may carry only
    /// type, usage and key; it then gets a new keyId and the certificate's dates).
    #[arg(long, value_name = "MODE", default_value = "full")]
    key_resend: KeyResend,
    /// [U] What an app management policy's asymmetricKeyLifetime measures: window (the key's
    /// end - start), from-creation (end - now), certificate (also the certificate's validity).
    #[arg(long, value_name = "RULE", default_value = "window")]
    key_lifetime: m365_emulator::KeyLifetimeRule,
    /// Start new tenants without this first-party service principal (repeatable), as a tenant
    /// that never used it; POST /servicePrincipals {"appId"} creates it.
    #[arg(long = "without-service-principal", value_name = "APP_ID")]
    without_service_principals: Vec<String>,
    /// Start new tenants with this service principal disabled (accountEnabled false; repeatable):
    /// its token requests get AADSTS7000112.
    #[arg(long = "disabled-service-principal", value_name = "APP_ID")]
    disabled_service_principals: Vec<String>,
    /// `$select=keyCredentials` reads allowed per tenant per minute.
    #[arg(long, value_name = "N", default_value_t = 150)]
    select_key_limit: u32,
    /// Device code flow: the emulated admin approves after this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    device_code_approve_after_ms: u64,
    /// Device code flow: polling interval to ask clients for.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    device_code_interval: u64,
    /// Start with the emulated clock this many seconds off the machine's.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    clock_offset_secs: i64,
    /// Allow listening on a non-loopback address.
    #[arg(long)]
    allow_non_loopback: bool,
    /// Do not log each request to stderr.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let faults: FaultSpec = match args.faults.parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: invalid --faults: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config {
        listen: args.listen,
        tls: args.tls,
        tenants: args.tenants,
        generated_tenants: args.generated,
        state_file: args.state,
        ready_file: args.ready_file,
        ca_file: args.ca_file,
        latency_ms: args.latency_ms,
        faults,
        seed: args.seed,
        behaviour: Behaviour {
            key_in_collection: args.key_in_collection,
            custom_key_id_form: args.custom_key_id_form,
            regenerate_key_ids: args.regenerate_key_ids,
            select_key_limit_per_minute: args.select_key_limit,
            device_code_approve_after_ms: args.device_code_approve_after_ms,
            device_code_interval_secs: args.device_code_interval,
            key_resend: args.key_resend,
            key_lifetime: args.key_lifetime,
            ..Behaviour::default()
        },
        timeout_fault_secs: args.timeout_fault_secs,
        allow_non_loopback: args.allow_non_loopback,
        log_requests: !args.quiet,
        reuse_tokens: args.reuse_tokens,
        seed_tenants: Seed {
            without_service_principals: args.without_service_principals,
            disabled_service_principals: args.disabled_service_principals,
        },
        keys: None,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let running = match m365_emulator::start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {}", m365_emulator::error_chain(&e));
                return ExitCode::from(match e {
                    m365_emulator::StartError::NotLoopback(_)
                    | m365_emulator::StartError::BadDomain(_) => 2,
                    _ => 1,
                });
            }
        };
        running.clock().set_offset_secs(args.clock_offset_secs);
        let r = &running.ready;
        eprintln!(
            "m365-emulator ready: {} tenant(s); login {} graph {} acs {}{}",
            r.tenants.len(),
            r.cloud.login_url,
            r.cloud.graph_url,
            r.cloud.acs_url,
            r.cloud
                .ca_file
                .as_deref()
                .map(|c| format!(" ca {c}"))
                .unwrap_or_default()
        );
        wait_for_signal().await;
        running.stop();
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
