//! The `crrules` binary: parses arguments, runs one command, maps its outcome to the exit status
//! (0 success, 1 a finding, 2 could not run).

mod args;
mod check;
mod criu;
mod dot;
mod fdtable;
mod lint;
mod load;
mod man;
mod output;
mod policytest;
mod render;
mod report;

use args::{Cli, Command};
use clap::{CommandFactory, Parser};
use std::process::ExitCode;

/// What a command found, as the exit status says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing wrong.
    Clean = 0,
    /// The command ran and found something: errors in a policy, an fd rejected, a policy test failing.
    Finding = 1,
}

/// A command that could not run (exit status 2): a message, or diagnostics already printed.
#[derive(Debug)]
pub enum Failure {
    Report(miette::Report),
    /// Diagnostics were printed; nothing more to say.
    Printed,
}

impl From<miette::Report> for Failure {
    fn from(e: miette::Report) -> Failure {
        Failure::Report(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Report(miette::miette!("cannot write the output: {e}"))
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Failure {
        Failure::Report(miette::miette!("cannot write JSON: {e}"))
    }
}

fn main() -> ExitCode {
    output::quiet_closed_pipe_panics();
    let cli = Cli::parse();
    let ui = render::Ui::new(cli.color);
    ui.install_miette();
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&cli, &ui))) {
        Ok(result) => result,
        // A `println!` found standard output closed: the reader has what it wanted.
        Err(payload) if output::is_closed_pipe_panic(&*payload) => Ok(Outcome::Clean),
        Err(payload) => std::panic::resume_unwind(payload),
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome as u8),
        Err(Failure::Report(report)) => {
            eprintln!("{report:?}");
            ExitCode::from(2)
        }
        Err(Failure::Printed) => ExitCode::from(2),
    }
}

/// Runs the command the arguments name.
fn run(cli: &Cli, ui: &render::Ui) -> Result<Outcome, Failure> {
    match &cli.command {
        Command::Check(a) => check::check(&cli.policy, a, ui),
        Command::Explain(a) => check::explain(&cli.policy, a, ui),
        Command::Facts(a) => check::facts(a, ui),
        Command::Lint(a) => lint::lint(&cli.policy, a, ui),
        Command::Rules(a) => lint::rules(&cli.policy, a, ui),
        Command::Test(a) => policytest::run(&cli.policy, a, ui),
        Command::Dump(a) => fdtable::dump(&cli.policy, a, ui),
        Command::Restore(a) => fdtable::restore(a),
        Command::Handover(a) => fdtable::handover(&cli.policy, a, ui),
        Command::Criu(a) => criu::criu(&cli.policy, a, ui),
        Command::CriuAction => criu::action(&cli.policy, ui),
        Command::Completions { shell } => {
            // Made whole first: the generator panics when it cannot write.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "crrules", &mut script);
            output::print_all(&script)?;
            Ok(Outcome::Clean)
        }
        Command::Man => {
            output::print_all(&man::page()?)?;
            Ok(Outcome::Clean)
        }
    }
}
