//! The C peers (`benches/peers/*.c`: libev 4.33 and libevent 2.1.12),
//! behind one table of entry points per library. `build.rs` compiles a
//! peer only where its Debian package is installed; [`c_peers`] lists the
//! ones this build has, so every benchmark loops over what exists and says
//! which were skipped.

use std::ffi::{c_int, c_void};
use std::os::fd::RawFd;

/// The entry points one C library exports (see the `.c` files).
pub struct CPeer {
    /// `libev` or `libevent`.
    pub name: &'static str,
    b1_new: unsafe extern "C" fn(usize) -> *mut c_void,
    b1_setup: unsafe extern "C" fn(*mut c_void, *const c_int),
    b1_teardown: unsafe extern "C" fn(*mut c_void),
    b1_run: unsafe extern "C" fn(*mut c_void, *const c_int, usize, usize) -> usize,
    b1_free: unsafe extern "C" fn(*mut c_void),
    echo: unsafe extern "C" fn(c_int) -> c_int,
    b5_new: unsafe extern "C" fn(*const f64, usize) -> *mut c_void,
    b5_insert: unsafe extern "C" fn(*mut c_void) -> i64,
    b5_cancel: unsafe extern "C" fn(*mut c_void) -> i64,
    b5_expire: unsafe extern "C" fn(*mut c_void) -> i64,
    b5_free: unsafe extern "C" fn(*mut c_void),
    b8_new: unsafe extern "C" fn(c_int, usize) -> *mut c_void,
    b8_iter: unsafe extern "C" fn(*mut c_void, usize),
    b8_free: unsafe extern "C" fn(*mut c_void),
    /// Bytes of the library's own per-descriptor object (`ev_io`,
    /// `struct event`).
    pub watcher_size: unsafe extern "C" fn() -> usize,
}

/// Declares one library's symbols and builds its [`CPeer`].
macro_rules! c_peer {
    ($cfg:ident, $module:ident, $name:literal, $size:ident) => {
        #[cfg($cfg)]
        mod $module {
            use super::*;
            unsafe extern "C" {
                #[link_name = concat!("reactor_bench_", $name, "_b1_new")]
                fn b1_new(n: usize) -> *mut c_void;
                #[link_name = concat!("reactor_bench_", $name, "_b1_setup")]
                fn b1_setup(ctx: *mut c_void, readers: *const c_int);
                #[link_name = concat!("reactor_bench_", $name, "_b1_teardown")]
                fn b1_teardown(ctx: *mut c_void);
                #[link_name = concat!("reactor_bench_", $name, "_b1_run")]
                fn b1_run(
                    ctx: *mut c_void,
                    writers: *const c_int,
                    fired: usize,
                    writes: usize,
                ) -> usize;
                #[link_name = concat!("reactor_bench_", $name, "_b1_free")]
                fn b1_free(ctx: *mut c_void);
                #[link_name = concat!("reactor_bench_", $name, "_echo")]
                fn echo(listen_fd: c_int) -> c_int;
                #[link_name = concat!("reactor_bench_", $name, "_b5_new")]
                fn b5_new(after: *const f64, n: usize) -> *mut c_void;
                #[link_name = concat!("reactor_bench_", $name, "_b5_insert")]
                fn b5_insert(ctx: *mut c_void) -> i64;
                #[link_name = concat!("reactor_bench_", $name, "_b5_cancel")]
                fn b5_cancel(ctx: *mut c_void) -> i64;
                #[link_name = concat!("reactor_bench_", $name, "_b5_expire")]
                fn b5_expire(ctx: *mut c_void) -> i64;
                #[link_name = concat!("reactor_bench_", $name, "_b5_free")]
                fn b5_free(ctx: *mut c_void);
                #[link_name = concat!("reactor_bench_", $name, "_b8_new")]
                fn b8_new(fd: c_int, timers: usize) -> *mut c_void;
                #[link_name = concat!("reactor_bench_", $name, "_b8_iter")]
                fn b8_iter(ctx: *mut c_void, iters: usize);
                #[link_name = concat!("reactor_bench_", $name, "_b8_free")]
                fn b8_free(ctx: *mut c_void);
                #[link_name = concat!("reactor_bench_", $name, "_", stringify!($size))]
                fn watcher_size() -> usize;
            }
            pub static PEER: CPeer = CPeer {
                name: $name,
                b1_new,
                b1_setup,
                b1_teardown,
                b1_run,
                b1_free,
                echo,
                b5_new,
                b5_insert,
                b5_cancel,
                b5_expire,
                b5_free,
                b8_new,
                b8_iter,
                b8_free,
                watcher_size,
            };
        }
    };
}

c_peer!(have_libev, libev, "libev", io_size);
c_peer!(have_libevent, libevent, "libevent", event_size);

/// The C peers this build has.
pub fn c_peers() -> Vec<&'static CPeer> {
    [
        #[cfg(have_libev)]
        &libev::PEER,
        #[cfg(have_libevent)]
        &libevent::PEER,
    ]
    .into_iter()
    .collect()
}

