//! `crrules dump`, `crrules restore` and `crrules handover`: the fd-table backend. A dump runs the pipeline
//! on one live process with a backend that captures its plan (or prints the rejection table and writes
//! nothing); a restore reads a verified image and brings every fd back before exec'ing the command; a
//! hand-over duplicates the fds of a live process straight into the command.

use crate::args::{DumpArgs, Format, HandoverArgs, PolicyArgs, RestoreArgs};
use crate::load;
use crate::render::Ui;
use crate::report::Report;
use crate::{Failure, Outcome};
use crrules_engine::backend::Backend;
use crrules_engine::dump::{self, Captured, DumpError, Stopped, Taken};
use crrules_engine::image::{Frozen, Image, ImageWriter};
use crrules_engine::pipeline::{self, RunError};
use crrules_engine::plan::ProcessPlan;
use crrules_engine::restore::{self, Prepared, RestoreOptions};
use crrules_engine::scan::ScanOptions;
use crrules_engine::source::Live;
use crrules_rules::vocab::{SockState, SockType};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::time::Instant;

/// The dump backend: the plan of the one process, captured, or printed as a rejection.
struct DumpBackend<'a> {
    report: Report<'a>,
    frozen: Option<Frozen>,
    captured: Option<Result<Captured, DumpError>>,
}

impl Backend for DumpBackend<'_> {
    type Error = std::io::Error;

    /// Every fact: the manifest carries them all, and `shared_with` (`ScanOptions::shared`) tells which fds
    /// are one open file, dumped once and restored as duplicates (`dump::dup_sources`).
    fn needs(&self) -> ScanOptions {
        ScanOptions::all()
    }

    fn process(&mut self, plan: &ProcessPlan) -> Result<(), Self::Error> {
        if !plan.checkpointable() {
            self.report.process(plan)?;
        }
        self.captured = Some(dump::capture(plan, self.frozen.clone()));
        Ok(())
    }
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::Report(miette::Report::msg(e.to_string()))
}

pub fn dump(policy: &PolicyArgs, args: &DumpArgs, ui: &Ui) -> Result<Outcome, Failure> {
    // Before any thread exists: a Ctrl-C while the process is stopped waits until it runs again.
    let held = args.freeze.then(dump::SignalsHeld::take);
    let decider = load::decider(policy, ui)?;
    let mut source = Live::pids(&[args.pid], false).map_err(fail)?;
    let stopped = if args.freeze {
        Some(Stopped::stop(args.pid).map_err(|e| fail(format!("cannot stop process {}: {e}", args.pid)))?)
    } else {
        None
    };
    let how = stopped.as_ref().map(Stopped::how);
    let mut backend = DumpBackend {
        report: Report::new(Format::Text, ui),
        frozen: how.map(|how| Frozen { how: how.to_owned(), micros: 0 }),
        captured: None,
    };
    let run = pipeline::run(Some(&decider), &mut source, &mut backend);
    let stopped_for = stopped
        .map(Stopped::thaw)
        .transpose()
        .map_err(|e| fail(format!("cannot let process {} run again: {e}", args.pid)))?;
    drop(held);
    run.map_err(|e| match e {
        RunError::Source(e) => fail(e),
        RunError::Backend(e) => Failure::from(e),
    })?;
    let mut captured = match backend.captured {
        None => return Err(fail(format!("process {} was not read", args.pid))),
        Some(Err(DumpError::Rejected { .. })) => {
            eprintln!("crrules dump: nothing written: process {} cannot be checkpointed", args.pid);
            return Ok(Outcome::Finding);
        }
        Some(Err(e)) => {
            return Err(Failure::Report(miette::miette!(
                help = "nothing was written",
                "cannot dump process {}: {e}",
                args.pid
            )));
        }
        Some(Ok(c)) => c,
    };
    if let (Some(f), Some(d)) = (captured.manifest.process.frozen.as_mut(), stopped_for) {
        f.micros = d.as_micros() as u64;
    }
    // A writer dropped uncommitted removes its temporary directory: a failure leaves nothing behind.
    let written = ImageWriter::create(&args.image, restore::trusted_image_owner()).and_then(|mut writer| {
        for (name, bytes) in &captured.data {
            writer.write_data(name, bytes)?;
        }
        writer.commit(&captured.manifest)
    });
    written.map_err(|e| {
        Failure::Report(miette::miette!(
            help = format!("nothing was written at {}", args.image.display()),
            "cannot write the image of process {}: {e}",
            args.pid
        ))
    })?;
    eprintln!(
        "crrules dump: process {} ({}): {} fds, {} data files, written to {}",
        args.pid,
        captured.manifest.process.comm,
        captured.manifest.fds.len(),
        captured.data.len(),
        args.image.display()
    );
    if let Some(f) = &captured.manifest.process.frozen {
        eprintln!("crrules dump: the process was stopped ({}) for {} us", f.how, f.micros);
    }
    for note in &captured.notes {
        eprintln!("crrules dump: {note}");
    }
    Ok(Outcome::Clean)
}

