//! End-to-end, issue 12 (output): a reader that stops reading (`crrules ... | head -1`) ends crrules quietly,
//! with the exit status it would have had, on every command that writes to standard output; and
//! `crrules man` is one page documenting every command with its options, the rule language, FILES and
//! EXIT STATUS.

mod common;
use common::{TempDir, run};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};

/// How the reader treats crrules' standard output.
#[derive(Clone, Copy, Debug)]
enum Reader {
    /// The pipe's read end is closed before crrules starts: its first write fails.
    ClosedAtOnce,
    /// Reads one line through a 4 KiB pipe, then closes it while crrules still has more to write.
    ReadsALine,
}

/// Runs crrules with `args`, its standard output read by `reader`: exit code and standard error.
fn run_into(args: &[&str], reader: Reader) -> (i32, String) {
    // Close-on-exec: no other process (tests run side by side) may hold an end of it.
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let mut child = match reader {
        Reader::ClosedAtOnce => {
            drop(read_end);
            spawn(args, write_end)
        }
        Reader::ReadsALine => {
            // The smallest pipe a process may ask for: output beyond it waits for the reader.
            nix::fcntl::fcntl(&read_end, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096)).expect("F_SETPIPE_SZ");
            let child = spawn(args, write_end);
            read_a_line(read_end);
            child
        }
    };
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read stderr");
    let status = child.wait().expect("wait");
    (status.code().unwrap_or(-1), err)
}

/// crrules with `stdout` as its standard output, which only the child holds afterwards (the command, which
/// keeps a copy, is dropped here).
fn spawn(args: &[&str], stdout: OwnedFd) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crrules"));
    command.args(args).env("NO_COLOR", "1").stdin(Stdio::null()).stdout(stdout).stderr(Stdio::piped());
    command.spawn().expect("run crrules")
}

/// Reads up to the first newline, then drops the read end.
fn read_a_line(read_end: OwnedFd) {
    let mut pipe = std::fs::File::from(read_end);
    let mut byte = [0u8; 1];
    while pipe.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {}
}

/// A process to check, holding /dev/null on its standard streams; killed when dropped.
struct Sleeper(Child);

impl Sleeper {
    fn spawn() -> Sleeper {
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        Sleeper(child)
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn has_graphviz() -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("dot").is_file()))
}

#[test]
fn r12_a_reader_that_stops_reading_ends_crrules_quietly_with_its_exit_status() {
    let sleeper = Sleeper::spawn();
    let pid = sleeper.pid();
    let root = TempDir::new("closed-pipe");
    let rejecting = root.write("reject.rules", "any => reject \"every fd, for this test\"\n");
    let rejecting = rejecting.to_str().unwrap();
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/policy/tests");
    let r = root.str();
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["check", "--root", r, "--pid", &pid],
        vec!["check", "--root", r, "--pid", &pid, "--format", "json"],
        vec!["check", "--root", r, "--pid", &pid, "--format", "ron"],
        vec!["check", "--root", r, "--pid", &pid, "--format", "dot"],
        // Exit 1 (rejected) stays 1 when nobody reads the table.
        vec!["check", "--rules", rejecting, "--pid", &pid],
        vec!["check", "--root", r, "--all"],
        vec!["facts", "--pid", &pid],
        vec!["explain", "--root", r, "--pid", &pid, "--fd", "0"],
        vec!["criu", "--root", r, "--pid", &pid],
        vec!["criu", "--root", r, "--pid", &pid, "--format", "json", "--explain"],
        vec!["rules", "--root", r],
        vec!["rules", "--root", r, "--format", "json"],
        vec!["lint", "--root", r, "--coverage"],
        vec!["test", "--root", r, tests],
        vec!["man"],
        vec!["completions", "bash"],
    ];
    if has_graphviz() {
        commands.push(vec!["check", "--root", r, "--pid", &pid, "--format", "svg"]);
    }
    for args in &commands {
        let (want, _, want_err) = run(args);
        assert!(want == 0 || want == 1, "{args:?} with a reader: {want}\n{want_err}");
        for reader in [Reader::ClosedAtOnce, Reader::ReadsALine] {
            let (code, err) = run_into(args, reader);
            assert!(!err.contains("Broken pipe") && !err.contains("panicked"), "{args:?} {reader:?}: {err}");
            assert!(!err.contains("cannot write") && !err.contains("could not draw"), "{args:?} {reader:?}: {err}");
            if args.contains(&"--all") {
                // Every process on the host: the other tests' processes come and go between two runs, and
                // one of them may be rejected in one run and not in the next.
                assert!(code == 0 || code == 1, "{args:?} {reader:?}: {err}");
            } else {
                assert_eq!(code, want, "{args:?} {reader:?}: {err}");
            }
        }
    }
}

