//! `crrules man`: the one manual page, crrules(1). Its title, synopsis and global options come from the
//! argument definitions through clap_mangen; every command, with its own synopsis and options, is read from
//! the same definitions here; the rule language's words are taken from `crrules_rules::vocab` (what each
//! means is said beside an exhaustive match, so a new word cannot be left out); FILES and EXIT STATUS name
//! the paths and codes the code uses.

use crate::args::Cli;
use crate::{Failure, Outcome};
use clap::{Arg, ArgAction, CommandFactory};
use crrules_rules::policy;
use crrules_rules::vocab::{
    self, Access, ActionWord, Clock, Kind, MarkTarget, PeerPlace, PredicateWord, SockFamily, SockProto, SockState,
    SockType,
};
use std::fmt::Write as _;

/// The page, in roff.
pub fn page() -> Result<Vec<u8>, Failure> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    let cannot = |e: std::io::Error| Failure::Report(miette::miette!("cannot make the man page: {e}"));
    man.render_title(&mut out).map_err(cannot)?;
    man.render_name_section(&mut out).map_err(cannot)?;
    let mut page = String::new();
    synopsis(&mut page, &cmd);
    description(&mut page);
    global_options(&mut page, &cmd);
    commands(&mut page, &cmd);
    rule_language(&mut page);
    files(&mut page);
    exit_status(&mut page);
    environment(&mut page);
    see_also(&mut page);
    out.extend_from_slice(page.as_bytes());
    Ok(out)
}

/// Text made safe for roff: a backslash and a hyphen escaped, and a line that would start with a control
/// character (`.` or `'`) started with a zero-width `\&`.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for line in s.split('\n') {
        if !out.is_empty() {
            out.push('\n');
        }
        if line.starts_with(['.', '\'']) {
            out.push_str("\\&");
        }
        for c in line.chars() {
            match c {
                '\\' => out.push_str("\\e"),
                '-' => out.push_str("\\-"),
                c => out.push(c),
            }
        }
    }
    out
}

fn bold(s: &str) -> String {
    format!("\\fB{}\\fR", text(s))
}

fn italic(s: &str) -> String {
    format!("\\fI{}\\fR", text(s))
}

/// A paragraph of running text, each line of `s` a line of the source.
fn para(page: &mut String, s: &str) {
    page.push_str(".PP\n");
    page.push_str(&text(s));
    page.push('\n');
}

/// A tagged paragraph: `tag` (already roff) over the indented `body`.
fn item(page: &mut String, tag: &str, body: &str) {
    let _ = write!(page, ".TP\n{tag}\n{}\n", text(body));
}

/// Lines shown as they are (an example).
fn example(page: &mut String, lines: &[&str]) {
    page.push_str(".PP\n.RS 4\n.nf\n");
    for line in lines {
        page.push_str(&text(line));
        page.push('\n');
    }
    page.push_str(".fi\n.RE\n");
}

fn synopsis(page: &mut String, cmd: &clap::Command) {
    page.push_str(".SH SYNOPSIS\n");
    let mut line = bold("crrules");
    for arg in cmd.get_arguments().filter(|a| a.is_global_set() && !a.is_hide_set()) {
        line.push(' ');
        line.push_str(&usage(arg));
    }
    let _ = writeln!(line, " {} [{}]", italic("COMMAND"), italic("OPTIONS"));
    page.push_str(&line);
    let _ = writeln!(page, ".br\n{} {}|{}", bold("crrules"), bold("--help"), bold("--version"));
}

fn description(page: &mut String) {
    page.push_str(".SH DESCRIPTION\n");
    para(
        page,
        "crrules reads every open file descriptor of a Linux process (or of a tree, a cgroup, a container, \
         every process) and decides, with declarative rules, what becomes of each one at checkpoint and \
         restore: reopened by its path, saved with its contents, recreated, handed in by the restorer, left \
         closed, or rejected, which makes the process not checkpointable. Every decision names the rule that \
         made it (FILE:LINE).",
    );
    para(
        page,
        "The policy is the rule files of the policy directories (see FILES), or those given with --rules. The \
         rule language is summed up in RULE LANGUAGE below.",
    );
}