pub fn restore(args: &RestoreArgs) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let owner = restore::trusted_image_owner();
    let image = Image::open(&args.image, owner).map_err(|e| {
        Failure::Report(miette::miette!(
            help = "the command was not run",
            "cannot restore from {}: {e}",
            args.image.display()
        ))
    })?;
    let opts = RestoreOptions { inherit: args.inherit.clone() };
    let data = |name: &str| image.read_data(name).map_err(|e| e.to_string());
    let prepared = restore::prepare(&image.manifest, &data, &opts)
        .map_err(|e| Failure::Report(miette::miette!(help = "the command was not run", "cannot restore: {e}")))?;
    let count = prepared.len();
    exec(prepared, &args.command, started, &format!("{count} fds from {}", args.image.display()), &[])
}

pub fn handover(policy: &PolicyArgs, args: &HandoverArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let decider = load::decider(policy, ui)?;
    let mut source = Live::pids(&[args.pid], false).map_err(fail)?;
    let mut plans = Vec::new();
    struct Keep<'a>(&'a mut Vec<ProcessPlan>);
    impl Backend for Keep<'_> {
        type Error = std::io::Error;
        fn needs(&self) -> ScanOptions {
            ScanOptions::all()
        }
        fn process(&mut self, plan: &ProcessPlan) -> Result<(), Self::Error> {
            self.0.push(plan.clone());
            Ok(())
        }
    }
    pipeline::run(Some(&decider), &mut source, Keep(&mut plans)).map_err(|e| match e {
        RunError::Source(e) => fail(e),
        RunError::Backend(e) => Failure::from(e),
    })?;
    let plan = plans.pop().ok_or_else(|| fail(format!("process {} was not read", args.pid)))?;
    let handle = plan.process.clone().ok_or_else(|| fail("not a live process"))?;
    let mut fds = Vec::new();
    let mut closed = Vec::new();
    let mut listening = 0;
    let mut names = Vec::new();
    for f in &plan.fds {
        let (Some(facts), Some(d)) = (f.facts(), f.decision()) else {
            // Closed by the process while it was read: nothing to hand over, but said.
            eprintln!("crrules handover: fd {} was closed while it was read: not handed over", f.fd());
            continue;
        };
        if matches!(d.action, crrules_rules::Action::Close) {
            // With --listen-fds the numbers are renumbered from 3: the old ones mean nothing there.
            if !args.listen_fds {
                closed.push((facts.fd, d.rule.clone().unwrap_or_default()));
            }
            continue;
        }
        // A rejection says the fd cannot be saved and brought back; handed over live it is the very same
        // open file (a listener keeps its waiting connections), so it is passed, and said.
        if d.is_reject() {
            eprintln!(
                "crrules handover: fd {} is handed over live, though a checkpoint would reject it: {}",
                facts.fd,
                d.reason().unwrap_or("rejected")
            );
        }
        let is_listener = facts.socket.as_ref().is_some_and(|s| {
            s.state == Some(SockState::Listen)
                || (s.sock_type == Some(SockType::Dgram) && s.peer.is_none() && s.local.is_some())
        });
        if args.listen_fds && !is_listener {
            continue;
        }
        let at = if args.listen_fds {
            listening += 1;
            names.push(format!("fd{}", facts.fd));
            2 + listening
        } else {
            facts.fd
        };
        fds.push((facts.fd, at, !args.listen_fds && facts.cloexec));
    }
    // Each duplicate is compared with the file its decision was about (the plan is in fd order): an fd the
    // process closed since is not handed over; one it replaced is decided again, on the file it now holds
    // (read from the duplicate, without the links to other fds that a scan of the whole process gives).
    let take = |fd: i32| -> Result<Option<std::os::fd::OwnedFd>, String> {
        let Some(facts) = plan.fds.binary_search_by_key(&fd, |f| f.fd()).ok().and_then(|i| plan.fds[i].facts()) else {
            return Err("it was not read".to_owned());
        };
        let dup = match dump::duplicate_of(&handle, facts)? {
            Taken::Same(dup) => return Ok(Some(dup)),
            Taken::Closed => {
                eprintln!("crrules handover: fd {fd} was closed since it was read: not handed over");
                return Ok(None);
            }
            Taken::Other(_) if args.listen_fds => {
                return Err("it names another file than when it was read: run again".to_owned());
            }
            Taken::Other(dup) => dup,
        };
        let now =
            dump::facts_of_replaced(dup.as_fd(), facts).map_err(|e| format!("it changed since it was read: {e}"))?;
        let d = decider.decide(&now);
        let what = format!("{} {}", now.kind, now.link);
        let rule = d.rule.as_deref().unwrap_or(crrules_engine::plan::NO_RULE);
        if matches!(d.action, crrules_rules::Action::Close) {
            eprintln!(
                "crrules handover: fd {fd} changed since it was read; it now holds {what}, left closed (rule {rule})"
            );
            return Ok(None);
        }
        eprintln!(
            "crrules handover: fd {fd} changed since it was read; it now holds {what}, handed over (rule {rule})"
        );
        Ok(Some(dup))
    };
    let prepared = Prepared::from_live(&fds, take, closed).map_err(|e| {
        Failure::Report(miette::miette!(
            help = "the command was not run",
            "cannot hand over from process {}: {e}",
            args.pid
        ))
    })?;
    let count = prepared.len();
    let mut env = Vec::new();
    if args.listen_fds {
        env.push(("LISTEN_PID".to_owned(), std::process::id().to_string()));
        env.push(("LISTEN_FDS".to_owned(), listening.to_string()));
        env.push(("LISTEN_FDNAMES".to_owned(), names.join(":")));
    }
    exec(prepared, &args.command, started, &format!("{count} fds handed over from process {}", args.pid), &env)
}

