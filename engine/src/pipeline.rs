//! The one pipeline: for every process a [`Source`] yields, scan -> decide -> [`Backend`]. The scan reads
//! what the policy needs plus what the backend needs; without a [`Decider`] the plans carry facts alone.
//! Processes checked together (a tree, a cgroup) are all scanned, then linked (see `crate::link`), then
//! decided one by one, when the policy or the backend needs the links.
//! A caller picks a source and a backend and maps the [`Outcome`] to what it reports; it never loops
//! over processes itself.

use crate::backend::Backend;
use crate::link;
use crate::needs::ScanOptions;
use crate::plan::{Decider, ProcessPlan};
use crate::scan::ProcessScan;
use crate::source::{Source, SourceError, Sourced};
use std::collections::VecDeque;

/// What a run found, counted over the processes the source yielded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Processes decided checkpointable.
    pub checkpointable: usize,
    /// Processes with at least one rejected fd.
    pub rejected: usize,
    /// Processes read but not decided (a run without a decider).
    pub undecided: usize,
    /// Processes the source skipped (they exited, or could not be read) without stopping the run.
    pub skipped: usize,
    /// Of those, the ones that could not be read (the others exited).
    pub unreadable: usize,
}

impl Outcome {
    /// True when some process cannot be checkpointed.
    pub fn any_rejected(&self) -> bool {
        self.rejected > 0
    }

    /// The processes read, decided or not.
    pub fn read(&self) -> usize {
        self.checkpointable + self.rejected + self.undecided
    }
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E> {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The backend failed; its error is passed on as it is.
    #[error("the backend failed")]
    Backend(E),
}

/// Every process of `source`, scanned, then linked: up to the end, or to the first error (which ends the
/// list).
fn scan_and_link(source: &mut dyn Source, opts: &ScanOptions) -> VecDeque<Result<Sourced, SourceError>> {
    let mut items = VecDeque::new();
    while let Some(item) = source.next(opts) {
        let stop = item.is_err();
        items.push_back(item);
        if stop {
            break;
        }
    }
    let mut scans: Vec<&mut ProcessScan> = items
        .iter_mut()
        .filter_map(|item| match item {
            Ok(Sourced::Process(scan)) => Some(scan),
            _ => None,
        })
        .collect();
    link::link(&mut scans, opts, &link::LiveProbe);
    items
}

/// Runs the pipeline: every process of `source`, decided by `decider` (or left undecided), handed to
/// `backend` in order; then the backend finishes. A source error stops the run before the backend
/// finishes, so a backend that commits on `finish` commits nothing.
pub fn run<B: Backend>(
    decider: Option<&Decider>,
    source: &mut dyn Source,
    mut backend: B,
) -> Result<Outcome, RunError<B::Error>> {
    let opts = link::reads_for(match decider {
        Some(d) => d.needs().union(backend.needs()),
        None => ScanOptions::all(),
    });
    backend.begin(source.expected()).map_err(RunError::Backend)?;
    let mut linked = if link::wanted(&opts) && source.together() { Some(scan_and_link(source, &opts)) } else { None };
    let mut outcome = Outcome::default();
    loop {
        let item = match &mut linked {
            Some(items) => items.pop_front(),
            None => source.next(&opts),
        };
        let Some(item) = item else { break };
        match item? {
            Sourced::Process(scan) => {
                let plan = match decider {
                    Some(d) => d.plan(scan),
                    None => ProcessPlan::undecided(scan),
                };
                match (plan.decided, plan.checkpointable()) {
                    (false, _) => outcome.undecided += 1,
                    (true, true) => outcome.checkpointable += 1,
                    (true, false) => outcome.rejected += 1,
                }
                backend.process(&plan).map_err(RunError::Backend)?;
            }
            Sourced::Skipped(e) => {
                outcome.skipped += 1;
                outcome.unreadable += usize::from(!e.is_gone());
                backend.skipped(&e).map_err(RunError::Backend)?;
            }
        }
    }
    backend.finish().map_err(RunError::Backend)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ScanError;
    use crate::source::FactsFile;
    use crrules_rules::Source as RuleSource;
    use std::path::Path;

    /// Records what the pipeline hands it, in order.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl Backend for Recorder {
        type Error = ();
        fn begin(&mut self, expected: Option<usize>) -> Result<(), ()> {
            self.0.push(format!("begin {expected:?}"));
            Ok(())
        }
        fn process(&mut self, plan: &ProcessPlan) -> Result<(), ()> {
            self.0.push(format!("{} {}", plan.pid, plan.checkpointable()));
            Ok(())
        }
        fn skipped(&mut self, error: &ScanError) -> Result<(), ()> {
            self.0.push(format!("skipped {error}"));
            Ok(())
        }
        fn finish(&mut self) -> Result<(), ()> {
            self.0.push("finish".into());
            Ok(())
        }
    }

    const FACTS: &str = r#"{"pid": 1, "fds": [{"fd": 0, "kind": "pipe", "link": "pipe:[5]", "deleted": false, "flags": [], "cloexec": false}]}

{"pid": 2, "comm": "x", "fds": [{"fd": 3, "state": "vanished"}]}
{"pid": 3, "fds": [{"fd": 0, "kind": "eventfd", "link": "anon_inode:[eventfd]", "deleted": false, "flags": [], "cloexec": false, "action": "close", "rule": "old.rules:1", "reason": null}]}
"#;

    fn facts(text: &'static str) -> FactsFile {
        FactsFile::from_reader(Path::new("t.jsonl"), Box::new(std::io::Cursor::new(text)))
    }

    #[test]
    fn every_process_is_decided_and_handed_on_in_order() {
        let v = crrules_rules::compile(&[RuleSource::new("t.rules", "pipe => recreate\n")]);
        let decider = Decider::new(v.rules);
        let mut backend = Recorder::default();
        let outcome = run(Some(&decider), &mut facts(FACTS), &mut backend).unwrap();
        assert_eq!(backend.0, ["begin None", "1 true", "2 true", "3 false", "finish"]);
        assert_eq!(outcome, Outcome { checkpointable: 2, rejected: 1, undecided: 0, skipped: 0, unreadable: 0 });
        assert_eq!(outcome.read(), 3);
        assert!(outcome.any_rejected());
    }

    #[test]
    fn without_a_decider_plans_carry_facts_alone() {
        let mut backend = Recorder::default();
        let outcome = run(None, &mut facts(FACTS), &mut backend).unwrap();
        assert_eq!(outcome.undecided, 3);
        assert_eq!(backend.0[1], "1 false");
    }

    #[test]
    fn a_source_error_stops_the_run_before_the_backend_finishes() {
        let mut backend = Recorder::default();
        let bad = "{\"pid\": 1, \"fds\": []}\nnot json\n";
        let err = run(None, &mut facts(bad), &mut backend).unwrap_err();
        assert!(err.to_string().starts_with("`t.jsonl` line 2: "), "{err}");
        assert_eq!(backend.0, ["begin None", "1 false"]);
    }
}
