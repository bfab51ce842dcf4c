//! The `switchboard` binary: parses the command line and hands over to [`switchboard::cli`].

fn main() -> std::process::ExitCode {
    switchboard::cli::main()
}
