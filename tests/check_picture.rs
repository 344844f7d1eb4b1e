//! `check --format dot` and `--format svg` of saved facts, as the linking writes them (`peer`, `peer_pid`,
//! `peer_fd`, `peer_comm`, `shared_with`): the graph of the processes checked together, drawn by Graphviz
//! when it is installed, and, when it is not, an error that says what to install and what works without it.

mod common;

use common::{TempDir, run};
use std::path::Path;
use std::process::{Command, Output};

/// The policy the facts are decided by.
const RULES: &str = r#"pipe => recreate
fifo => recreate
socket family unix => recreate
chardev 136-143:* => inherit "pts"
perf_event => reject "perf events cannot be checkpointed"
file => reopen path
"#;

/// `producer | consumer`, the consumer's output read by a logger outside, both on one terminal (one open
/// file, shared since the shell forked them); the producer writes into a FIFO whose name is not text.
const PIPELINE: &[&str] = &[
    r#"{"pid": 10, "comm": "producer", "fds": [{"fd": 0, "kind": "chardev", "link": "/dev/pts/3", "path": "/dev/pts/3", "dev": "136:3", "deleted": false, "flags": ["O_RDWR"], "cloexec": false, "shared_with": [{"pid": 11, "fd": 2}]}, {"fd": 1, "kind": "pipe", "link": "pipe:[100]", "deleted": false, "flags": ["O_WRONLY"], "cloexec": false, "peer": "inside", "peer_pid": 11, "peer_fd": 0, "peer_comm": "consumer"}, {"fd": 3, "kind": "file", "link": "/etc/hosts", "path": "/etc/hosts", "deleted": false, "flags": ["O_RDONLY"], "cloexec": true}, {"fd": 4, "kind": "fifo", "link": {"hex": "2f746d702f3c713eff"}, "path": {"hex": "2f746d702f3c713eff"}, "deleted": false, "flags": ["O_WRONLY"], "cloexec": false, "peer": "none"}]}"#,
    r#"{"pid": 11, "comm": "consumer", "fds": [{"fd": 0, "kind": "pipe", "link": "pipe:[100]", "deleted": false, "flags": ["O_RDONLY"], "cloexec": false, "peer": "inside", "peer_pid": 10, "peer_fd": 1, "peer_comm": "producer"}, {"fd": 1, "kind": "pipe", "link": "pipe:[101]", "deleted": false, "flags": ["O_WRONLY"], "cloexec": false, "peer": "outside", "peer_pid": 20, "peer_fd": 0, "peer_comm": "logger"}, {"fd": 2, "kind": "chardev", "link": "/dev/pts/3", "path": "/dev/pts/3", "dev": "136:3", "deleted": false, "flags": ["O_RDWR"], "cloexec": false, "shared_with": [{"pid": 10, "fd": 0}]}]}"#,
];

/// A process holding an fd the policy rejects.
const PROFILER: &str = r#"{"pid": 12, "comm": "profiler", "fds": [{"fd": 5, "kind": "perf_event", "link": "anon_inode:[perf_event]", "name": "[perf_event]", "deleted": false, "flags": ["O_RDWR"], "cloexec": true}]}"#;

/// A policy and a facts file of `lines` in a temp dir.
fn setup(tag: &str, lines: &[&str]) -> (TempDir, String, String) {
    let dir = TempDir::new(tag);
    let rules = dir.write("site.rules", RULES).to_str().unwrap().to_owned();
    let facts = dir.write("facts.jsonl", &(lines.join("\n") + "\n")).to_str().unwrap().to_owned();
    (dir, rules, facts)
}

/// `crrules check --rules RULES --facts FACTS --format FORMAT` with `PATH` set as given.
fn check(rules: &str, facts: &str, format: &str, path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crrules"))
        .args(["check", "--rules", rules, "--facts", facts, "--format", format])
        .env("NO_COLOR", "1")
        .env("PATH", path)
        .output()
        .expect("run crrules")
}

/// The edges of a DOT text as `TAIL -> HEAD ATTRIBUTES`, each end `node:fd` or the node alone; sorted.
fn edges(dot: &str) -> Vec<String> {
    let end = |text: &str| {
        let quoted: Vec<&str> = text.split('"').skip(1).step_by(2).collect();
        match quoted[..] {
            [node] => node.to_owned(),
            [node, port] => format!("{node}:{}", &port[1..]),
            _ => panic!("not an edge's end: {text}"),
        }
    };
    let mut edges: Vec<String> = dot
        .lines()
        .filter_map(|line| line.trim().split_once(" -> "))
        .map(|(tail, rest)| {
            let (head, attrs) = rest.split_once(" [").expect("attributes");
            format!("{} -> {} {}", end(tail), end(head), attrs.trim_end_matches("];"))
        })
        .collect();
    edges.sort();
    edges
}

/// Where Graphviz's `dot` is, if it is installed.
fn graphviz() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("dot")).find(|p| p.is_file())
}