fn global_options(page: &mut String, cmd: &clap::Command) {
    page.push_str(".SH OPTIONS\nThese options are taken by every command, before or after its name.\n");
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        option(page, arg);
    }
}

/// Each command: a subsection with its synopsis, what it does, and its options.
fn commands(page: &mut String, cmd: &clap::Command) {
    page.push_str(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let own: Vec<&Arg> = sub.get_arguments().filter(|a| is_own(a)).collect();
        let _ = writeln!(page, ".SS \"crrules {}\"", text(sub.get_name()));
        let mut synopsis = bold(&format!("crrules {}", sub.get_name()));
        for arg in &own {
            synopsis.push(' ');
            synopsis.push_str(&usage(arg));
        }
        let _ = writeln!(page, ".PP\n{synopsis}");
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            para(page, about.to_string().trim_end_matches('.'));
        }
        for arg in own {
            option(page, arg);
        }
    }
}

/// An argument of the command itself, not a global one nor `--help`.
fn is_own(arg: &Arg) -> bool {
    !arg.is_hide_set() && !arg.is_global_set() && !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
}

/// What the argument's values are called: its value names, or its id in capitals.
fn value_name(arg: &Arg) -> String {
    match arg.get_value_names() {
        Some(names) => names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" "),
        None => arg.get_id().as_str().to_uppercase(),
    }
}

/// How the argument is written in a synopsis: `[--pid PID]...`, `-- COMMAND...`.
fn usage(arg: &Arg) -> String {
    let repeated =
        matches!(arg.get_action(), ArgAction::Append) || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
    let s = match arg.get_long() {
        Some(long) if arg.get_action().takes_values() => {
            format!("{} {}", bold(&format!("--{long}")), italic(&value_name(arg)))
        }
        Some(long) => bold(&format!("--{long}")),
        None if arg.is_last_set() => format!("{} {}", bold("--"), italic(&value_name(arg))),
        None => italic(&value_name(arg)),
    };
    let s = if arg.is_required_set() { s } else { format!("[{s}]") };
    if repeated { s + "..." } else { s }
}

/// One option or argument as a tagged paragraph: its spelling, its help, its default and its values.
fn option(page: &mut String, arg: &Arg) {
    let mut tag = match (arg.get_short(), arg.get_long()) {
        (Some(short), Some(long)) => format!("{}, {}", bold(&format!("-{short}")), bold(&format!("--{long}"))),
        (None, Some(long)) => bold(&format!("--{long}")),
        (Some(short), None) => bold(&format!("-{short}")),
        (None, None) if arg.is_last_set() => bold("--"),
        (None, None) => String::new(),
    };
    if arg.get_action().takes_values() {
        if !tag.is_empty() {
            tag.push(' ');
        }
        tag.push_str(&italic(&value_name(arg)));
    }
    let help = arg.get_long_help().or_else(|| arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
    let mut body = help.trim_end_matches('.').to_owned();
    let defaults = arg.get_default_values();
    if arg.get_action().takes_values() && !defaults.is_empty() && !arg.is_hide_default_value_set() {
        let shown: Vec<String> = defaults.iter().map(|d| d.to_string_lossy().into_owned()).collect();
        let _ = write!(body, " (default: {})", shown.join(", "));
    }
    item(page, &tag, &body);
    let values: Vec<clap::builder::PossibleValue> =
        arg.get_possible_values().into_iter().filter(|v| !v.is_hide_set()).collect();
    if values.is_empty() || matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return;
    }
    if values.iter().any(|v| v.get_help().is_some()) {
        page.push_str(".RS\n");
        for v in &values {
            let help = v.get_help().map(|h| h.to_string()).unwrap_or_default();
            item(page, &bold(v.get_name()), help.trim_end_matches('.'));
        }
        page.push_str(".RE\n");
    } else {
        let names: Vec<String> = values.iter().map(|v| bold(v.get_name())).collect();
        let _ = writeln!(page, ".IP\nOne of {}.", names.join(", "));
    }
}

