//! Which facts a policy needs, so the scanner can skip the reads that no rule and no output needs: under a
//! policy whose pipe rules test nothing, a pipe costs a `readlink` and no fdinfo read.

use crate::scan::{KindMask, ScanOptions};
use crrules_rules::RuleSet;
use crrules_rules::rule::Predicate;
use crrules_rules::vocab::Kind;

/// The scan a policy needs to decide every fd: fdinfo only for kinds whose rules test flags, access or the
/// filesystem; sock_diag only when a socket rule tests family, type or state; `stat` of fds without a
/// path only when an `any` rule tests what `stat` says (fds with a path are always stat'ed).
pub fn scan_options(rules: &RuleSet) -> ScanOptions {
    let mut opts = ScanOptions::minimal();
    for rule in rules.rules() {
        // What this rule's predicates read, as if it were the only rule.
        let mut want = ScanOptions::minimal();
        for p in &rule.predicates {
            add(&mut want, p);
        }
        let kinds = if rule.kind == Kind::Any { KindMask::ALL } else { KindMask::NONE.with(rule.kind) };
        if want.fdinfo {
            opts.fdinfo = true;
            opts.fdinfo_kinds = opts.fdinfo_kinds.union(kinds);
        }
        opts.mounts |= want.mounts;
        opts.sockets |= want.sockets && kinds.contains(Kind::Socket);
        // Fds with a path are always stat'ed; the others only for an `any` rule.
        opts.stat |= want.stat && rule.kind == Kind::Any;
    }
    opts
}

fn add(want: &mut ScanOptions, predicate: &Predicate) {
    match predicate {
        Predicate::Dev { .. } | Predicate::Deleted | Predicate::Size(..) => want.stat = true,
        Predicate::Fs(_) => {
            want.fdinfo = true;
            want.mounts = true;
        }
        Predicate::Flags(_) | Predicate::Access(_) => want.fdinfo = true,
        Predicate::Family(_) | Predicate::SockType(_) | Predicate::State(_) => want.sockets = true,
        Predicate::Path(_) | Predicate::Fd(_) | Predicate::Name(_) => {}
        Predicate::Not(inner) => add(want, inner),
    }
}
