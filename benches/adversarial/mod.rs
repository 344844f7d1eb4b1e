//! Adversarial policies for the lint analysis (issue 8): deterministic generators of rules that overlap
//! each other heavily, so that a rule-against-every-earlier-rule analysis is quadratic. Shared by the
//! `parse` bench and by `examples/adversarial_policy.rs` (which writes them out for timing the binary).

use std::fmt::Write as _;

/// A small deterministic generator, so every run sees the same text.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A generator: the policy text of `n` rules.
pub type Generator = fn(usize) -> String;

/// The shapes, by the name the example takes.
pub const SHAPES: &[(&str, Generator)] = &[
    ("dev", overlapping_dev),
    ("dev-nested", nested_dev),
    ("glob", overlapping_globs),
    ("fd", overlapping_fds),
    ("flags", overlapping_flags),
];

/// `chardev 4:LO-HI` with random, mostly wide, overlapping minor ranges under one major (and a few
/// majors around it): every rule overlaps hundreds or thousands of earlier ones and few are covered.
pub fn overlapping_dev(n: usize) -> String {
    let mut g = Lcg(8);
    let mut out = String::from("# adversarial: overlapping chardev minor ranges\n");
    for i in 0..n {
        let major = if i % 8 == 0 { 3 + g.next(4) } else { 4 };
        let lo = g.next(1 << 20);
        let hi = (lo + 1 + g.next(1 << 17)).min((1 << 20) - 1);
        let action = ["close", "reopen path", "inherit \"tty\""][i % 3];
        let _ = writeln!(out, "chardev {major}:{lo}-{hi} => {action}");
    }
    out
}

/// `chardev 4:0-K` and `chardev 4:K-1048575` for growing `K`: each rule overlaps every earlier one, and
/// none is covered by them.
pub fn nested_dev(n: usize) -> String {
    let mut out = String::from("# adversarial: nested chardev minor ranges\n");
    for i in 0..n {
        let k = 10 + i * 50;
        if i % 2 == 0 {
            let _ = writeln!(out, "chardev 4:0-{k} => close");
        } else {
            let _ = writeln!(out, "chardev 4:{}-1048575 => reopen path", (1 << 20) - k);
        }
    }
    out
}

/// `file path "/a/D/**"` with a flag, over a few directories nested a few deep, between literal paths
/// under them: every glob overlaps many earlier globs and literals.
pub fn overlapping_globs(n: usize) -> String {
    let mut g = Lcg(9);
    let mut out = String::from("# adversarial: overlapping path globs\n");
    for i in 0..n {
        let depth = 1 + g.next(3);
        let dir: Vec<String> = (0..depth).map(|_| format!("d{}", g.next(4))).collect();
        let dir = dir.join("/");
        let _ = match i % 3 {
            0 => writeln!(out, "file path \"/a/{dir}/**\" flags O_APPEND => reopen path"),
            1 => writeln!(out, "file path \"/a/{dir}/f{i}\" => close"),
            _ => writeln!(out, "file path \"/a/{dir}/*.log\" not deleted => contents"),
        };
    }
    out
}

/// `any fd LO-HI` and `file fd LO-HI` with random overlapping ranges: `any` rules are candidates for
/// every kind.
pub fn overlapping_fds(n: usize) -> String {
    let mut g = Lcg(10);
    let mut out = String::from("# adversarial: overlapping fd ranges\n");
    for i in 0..n {
        let lo = g.next(100_000);
        let hi = lo + 1 + g.next(20_000);
        let kind = ["any", "file", "socket", "chardev"][i % 4];
        let _ = writeln!(out, "{kind} fd {lo}-{hi} => close");
    }
    out
}

/// Rules that each expand to many boxes (`not flags A,B,C`: one box per flag) over overlapping fd
/// ranges: every comparison splits many boxes.
pub fn overlapping_flags(n: usize) -> String {
    const FLAGS: &[&str] = &["O_APPEND", "O_NONBLOCK", "O_SYNC", "O_DSYNC", "O_DIRECT", "O_NOATIME", "O_CLOEXEC"];
    let mut g = Lcg(11);
    let mut out = String::from("# adversarial: rules of many boxes over overlapping fd ranges\n");
    for _ in 0..n {
        let lo = g.next(50_000);
        let hi = lo + 1 + g.next(10_000);
        let flags: Vec<&str> = FLAGS.iter().copied().filter(|_| g.next(2) == 0).collect();
        let flags = if flags.is_empty() { "O_APPEND".to_owned() } else { flags.join(",") };
        let _ = writeln!(out, "file not flags {flags} fd {lo}-{hi} not deleted => close");
    }
    out
}
