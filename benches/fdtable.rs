//! Criterion: the fd-table backend on a process holding 10,000 fds of mixed kinds (`benches/holder`), as
//! whole commands, per fd (`Throughput::Elements`): `fdtable/dump` (`crrules dump --pid N --image DIR`: scan
//! every fact, decide with the default policy, capture, write and sync the image; the process is never
//! stopped) and `fdtable/restore` (`crrules restore --image DIR -- /bin/true`: verify the image, bring every
//! fd back at its number, exec). CRIU 4.2 cannot dump this process (it fails with "OOM storing pipe" on its
//! 2,000 pipes); the README compares both on 10,000 regular files.

use criterion::{BatchSize, Criterion, Throughput};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod holder;
use holder::{NFDS, spawn_holder};

fn crrules() -> &'static str {
    env!("CARGO_BIN_EXE_crrules")
}

fn dump(pid: i32, image: &Path) {
    let status = Command::new(crrules())
        .args(["dump", "--pid", &pid.to_string(), "--image"])
        .arg(image)
        .stderr(Stdio::null())
        .status()
        .expect("run crrules dump");
    assert!(status.success(), "crrules dump failed: {status}");
}

fn bench_fdtable(c: &mut Criterion) {
    let holder = spawn_holder(NFDS);
    let (pid, n) = (holder.pid, holder.nfds);
    let base = std::env::temp_dir().join(format!("crrules-bench-fdtable-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("bench dir");
    let image = base.join("image");
    let mut g = c.benchmark_group("fdtable");
    g.throughput(Throughput::Elements(n as u64)).sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("dump", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&image);
            },
            |()| dump(pid, &image),
            BatchSize::PerIteration,
        )
    });
    let _ = std::fs::remove_dir_all(&image);
    dump(pid, &image);
    g.bench_function("restore", |b| {
        b.iter(|| {
            let status = Command::new(crrules())
                .args(["restore", "--image"])
                .arg(&image)
                .args(["--", "/bin/true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run crrules restore");
            assert!(status.success(), "crrules restore failed: {status}");
        })
    });
    g.finish();
    drop(holder);
    let _ = std::fs::remove_dir_all(PathBuf::from(&base));
}

fn main() {
    if holder::hold_if_asked() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench_fdtable(&mut c);
    c.final_summary();
}