/// The C peer called `name`, if this build has it.
pub fn c_peer(name: &str) -> Option<&'static CPeer> {
    c_peers().into_iter().find(|p| p.name == name)
}

/// One line naming the C peers this build lacks, for every report.
pub fn skipped_note() -> Option<String> {
    let have: Vec<&str> = c_peers().iter().map(|p| p.name).collect();
    let missing: Vec<&str> = [("libev", "libev-dev"), ("libevent", "libevent-dev")]
        .iter()
        .filter(|(name, _)| !have.contains(name))
        .map(|(_, package)| *package)
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "note: built without {} (not installed): those peers are skipped",
            missing.join(", ")
        )
    })
}

/// B1 in a C library: one loop, N watchers.
pub struct B1 {
    peer: &'static CPeer,
    ctx: *mut c_void,
}

impl B1 {
    pub fn new(peer: &'static CPeer, n: usize) -> B1 {
        // SAFETY: b1_new only allocates; a null return is checked.
        let ctx = unsafe { (peer.b1_new)(n) };
        assert!(!ctx.is_null(), "{}: b1_new failed", peer.name);
        B1 { peer, ctx }
    }

    /// Watches `readers` (exactly the N given to `new`).
    pub fn setup(&mut self, readers: &[RawFd]) {
        // SAFETY: `readers` holds the N fds the context was made for; the C
        // side copies each into its watcher before returning.
        unsafe { (self.peer.b1_setup)(self.ctx, readers.as_ptr()) }
    }

    pub fn teardown(&mut self) {
        // SAFETY: `ctx` is live; stops the watchers setup started.
        unsafe { (self.peer.b1_teardown)(self.ctx) }
    }

    /// Runs a started chain to its end; returns the bytes read.
    pub fn run(&mut self, writers: &[RawFd], fired: usize, writes: usize) -> usize {
        // SAFETY: `writers` (N fds) outlives the call, which only reads it.
        unsafe { (self.peer.b1_run)(self.ctx, writers.as_ptr(), fired, writes) }
    }
}

impl Drop for B1 {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from b1_new and is freed once.
        unsafe { (self.peer.b1_free)(self.ctx) }
    }
}

/// Serves echo on `listen_fd` until the process is killed.
pub fn echo(peer: &'static CPeer, listen_fd: RawFd) -> Result<(), String> {
    // SAFETY: the C server only uses the descriptor it is given.
    match unsafe { (peer.echo)(listen_fd) } {
        0 => Ok(()),
        _ => Err(format!("{}: could not create its loop", peer.name)),
    }
}

/// B5 in a C library: N timers with the given timeouts (seconds).
pub struct B5 {
    peer: &'static CPeer,
    ctx: *mut c_void,
    _after: Vec<f64>,
}

impl B5 {
    pub fn new(peer: &'static CPeer, after: Vec<f64>) -> B5 {
        // SAFETY: the C side keeps `after`'s pointer (libev) or copies it
        // (libevent); the Vec lives as long as the context.
        let ctx = unsafe { (peer.b5_new)(after.as_ptr(), after.len()) };
        assert!(!ctx.is_null(), "{}: b5_new failed", peer.name);
        B5 {
            peer,
            ctx,
            _after: after,
        }
    }

    /// Starts every timer; the nanoseconds it took.
    pub fn insert(&mut self) -> u64 {
        // SAFETY: `ctx` is live.
        unsafe { (self.peer.b5_insert)(self.ctx) }.max(0) as u64
    }

    /// Stops every timer; the nanoseconds it took.
    pub fn cancel(&mut self) -> u64 {
        // SAFETY: `ctx` is live.
        unsafe { (self.peer.b5_cancel)(self.ctx) }.max(0) as u64
    }

    /// Starts every timer due now (untimed) and times the loop pass that
    /// fires them; `None` if any did not fire.
    pub fn expire(&mut self) -> Option<u64> {
        // SAFETY: `ctx` is live.
        let ns = unsafe { (self.peer.b5_expire)(self.ctx) };
        (ns >= 0).then_some(ns as u64)
    }
}

impl Drop for B5 {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from b5_new and is freed once.
        unsafe { (self.peer.b5_free)(self.ctx) }
    }
}

/// B8 in a C library: one never-ready descriptor, `timers` armed timers.
pub struct B8 {
    peer: &'static CPeer,
    ctx: *mut c_void,
}

impl B8 {
    pub fn new(peer: &'static CPeer, fd: RawFd, timers: usize) -> B8 {
        // SAFETY: the C side watches `fd`, which the caller keeps open.
        let ctx = unsafe { (peer.b8_new)(fd, timers) };
        assert!(!ctx.is_null(), "{}: b8_new failed", peer.name);
        B8 { peer, ctx }
    }

    /// `iters` non-blocking loop turns.
    pub fn iter(&mut self, iters: usize) {
        // SAFETY: `ctx` is live.
        unsafe { (self.peer.b8_iter)(self.ctx, iters) }
    }
}

impl Drop for B8 {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from b8_new and is freed once.
        unsafe { (self.peer.b8_free)(self.ctx) }
    }
}
