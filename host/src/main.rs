//! sbert-host: a Spin-compatible runtime for sbert-service, with wasi:nn on ONNX Runtime.

mod app;
mod compile;
mod http;
mod instance;
mod log;
mod memory;
mod telemetry;
mod unit;
mod units;
mod up;
mod wasmtime_engine;
mod wizer;

use std::process::ExitCode;

use clap::Parser;

/// A Spin-compatible runtime for sbert-service, with wasi:nn on ONNX Runtime.
#[derive(Debug, Parser)]
#[command(name = "sbert-host", version)]
enum Command {
    Up(up::UpCommand),
    Compile(compile::CompileCommand),
    Wizer(wizer::WizerCommand),
}

fn main() -> ExitCode {
    let command = Command::parse();
    memory::limit_malloc_arenas();
    let (log_writer, log_lines_dropped) = log::init();
    let result = match command {
        Command::Up(command) => command.run(log_lines_dropped),
        Command::Compile(command) => command.run(),
        Command::Wizer(command) => command.run(),
    };
    // The lines still queued go out before the error line below.
    drop(log_writer);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the context chain, outermost first (some causes, like Wasm parse errors, span lines).
            let message = format!("{error:#}");
            eprintln!(
                "error: {}",
                message
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks a command's definition only in debug builds, when it is first parsed; the tests run in
    /// release too.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Command::command().debug_assert();
    }
}
