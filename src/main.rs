//! `hybrid-trust`: everything lives in the library; see `hybrid_trust::cli`.

fn main() -> std::process::ExitCode {
    hybrid_trust::cli::main()
}
