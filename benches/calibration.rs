//! B0 — calibration: what the machine's system calls cost, the denominators
//! every other benchmark is read against (docs/benchmarks.md, "B0: calibration").
//!
//! - `b0_syscall`: a null system call (`syscall(SYS_getppid)`), and a 1-byte
//!   `write` + `read` on a socketpair.
//! - `b0_epoll_wait0`: `epoll_wait(timeout 0)` with nothing ready and 1 or
//!   10 000 idle registrations (eventfds, one descriptor each).
//! - `b0_wait_per_fd`: one wait with timeout 0 over n idle socketpair ends,
//!   n = 1, 10, 100, 1000, raw (`raw_poll`, `raw_select`, `raw_epoll`) and
//!   through our `Poller` (`ours_poll`, …) — the slope per idle fd of ours
//!   against the raw call's is one of issue 6's targets. select runs only
//!   while every fd is below FD_SETSIZE (1024).
//!
//! Run: `cargo bench --bench calibration` (or `benches/run.sh`).

use reactor_bench as common;

use std::hint::black_box;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use reactor::poller::epoll::EpollPoller;
use reactor::poller::poll::PollPoller;
use reactor::poller::select::SelectPoller;
use reactor::{Events, Interest, Poller, Trigger};

const SIZES: [usize; 4] = [1, 10, 100, 1000];

fn syscalls(c: &mut Criterion) {
    eprintln!("{}", common::env_header());
    let mut g = c.benchmark_group("b0_syscall");
    g.bench_function("null_getppid", |b| {
        // SAFETY: getppid takes no arguments and cannot fail.
        b.iter(|| black_box(unsafe { libc::syscall(libc::SYS_getppid) }))
    });
    let (a, z) = common::socketpair();
    g.bench_function("socketpair_write_read_1byte", |b| {
        b.iter(|| {
            common::write_byte(a.as_raw_fd());
            black_box(common::read_some(z.as_raw_fd()))
        })
    });
    g.finish();
}

fn epoll_wait0(c: &mut Criterion) {
    let mut g = c.benchmark_group("b0_epoll_wait0");
    for idle in [1usize, 10_000] {
        if !common::fds_available(idle as u64, &format!("epoll_wait0/{idle}")) {
            continue;
        }
        let ep = common::epoll_create();
        let fds: Vec<OwnedFd> = (0..idle).map(|_| common::eventfd()).collect();
        for (i, fd) in fds.iter().enumerate() {
            common::epoll_ctl(
                &ep,
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                libc::EPOLLIN as u32,
                i as u64,
            );
        }
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        g.bench_with_input(BenchmarkId::new("idle_eventfds", idle), &idle, |b, _| {
            b.iter(|| {
                // SAFETY: `evs` has room for 64 events.
                black_box(unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), 64, 0) })
            })
        });
    }
    g.finish();
}

fn raw_select(template: &libc::fd_set, nfds: i32) -> i32 {
    let mut set = *template;
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: `set` and `tv` are valid for the call; every fd is < FD_SETSIZE.
    unsafe {
        libc::select(
            nfds,
            &mut set,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut tv,
        )
    }
}

fn wait_per_fd(c: &mut Criterion) {
    let mut g = c.benchmark_group("b0_wait_per_fd");
    for n in SIZES {
        if !common::fds_available(2 * n as u64 + 8, &format!("wait_per_fd/{n}")) {
            continue;
        }
        let pairs = common::socketpairs(n);
        let idle: Vec<RawFd> = pairs.iter().map(|(a, _)| a.as_raw_fd()).collect();
        let max_fd = idle.iter().copied().max().unwrap_or(0);

        // raw poll(2): a persistent pollfd array, as any sane loop keeps it.
        let mut pfds: Vec<libc::pollfd> = idle
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("raw_poll", n), &n, |b, _| {
            b.iter(|| {
                // SAFETY: `pfds` holds `len` valid pollfds.
                black_box(unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as _, 0) })
            })
        });

        // raw select(2): copy the interest set (the kernel overwrites it).
        if max_fd < libc::FD_SETSIZE as RawFd {
            // SAFETY: a zeroed fd_set is empty; FD_SET writes inside it for fd < FD_SETSIZE.
            let template = unsafe {
                let mut set: libc::fd_set = std::mem::zeroed();
                for &fd in &idle {
                    libc::FD_SET(fd, &mut set);
                }
                set
            };
            g.bench_with_input(BenchmarkId::new("raw_select", n), &n, |b, _| {
                b.iter(|| black_box(raw_select(&template, max_fd + 1)))
            });
        } else {
            eprintln!("skipping raw_select/{n}: fd {max_fd} ≥ FD_SETSIZE");
        }

        // raw epoll_wait over the same idle fds.
        let ep = common::epoll_create();
        for (i, &fd) in idle.iter().enumerate() {
            common::epoll_ctl(&ep, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, i as u64);
        }
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        g.bench_with_input(BenchmarkId::new("raw_epoll", n), &n, |b, _| {
            b.iter(|| {
                // SAFETY: `evs` has room for 64 events.
                black_box(unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), 64, 0) })
            })
        });
        drop(ep);

        // Ours, through the Poller trait.
        ours(&mut g, "ours_poll", n, &idle, PollPoller::new());
        if max_fd < libc::FD_SETSIZE as RawFd {
            ours(&mut g, "ours_select", n, &idle, SelectPoller::new());
        }
        ours(&mut g, "ours_epoll", n, &idle, EpollPoller::new().unwrap());
    }
    g.finish();
}

fn ours<P: Poller>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    n: usize,
    idle: &[RawFd],
    mut poller: P,
) {
    for (i, &fd) in idle.iter().enumerate() {
        poller
            .register(fd, i, Interest::READABLE, Trigger::Level)
            .unwrap();
    }
    let mut events = Events::with_capacity(64);
    g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
        b.iter(|| black_box(poller.poll(&mut events, Some(Duration::ZERO)).unwrap()))
    });
}

criterion_group!(benches, syscalls, epoll_wait0, wait_per_fd);
criterion_main!(benches);
