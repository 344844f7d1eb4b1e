//! Work cut into consecutive chunks, run on scoped threads (one per core), results kept in order: how a
//! large file is compiled and a large rule set analysed.

use std::ops::Range;

/// `f` of consecutive chunks of `0..n`, in order. Below `2 * per_thread` items, or on one core, that is
/// one chunk done on the calling thread; otherwise one chunk per core (at most `n / per_thread` chunks),
/// the calling thread doing the first after handing out the others. A chunk whose thread cannot be
/// started is done on the calling thread; a panic in a chunk is resumed there.
pub(crate) fn chunked<R: Send>(n: usize, per_thread: usize, f: impl Fn(Range<usize>) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = cores.min(n / per_thread).max(1);
    if threads == 1 {
        return vec![f(0..n)];
    }
    let chunk = n.div_ceil(threads);
    let mut chunks = (0..n).step_by(chunk).map(|start| start..(start + chunk).min(n));
    let first = chunks.next().unwrap_or(0..0);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .map(|range| {
                let work = range.clone();
                // Out of threads: that chunk is done here instead.
                std::thread::Builder::new().spawn_scoped(scope, move || f(work)).map_err(|_| range)
            })
            .collect();
        let mut out = Vec::with_capacity(handles.len() + 1);
        out.push(f(first));
        for handle in handles {
            out.push(match handle {
                Ok(h) => h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(range) => f(range),
            });
        }
        out
    })
}

/// `f` of each index below `n`, in order, computed by [`chunked`].
pub(crate) fn map<T: Send>(n: usize, per_thread: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let mut parts = chunked(n, per_thread, |range| range.map(&f).collect::<Vec<T>>()).into_iter();
    let mut out = parts.next().unwrap_or_default();
    for part in parts {
        out.extend(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range_in_order() {
        for n in [0, 1, 7, 8, 9, 100, 1000] {
            let parts = chunked(n, 4, |range| range);
            let flat: Vec<usize> = parts.iter().flat_map(Clone::clone).collect();
            assert_eq!(flat, (0..n).collect::<Vec<_>>(), "n = {n}");
            assert!(parts.iter().all(|r| !r.is_empty()) || n == 0, "{parts:?}");
            assert_eq!(map(n, 4, |i| i * 2), (0..n).map(|i| i * 2).collect::<Vec<_>>());
        }
    }
}