/// How a predicate is written after its keyword, and what it tests.
fn predicate(word: PredicateWord) -> (String, String) {
    use PredicateWord as P;
    // A few words are written out in the form; a longer list goes with the meaning.
    let one_of = |words: &[&'static str], what: &str| -> (String, String) {
        if words.len() <= 4 {
            (words.join("|"), what.to_owned())
        } else {
            ("WORD".to_owned(), format!("{what}: {}", words.join(", ")))
        }
    };
    let words = |all: &mut dyn Iterator<Item = &'static str>| all.collect::<Vec<_>>();
    let plain = |form: &str, what: &str| (form.to_owned(), what.to_owned());
    match word {
        P::Path => plain(
            "\"GLOB\"",
            "the fd's path matches the glob (* and ? within a component, ** across them, {a,b}, [a-z])",
        ),
        P::Fs => {
            plain("NAME", "the filesystem type of the fd's mount (tmpfs, ext4, fuse.*), a bare word or a quoted glob")
        }
        P::Deleted => plain("", "the file has no name left (st_nlink is 0)"),
        P::Unlinked => plain("", "the name the file was opened by is gone, but another name remains"),
        P::Flags => plain(
            "FLAG,FLAG...",
            "every listed open flag is set (O_APPEND, O_NONBLOCK...; O_RDONLY is zero: write access ro)",
        ),
        P::Access => one_of(&words(&mut Access::words()), "how the fd was opened for access"),
        P::Size => plain("OP SIZE", "the size compared with <, <=, >, >= or ==; SIZE a number with an optional unit"),
        P::Fd => plain("NUMBERS", "the fd number: N, a range N-M, a set {0,1,5-9}, or *"),
        P::Family => one_of(&words(&mut SockFamily::words()), "a socket's address family"),
        P::Type => one_of(&words(&mut SockType::words()), "a socket's type"),
        P::State => one_of(&words(&mut SockState::words()), "a socket's state"),
        P::Protocol => one_of(&words(&mut SockProto::words()), "a socket's protocol, the same for IPv4 and IPv6"),
        P::Queued => {
            plain("", "a socket's receive queue is not empty (for a listener: connections wait to be accepted)")
        }
        P::Packet => plain("", "a pipe in packet mode (O_DIRECT on an end the process holds)"),
        P::Clock => one_of(&words(&mut Clock::words()), "a timerfd's clock"),
        P::Thread => plain("", "a pidfd of one thread (PIDFD_THREAD)"),
        P::Marks => one_of(&words(&mut MarkTarget::words()), "a fanotify group has a mark of that kind"),
        P::Locked => plain("", "a POSIX, flock or OFD lock or a lease is held through the fd's open file"),
        P::Name => plain(
            "\"GLOB\"",
            "an anonymous inode's name, brackets literal (\"[kvm-vm]\"), or a namespace file's type (\"net\")",
        ),
        P::Peer => one_of(
            &words(&mut PeerPlace::words()),
            "where the other end is (a pipe's or FIFO's other end, a unix socket's peer, a TCP connection's over a \
             local address, a terminal's other side), seen from the processes checked together: inside, a \
             process checked with it holds it (the same process counts); outside, a process not checked holds \
             it, or one crrules cannot see; none, no process holds it",
        ),
        P::Shared => {
            plain("", "other fds of the processes checked together hold the same open file (after dup or fork)")
        }
    }
}

