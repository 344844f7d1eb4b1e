//! A process's fds, scanned in parallel and reported in fd order.
