//! End-to-end, `reopen path exact` through the fd-table backend: a restore holds the reopened path to the
//! very file dumped (the same `st_dev` and inode, and a regular file's size), where plain `reopen path`
//! holds it only to being a regular file still.
//!
//! Each test holds a 100-byte temp file open (`fdholder --open`, read-only and close-on-exec, so the restored
//! command does not keep it: what is checked is the restore, not the fd after the exec) and dumps that holder
//! twice, under `reopen path exact` and under plain `reopen path` (each policy closes every other fd). The
//! file is then changed, and each image restored into a command that creates a marker file: a refusal is
//! checked by what it says and by the marker that was never made, as in tests/fdtable.rs.

mod common;
mod scan_common;

use common::{TempDir, run};
use scan_common::{Holder, holder_path};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The file's size when it is dumped.
const SIZE: usize = 100;

/// A holder of `data.txt` in its own temp dir, dumped under both policies.
struct Dumped {
    tmp: TempDir,
    data: PathBuf,
    /// The fd the holder has `data.txt` at.
    fd: i32,
    /// The image under `reopen path exact`.
    exact: PathBuf,
    /// The image under plain `reopen path`.
    plain: PathBuf,
    _holder: Holder,
}

impl Dumped {
    fn new(tag: &str) -> Dumped {
        let tmp = TempDir::new(tag);
        let data = tmp.write("data.txt", &"x".repeat(SIZE));
        let log = std::fs::File::create(tmp.path().join("holder.log")).expect("holder.log");
        let args = [OsStr::new("--open"), data.as_os_str()];
        let holder = Holder::spawn_with(&holder_path(), &args, |c| {
            c.stderr(log);
        });
        let fd = holder.fd("open0");
        let [exact, plain] = ["exact", "plain"].map(|how| {
            let action = if how == "exact" { "reopen path exact" } else { "reopen path" };
            let rules =
                tmp.write(&format!("{how}.rules"), &format!("file path \"{}\" => {action}\nany => close\n", s(&data)));
            let image = tmp.path().join(format!("{how}-image"));
            let pid = holder.pid().to_string();
            let (code, out, err) = run(&["--rules", s(&rules), "dump", "--pid", &pid, "--image", s(&image)]);
            assert_eq!(code, 0, "the dump under `{action}` failed:\n{out}\n{err}");
            image
        });
        Dumped { tmp, data, fd, exact, plain, _holder: holder }
    }

    /// `crrules restore --image IMAGE -- sh -c 'touch MARKER'`: exit code, what it said, and whether the
    /// command ran (the marker is removed again).
    fn restore(&self, image: &Path) -> (i32, String, bool) {
        let marker = self.tmp.path().join("MARKER");
        let (code, out, err) =
            run(&["restore", "--image", s(image), "--", "sh", "-c", "touch \"$1\"", "sh", s(&marker)]);
        let ran = marker.exists();
        let _ = std::fs::remove_file(&marker);
        (code, format!("{out}{err}"), ran)
    }

    /// The image restores: exit 0 and the command ran.
    fn assert_restores(&self, image: &Path, after: &str) {
        let (code, said, ran) = self.restore(image);
        assert!(
            code == 0 && ran,
            "{} must restore {after} (exit {code}, command ran: {ran}):\n{said}",
            image.display()
        );
    }

    /// The image is refused: exit 2, the command never ran, and the error names the fd, the path and each of
    /// `words`.
    fn assert_refused(&self, image: &Path, words: &[&str]) -> String {
        let (code, said, ran) = self.restore(image);
        assert_eq!(code, 2, "the restore of {} must be refused with exit 2:\n{said}", image.display());
        assert!(!ran, "the refused restore ran its command anyway:\n{said}");
        let fd = format!("fd {} (file", self.fd);
        for word in [fd.as_str(), s(&self.data)].iter().chain(words) {
            assert!(said.contains(word), "the refusal must say `{word}`:\n{said}");
        }
        said
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// The manifest's entry for fd `fd` of `image`.
fn image_fd(image: &Path, fd: i32) -> Value {
    let text = std::fs::read_to_string(image.join("manifest.json")).expect("manifest.json");
    let manifest: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("manifest.json: {e}\n{text}"));
    let fds = manifest["fds"].as_array().expect("manifest fds");
    fds.iter().find(|f| f["fd"] == fd).unwrap_or_else(|| panic!("no fd {fd} in {text}")).clone()
}

#[test]
fn an_unchanged_file_restores_and_the_image_records_what_exact_compares() {
    let d = Dumped::new("exact-unchanged");
    let entry = image_fd(&d.exact, d.fd);
    assert_eq!(entry["decision"]["action"], "reopen", "{entry}");
    assert_eq!(entry["decision"]["exact"], true, "{entry}");
    let expect = &entry["restore"]["expect"];
    assert_eq!(expect["inode"], json!([entry["facts"]["st_dev"], entry["facts"]["ino"]]), "{entry}");
    assert_eq!(expect["size"], SIZE, "{entry}");
    assert_eq!(expect["file_type"], "regular", "{entry}");
    // Plain `reopen path` asks for neither, and its decision has no `exact`.
    let entry = image_fd(&d.plain, d.fd);
    assert_eq!(entry["decision"].get("exact"), None, "{entry}");
    let expect = &entry["restore"]["expect"];
    assert_eq!((expect.get("inode"), expect.get("size")), (None, None), "{entry}");

    d.assert_restores(&d.exact, "unchanged");
    d.assert_restores(&d.plain, "unchanged");
    // The bytes are not compared: the same file rewritten in place to the same size is still the same file.
    std::fs::write(&d.data, "y".repeat(SIZE)).expect("rewrite in place");
    d.assert_restores(&d.exact, "rewritten in place to the same size");
}

#[test]
fn a_file_that_grew_is_refused_naming_its_size() {
    let d = Dumped::new("exact-grew");
    let mut file = std::fs::OpenOptions::new().append(true).open(&d.data).expect("open for append");
    file.write_all(b"!").expect("append a byte");
    drop(file);
    let said = d.assert_refused(&d.exact, &[&format!("it is now {} bytes, not {SIZE}", SIZE + 1)]);
    assert!(!said.contains("another file"), "the file is the same inode:\n{said}");
    d.assert_restores(&d.plain, "after the file grew (plain `reopen path` asks only for a regular file)");
}

#[test]
fn another_file_of_the_same_size_is_refused_naming_the_inode() {
    let d = Dumped::new("exact-replaced");
    let before = std::fs::metadata(&d.data).expect("stat").ino();
    let new = d.tmp.write("data.txt.new", &"x".repeat(SIZE));
    std::fs::rename(&new, &d.data).expect("rename over");
    let after = std::fs::metadata(&d.data).expect("stat").ino();
    assert_ne!(before, after, "the rename must put another inode at the path");
    let said = d.assert_refused(&d.exact, &["another file", &format!("inode {after}"), &format!("inode {before}")]);
    assert!(!said.contains("bytes, not"), "the sizes are the same:\n{said}");
    d.assert_restores(&d.plain, "after the file was replaced (plain `reopen path` asks only for a regular file)");
}