/// A form of a construct as roff: its words (`reopen`, `path`) in bold, what stands for a value (`SIZE`,
/// `"NAME"`) in italics.
fn written(form: &str) -> String {
    let words: Vec<String> = form
        .split(' ')
        .map(|w| if w.chars().all(|c| c.is_ascii_lowercase() || c == '_') { bold(w) } else { italic(w) })
        .collect();
    words.join(" ")
}

/// How an action is written (each form in roff), and what it does.
fn action(word: ActionWord) -> (Vec<String>, &'static str) {
    use ActionWord as A;
    let mut forms: Vec<String> = word.arguments().iter().map(|a| written(&format!("{word} {a}"))).collect();
    if forms.is_empty() {
        forms.push(bold(word.name()));
    }
    let says = match word {
        A::Reopen => {
            "open the fd's path again at restore, checked to be the same type of file (path exact: the very \
             same file, its device, inode and size), or open the given absolute path instead"
        }
        A::Contents => {
            forms.push(written(&format!("{word} limit SIZE")));
            "save the file's bytes with the checkpoint and bring them back (at most SIZE with limit)"
        }
        A::Recreate => "rebuild the kernel object (a pipe, a socket, an eventfd...) from its saved state",
        A::Inherit => "the restorer hands this fd in under NAME (crrules restore --inherit NAME=FD)",
        A::Close => "not restored: the fd is left closed, a visible loss",
        A::Reject => "the process cannot be checkpointed, for REASON",
        A::Plugin => "hand the fd to the backend plugin NAME",
    };
    (forms, says)
}

fn rule_language(page: &mut String) {
    page.push_str(".SH RULE LANGUAGE\n");
    para(
        page,
        "A policy is a list of rules, one per line, in files named *.rules. A rule is a kind, then predicates \
         that must all hold, then the action:",
    );
    example(
        page,
        &[
            "KIND [PREDICATE]... => ACTION [because \"NOTE\"]",
            "",
            "chardev 1:3 => reopen path",
            "chardev 136:* => inherit \"pts\"",
            "file deleted size <= 16MiB => contents",
            "pipe peer outside => reject \"the other end is not checked with it\"",
            "perf_event => reject \"perf events cannot be checkpointed\"",
        ],
    );
    para(
        page,
        "For each fd the first rule that matches decides, in the policy's effective order (files by name, rules \
         in file order); an fd that no rule matches is rejected (\"no rule matches\"). # starts a comment; a line \
         ending in a backslash goes on on the next line. crrules lint checks a policy, crrules rules prints it in \
         effective order.",
    );
    page.push_str(".SS Kinds\n");
    let kinds: Vec<String> = Kind::words().map(bold).collect();
    let _ = writeln!(page, ".PP\n{}.", kinds.join(", "));
    page.push_str("The kind any matches every fd.\n");
    page.push_str(".SS Predicates\n");
    item(
        page,
        &italic("MAJOR:MINOR"),
        "a device's numbers, each N, a range N-M, a set {N,M-K}, or * (chardev and blockdev)",
    );
    for &word in PredicateWord::ALL {
        let (form, says) = predicate(word);
        let tag = if form.is_empty() { bold(word.name()) } else { format!("{} {}", bold(word.name()), italic(&form)) };
        item(page, &tag, &says);
    }
    let units: Vec<&str> = vocab::SIZE_UNITS.iter().map(|(unit, _)| *unit).collect();
    item(page, &format!("{} {}", bold(vocab::NOT), italic("PREDICATE")), "the predicate does not hold");
    para(page, &format!("Size units: {} (powers of 1024); none means bytes.", units.join(", ")));
    page.push_str(".SS Actions\n");
    for &word in ActionWord::ALL {
        let (forms, says) = action(word);
        item(page, &forms.join(" | "), says);
    }
    para(
        page,
        &format!(
            "Any action but reject may be followed by {} \"NOTE\", shown with every decision the rule makes. The \
             whole language, with what applies to which kind, is in /usr/share/doc/crrules/rule-language.md.",
            vocab::BECAUSE
        ),
    );
}

