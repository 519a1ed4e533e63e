//! SIGTERM and SIGINT as an async stream, without a dependency: the
//! handler writes the signal's number to a socket pair (a write is
//! async-signal-safe), and the runtime reads the other end.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicI32, Ordering};
use tokio::io::AsyncReadExt;

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const SIG_ERR: usize = usize::MAX;

extern "C" {
    // glibc's signal(2) installs a handler with BSD semantics: it stays
    // installed, and interrupted system calls are restarted.
    fn signal(signum: c_int, handler: usize) -> usize;
    fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
    fn __errno_location() -> *mut c_int;
}

/// The write end of the pair, for the handler (-1: none yet).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signum: c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let byte = signum as u8;
    // SAFETY: write(2) and errno are async-signal-safe; the buffer is a
    // local byte; errno is put back as the interrupted code left it.
    unsafe {
        let errno = __errno_location();
        let saved = *errno;
        let _ = write(fd, (&byte as *const u8).cast(), 1);
        *errno = saved;
    }
}

/// SIGTERM and SIGINT, once [`install`]ed.
pub struct Signals {
    rx: tokio::net::UnixStream,
    // Kept open: the handler writes to it.
    _tx: std::os::unix::net::UnixStream,
}

/// Catches SIGTERM and SIGINT from now on (inside a tokio runtime).
pub fn install() -> io::Result<Signals> {
    let (tx, rx) = std::os::unix::net::UnixStream::pair()?;
    // A full buffer drops a signal rather than blocking the handler.
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    let rx = tokio::net::UnixStream::from_std(rx)?;
    WRITE_FD.store(tx.as_raw_fd(), Ordering::Relaxed);
    for sig in [SIGINT, SIGTERM] {
        // SAFETY: on_signal only does async-signal-safe things.
        let old = unsafe { signal(sig, on_signal as extern "C" fn(c_int) as usize) };
        if old == SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(Signals { rx, _tx: tx })
}

impl Signals {
    /// The next signal's name (`SIGTERM`, `SIGINT`).
    pub async fn next(&mut self) -> &'static str {
        let mut b = [0u8; 1];
        loop {
            match self.rx.read(&mut b).await {
                Ok(1) if c_int::from(b[0]) == SIGINT => return "SIGINT",
                Ok(1) => return "SIGTERM",
                // The pair cannot close while both ends are held here;
                // should reading fail anyway, no signal comes this way.
                _ => std::future::pending::<()>().await,
            }
        }
    }
}