/// Installs the prepared fds and execs the command; returns only on failure.
fn exec(
    mut prepared: Prepared,
    command: &[std::ffi::OsString],
    started: Instant,
    what: &str,
    env: &[(String, String)],
) -> Result<Outcome, Failure> {
    let (program, rest) = command.split_first().ok_or_else(|| fail("no command to run"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Said before the install: stderr may be one of the numbers the install replaces.
    for (fd, rule) in prepared.closed() {
        eprintln!("crrules: fd {fd} is left closed (rule {rule})");
    }
    eprintln!(
        "crrules: {what} prepared in {} us; running {}",
        started.elapsed().as_micros(),
        program.to_string_lossy()
    );
    // Errors after the install (which replaces stderr when the image has fd 2) go to the stderr crrules was
    // started with.
    let errors = prepared.stderr_for_errors();
    let said = |message: String| -> Failure {
        match errors.as_ref().map(|fd| fd.try_clone()) {
            Some(Ok(copy)) => {
                let _ = std::io::Write::write_all(
                    &mut std::fs::File::from(copy),
                    format!("crrules: {message}\n").as_bytes(),
                );
                Failure::Printed
            }
            _ => fail(message),
        }
    };
    restore::restore_fd_limit();
    prepared.install(errors.as_ref()).map_err(|e| said(format!("cannot restore: {e} (the command was not run)")))?;
    let e = cmd.exec();
    Err(said(format!("cannot run {}: {e}", program.to_string_lossy())))
}