fn files(page: &mut String) {
    page.push_str(".SH FILES\n");
    let layer = |dir: &str| -> &'static str {
        match dir {
            d if d.starts_with("usr/") => {
                "the distribution's rules; the built-in default policy stands in when it holds no rule file"
            }
            d if d.starts_with("run/") => "rules written at run time",
            _ => "the site's own rules",
        }
    };
    for (_, dir) in policy::DIRECTORIES {
        item(page, &bold(&format!("/{dir}/*{}", policy::SUFFIX)), layer(dir));
    }
    para(
        page,
        "The files of the three directories are taken together, ordered by file name; a file in a later \
         directory replaces the file of the same name in an earlier one, and an empty file or a symlink to \
         /dev/null of that name masks it. --root DIR looks for the directories under DIR.",
    );
    let image = crrules_engine::image::MANIFEST;
    item(
        page,
        &format!("{}/{image}", italic("IMAGE")),
        "written by crrules dump, read by crrules restore: the dumped process and each fd's facts and decision",
    );
    item(
        page,
        &format!("{}/{}/", italic("IMAGE"), crrules_engine::image::DATA_DIR),
        "an image's saved contents, one file per fd that needs one",
    );
    item(
        page,
        &format!("{}/{}", italic("IMAGE"), crrules_engine::image::SUMS),
        "the SHA-256 of every other file of the image, as sha256sum -c reads them; a restore checks them all first",
    );
    item(
        page,
        &bold(&format!("{}/libcrrules_criu.so", crrules_engine::criu::PLUGIN_DIR)),
        "the CRIU plugin: carries out the decisions of a policy when CRIU dumps and restores",
    );
    item(
        page,
        &bold("/usr/lib/crrules/criu-action"),
        "the CRIU action script (action-script in /etc/criu/default.conf): runs crrules criu-action",
    );
    item(page, &bold("/usr/share/doc/crrules/rule-language.md"), "the rule language in full");
}

fn exit_status(page: &mut String) {
    page.push_str(".SH EXIT STATUS\n");
    item(
        page,
        &bold(&(Outcome::Clean as u8).to_string()),
        "success: every process checked is checkpointable, the policy has no error, every policy test passes",
    );
    item(
        page,
        &bold(&(Outcome::Finding as u8).to_string()),
        "a finding: an fd is rejected (the process is not checkpointable), the policy has errors (or warnings, \
         with --deny-warnings), a policy test fails",
    );
    item(
        page,
        &bold("2"),
        "an error: crrules could not run (bad arguments, no such process, a process it may not read, none of the \
         processes of --all, --cgroup or --container it could read, a facts file it cannot read)",
    );
}

fn environment(page: &mut String) {
    page.push_str(".SH ENVIRONMENT\n");
    item(page, &bold("NO_COLOR"), "when set and not empty, no colour (unless --color always)");
    item(page, &bold("CRTOOLS_SCRIPT_ACTION"), "read by crrules criu-action: the stage CRIU is at");
    item(page, &bold("CRTOOLS_INIT_PID"), "read by crrules criu-action: the root of the tree CRIU dumps");
}

fn see_also(page: &mut String) {
    page.push_str(".SH SEE ALSO\n");
    let _ = writeln!(page, "{}, {}", bold("criu(8)"), bold("proc(5)"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_control_characters_are_escaped() {
        assert_eq!(text(".hidden\n'quote"), "\\&.hidden\n\\&'quote");
        assert_eq!(text("--pid a\\b"), "\\-\\-pid a\\eb");
    }

    #[test]
    fn every_word_of_the_language_is_on_the_page() {
        let page = String::from_utf8(page().unwrap()).unwrap();
        for word in PredicateWord::words().chain(ActionWord::words()).chain(Kind::words()) {
            assert!(page.contains(&format!("\\fB{}\\fR", text(word))), "`{word}` is not on the page");
        }
    }
}
