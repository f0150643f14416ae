//! `hybrid-trust`: the command line, a thin layer over the library (`hybrid_trust`, in
//! crates/hybrid-trust-lib): it parses, confirms and prints; the library owns the workflows. The
//! demo (`hybrid-trust demo`) runs the emulator (crates/m365-emulator) in-process.

mod cli;
mod demo;

fn main() -> std::process::ExitCode {
    cli::main()
}
