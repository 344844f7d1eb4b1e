//! Standard output that a reader may stop reading. `crrules check --pid N | head -1` closes the pipe after
//! one line: every later write is dropped quietly, so the command still ends its work and exits with the
//! status it would have had, instead of failing with "Broken pipe". Output written with `println!` (which
//! panics on a closed pipe) is caught in `main` by [`is_closed_pipe_panic`], as a last resort.

use std::any::Any;
use std::io::{self, Write};

/// A writer whose reader may go away: once a write finds the pipe closed (`EPIPE`), that write and every
/// later one succeed without writing anything. Any other error is passed on.
#[derive(Debug)]
pub struct Closable<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> Closable<W> {
    pub fn new(inner: W) -> Closable<W> {
        Closable { inner, closed: false }
    }

    /// `result`, unless it is the reader gone: then the writer is closed and `gone` stands in.
    fn unless_gone<T>(&mut self, result: io::Result<T>, gone: T) -> io::Result<T> {
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(gone)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for Closable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let result = self.inner.write(buf);
        self.unless_gone(result, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.inner.flush();
        self.unless_gone(result, ())
    }
}

/// Standard output as every command writes it: locked, through one 64 KiB buffer (standard output's own is
/// line-buffered and small: a 10,000-fd JSON line would be written a kilobyte at a time), and closable.
pub type Stdout = io::BufWriter<Closable<io::StdoutLock<'static>>>;

/// [`Stdout`], for one command's whole output.
pub fn stdout() -> Stdout {
    io::BufWriter::with_capacity(1 << 16, Closable::new(io::stdout().lock()))
}

/// Writes `bytes` (a page made whole in memory first: the man page, a completion script) to standard
/// output.
pub fn print_all(bytes: &[u8]) -> io::Result<()> {
    let mut out = stdout();
    out.write_all(bytes)?;
    out.flush()
}

/// `errno` for a closed pipe on Linux, as `std::io::Error`'s text ends with it: `(os error 32)`.
const EPIPE: i32 = 32;

/// True when a panic is the standard library's `print!` family failing on a closed standard output or
/// error (`failed printing to stdout: Broken pipe (os error 32)`): the reader left, which is no failure.
pub fn is_closed_pipe_panic(payload: &(dyn Any + Send)) -> bool {
    let text = match payload.downcast_ref::<String>() {
        Some(text) => text.as_str(),
        None => match payload.downcast_ref::<&str>() {
            Some(text) => text,
            None => return false,
        },
    };
    text.starts_with("failed printing to std") && text.ends_with(&format!("(os error {EPIPE})"))
}

/// Leaves the panic message out for [`is_closed_pipe_panic`] panics; every other panic is reported as
/// before.
pub fn quiet_closed_pipe_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_closed_pipe_panic(info.payload()) {
            report(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then says the pipe is closed.
    struct Pipe {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.taken.len() >= self.room {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            let n = buf.len().min(self.room - self.taken.len());
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_after_the_reader_left_are_dropped() {
        let mut out = Closable::new(Pipe { taken: Vec::new(), room: 4 });
        out.write_all(b"one\ntwo\n").unwrap();
        assert!(out.closed);
        writeln!(out, "three").unwrap();
        out.flush().unwrap();
        assert_eq!(out.inner.taken, b"one\n");
    }

    #[test]
    fn other_errors_are_passed_on() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::StorageFull))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = Closable::new(Full);
        assert_eq!(out.write_all(b"x").unwrap_err().kind(), io::ErrorKind::StorageFull);
        assert!(!out.closed);
    }

    #[test]
    fn the_print_panic_of_a_closed_pipe_is_recognised() {
        let closed = String::from("failed printing to stdout: Broken pipe (os error 32)");
        assert!(is_closed_pipe_panic(&closed));
        assert!(is_closed_pipe_panic(&"failed printing to stderr: Broken pipe (os error 32)"));
        let full = String::from("failed printing to stdout: No space left on device (os error 28)");
        assert!(!is_closed_pipe_panic(&full));
        assert!(!is_closed_pipe_panic(&"index out of bounds"));
        assert!(!is_closed_pipe_panic(&42));
    }
}