const GREEN: &str = "#2e7d32";
const ORANGE: &str = "#e65100";

#[test]
fn dot_of_saved_facts_links_the_processes_and_colours_each_decision() {
    let lines = [PIPELINE, &[PROFILER]].concat();
    let (_dir, rules, facts) = setup("picture-dot", &lines);
    let (code, dot, err) = run(&["check", "--rules", &rules, "--facts", &facts, "--format", "dot"]);
    assert_eq!((code, err.as_str()), (1, ""), "the profiler's fd is rejected\n{dot}");
    assert_eq!(
        edges(&dot),
        [
            format!("p10:0 -> p11:2 color=\"{ORANGE}\", dir=none, style=dashed"),
            format!("p10:1 -> p11:0 color=\"{GREEN}\""),
            format!("p11:1 -> o20:0 color=\"{GREEN}\""),
        ],
        "{dot}"
    );
    assert!(dot.starts_with("digraph crrules {\n  rankdir=LR;\n") && dot.ends_with("}\n"), "{dot}");
    for title in ["<b>10 (producer)</b>", "<b>11 (consumer)</b>", "<b>12 (profiler)</b>", "<b>20 (logger)</b>"] {
        assert!(dot.contains(title), "{title}\n{dot}");
    }
    assert!(dot.contains("label=\"outside the checkpoint\""), "{dot}");
    // The rejected fd has its row in red; the file the producer holds alone is counted, not shown.
    let rejected = dot.lines().find(|l| l.contains("<td port=\"i5\"")).expect("the perf_event row");
    assert!(rejected.contains("bgcolor=\"#f9d6d5\"") && rejected.contains(">reject</font>"), "{rejected}");
    assert!(dot.contains(">1 other fd: 1 reopen</font>"), "{dot}");
    // The FIFO's name: bytes escaped for people (`\xff`), then for Graphviz.
    assert!(dot.contains(">/tmp/&lt;q&gt;&#92;xff</td>"), "{dot}");
    assert!(dot.contains(">legend</b>"), "{dot}");
}

#[test]
fn dot_exits_0_when_nothing_is_rejected() {
    let (_dir, rules, facts) = setup("picture-clean", PIPELINE);
    let (code, dot, err) = run(&["check", "--rules", &rules, "--facts", &facts, "--format", "dot"]);
    assert_eq!((code, err.as_str()), (0, ""), "{dot}");
    assert_eq!(edges(&dot).len(), 3, "{dot}");
}

#[test]
fn svg_is_drawn_by_graphviz_when_it_is_installed() {
    let Some(dot) = graphviz() else {
        eprintln!("Graphviz is not installed (`apt install graphviz`): --format svg is not drawn");
        return;
    };
    let lines = [PIPELINE, &[PROFILER]].concat();
    let (_dir, rules, facts) = setup("picture-svg", &lines);
    let out = check(&rules, &facts, "svg", dot.parent().unwrap());
    let (svg, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Graphviz read the graph without a word of complaint (a bad port or label would be warned about).
    assert_eq!(err, "");
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
    for text in ["10 (producer)", "20 (logger)", "outside the checkpoint", "/tmp/&lt;q&gt;\\xff"] {
        assert!(svg.contains(text), "{text}\n{svg}");
    }
}

#[test]
fn svg_without_graphviz_says_what_to_install_and_what_works_without_it() {
    let (dir, rules, facts) = setup("picture-nodot", PIPELINE);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = check(&rules, &facts, "svg", &empty);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    for words in ["`--format svg` needs Graphviz's `dot` program", "apt install graphviz", "`--format dot`"] {
        assert!(err.contains(words), "{words}\n{err}");
    }
}

#[test]
fn svg_is_whatever_dot_on_path_makes_of_the_graph() {
    let (dir, rules, facts) = setup("picture-fake", PIPELINE);
    // A stand-in `dot` that keeps its arguments and passes the graph through, and one that fails.
    let bin = dir.path().join("bin");
    let args = dir.path().join("args");
    dir.write("bin/dot", &format!("#!/bin/sh\necho \"$@\" > '{}'\nexec /bin/cat\n", args.display()));
    dir.write("broken/dot", "#!/bin/sh\n/bin/cat > /dev/null\necho 'Error: syntax error in line 1' >&2\nexit 1\n");
    for script in ["bin/dot", "broken/dot"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join(script), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let (_, expected, _) = run(&["check", "--rules", &rules, "--facts", &facts, "--format", "dot"]);
    let out = check(&rules, &facts, "svg", &bin);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert_eq!(std::fs::read_to_string(&args).unwrap(), "-Tsvg\n");

    let out = check(&rules, &facts, "svg", &dir.path().join("broken"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Error: syntax error in line 1"), "dot's own words come first: {err}");
    assert!(err.contains("could not draw the graph") && err.contains("`--format dot`"), "{err}");
}