#[test]
fn r12_output_that_cannot_be_written_for_another_reason_is_still_an_error() {
    // /dev/full refuses every write with ENOSPC: that is a failure, said as such.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let out = Command::new(env!("CARGO_BIN_EXE_crrules"))
        .arg("man")
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .expect("run crrules");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot write the output") && err.contains("No space left on device"), "{err}");
}

/// The commands `crrules --help` lists, but `help`.
fn commands() -> Vec<String> {
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, 0);
    let listed = help.split("Commands:\n").nth(1).and_then(|rest| rest.split("\n\n").next()).expect("Commands:");
    let names: Vec<String> = listed
        .lines()
        .filter_map(|line| line.strip_prefix("  ").filter(|l| !l.starts_with(' ')))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect();
    assert!(names.len() > 10 && names.iter().any(|n| n == "criu-action"), "{names:?}");
    names
}

/// The long options `crrules COMMAND --help` lists, but `--help` and the global ones.
fn options_of(command: &str) -> Vec<String> {
    let (code, help, _) = run(&[command, "--help"]);
    assert_eq!(code, 0);
    let mut options: Vec<String> = help
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("--"))
        .map(|word| word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .filter(|word| !word.is_empty() && !["help", "root", "rules", "color"].contains(word))
        .filter(|word| help.contains(&format!("  --{word}")) || help.contains(&format!(", --{word}")))
        .map(str::to_owned)
        .collect();
    options.sort();
    options.dedup();
    options
}

#[test]
fn r12_the_man_page_documents_every_command_and_its_options() {
    let (code, man, err) = run(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(man.starts_with(".ie") || man.starts_with(".TH"), "{man}");
    // One page: it refers to no page of its own per command.
    assert!(!man.contains("crrules\\-check(1)"), "{man}");
    for command in commands() {
        let heading = format!(".SS \"crrules {}\"\n", command.replace('-', "\\-"));
        let at = man.find(&heading).unwrap_or_else(|| panic!("no section for `{command}`:\n{man}"));
        let section = &man[at + heading.len()..];
        let section = &section[..section.find(".SS ").or_else(|| section.find(".SH ")).unwrap_or(section.len())];
        for option in options_of(&command) {
            let spelled = format!("\\fB\\-\\-{}\\fR", option.replace('-', "\\-"));
            assert!(section.contains(&spelled), "`{command} --{option}` is not in its section:\n{section}");
        }
    }
    for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "RULE LANGUAGE", "FILES", "EXIT STATUS"] {
        assert!(man.contains(&format!(".SH {heading}\n")), "no {heading}:\n{man}");
    }
    for path in [
        "/usr/lib/crrules/rules.d",
        "/etc/crrules/rules.d",
        "/run/crrules/rules.d",
        "manifest.json",
        "SHA256SUMS",
        "/usr/lib/criu/libcrrules_criu.so",
        "/usr/lib/crrules/criu\\-action",
    ] {
        assert!(man.contains(path), "FILES does not name {path}");
    }
    let exit_status = &man[man.find(".SH EXIT STATUS").unwrap()..];
    for code in ["0", "1", "2"] {
        assert!(exit_status.contains(&format!(".TP\n\\fB{code}\\fR\n")), "exit status {code}:\n{exit_status}");
    }
}

#[test]
fn r12_the_man_page_names_every_word_of_the_rule_language() {
    use crrules_rules::vocab::{ActionWord, Kind, PeerPlace, PredicateWord};
    let (_, man, _) = run(&["man"]);
    let language = &man[man.find(".SH RULE LANGUAGE").expect("RULE LANGUAGE")..man.find(".SH FILES").unwrap()];
    for word in PredicateWord::words().chain(ActionWord::words()).chain(Kind::words()) {
        assert!(language.contains(&format!("\\fB{word}\\fR")), "`{word}` is not in RULE LANGUAGE:\n{language}");
    }
    let places: Vec<&str> = PeerPlace::words().collect();
    assert!(language.contains(&format!("\\fBpeer\\fR \\fI{}\\fR", places.join("|"))), "{language}");
    assert!(language.contains("\\fBshared\\fR"), "{language}");
}
