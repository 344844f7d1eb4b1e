//! The honest floor of a scan as a whole process, for timing beside `crrules check` and `lsof` with
//! hyperfine: `scanfloor PID [THREADS]` makes only the syscalls a full scan makes (`readlinkat`, `fstatat`
//! and fdinfo `openat`/`read`/`close` per fd, see `benches/floor`) on 1 or 2 threads, and prints how many
//! bytes it read.

#[path = "../benches/floor/mod.rs"]
#[allow(dead_code, reason = "the duplicate's floor is the bench's alone")]
mod floor;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(pid), threads) = (args.first().and_then(|p| p.parse::<i32>().ok()), args.get(1)) else {
        eprintln!("usage: scanfloor PID [THREADS]");
        std::process::exit(2);
    };
    let threads: usize = threads.and_then(|t| t.parse().ok()).unwrap_or(1);
    let floor = floor::Floor::new(pid);
    let total = if threads <= 1 {
        floor.run_1thread()
    } else {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        pool.install(|| floor.run())
    };
    println!("{total}");
}
