//! A kernel without io_uring, faked: `strace -e inject=io_uring_setup:error=…`
//! makes the system call fail as a kernel built without it (`ENOSYS`) or one
//! that forbids it (`EPERM`: `kernel.io_uring_disabled`, a seccomp filter)
//! would. The uring backend must then fail with the typed error that says
//! why and names epoll, and the other backends must carry on.
//!
//! Harness-free, so that a missing `strace` is counted as skipped (not as
//! passed) in the closing `N passed, M failed, K skipped` line. The test
//! binary runs itself under strace as the probe (`uring_unavailable probe`).

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::runner::Runner;
use common::{example_path, require_program};
use reactor::{Backend, Error, Poller, Reactor, UringPoller};

/// Run under strace: builds the uring backend both ways a program does and
/// prints what each gave, one line each; then checks epoll still works.
fn probe() {
    match UringPoller::new() {
        Ok(_) => println!("new: Ok"),
        Err(err @ Error::Unavailable { .. }) => println!("new: Unavailable: {err}"),
        Err(other) => println!("new: other error: {other:?}"),
    }
    match Reactor::<()>::with_backend(Backend::Uring) {
        Ok(_) => println!("reactor: Ok"),
        Err(err) => println!("reactor: {err}"),
    }
    let epoll = Backend::Epoll.new_poller().map(|p| p.name());
    println!("epoll: {epoll:?}");
}

/// Runs `program args…` under strace with io_uring_setup failing with `errno`.
fn under_strace(errno: &str, program: &std::path::Path, args: &[&str]) -> Output {
    Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("inject=io_uring_setup:error={errno}"))
        .arg(program)
        .args(args)
        .env_remove("REACTOR_BACKEND")
        .output()
        .expect("run strace")
}

/// The library's own answer: `Error::Unavailable`, saying why and naming epoll.
fn the_library_returns_unavailable_naming_epoll(errno: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = under_strace(errno, &exe, &["probe"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("    {errno}: {}", stdout.trim().replace('\n', " | "));
    let new = stdout.lines().find(|l| l.starts_with("new: ")).unwrap();
    assert!(new.starts_with("new: Unavailable: "), "{stdout}");
    for needed in [
        "uring backend is unavailable",
        "io_uring_setup",
        errno,
        "use the epoll backend",
    ] {
        assert!(new.contains(needed), "{needed:?} missing from {new:?}");
    }
    assert!(
        stdout.contains("reactor: the uring backend is unavailable"),
        "{stdout}"
    );
    assert!(stdout.contains("epoll: Ok(\"epoll\")"), "{stdout}");
}

/// What a user sees: the echo example asked for `--backend uring` exits
/// with the message; asked for epoll under the same fault, it serves.
fn the_echo_example_explains_and_epoll_still_serves(errno: &str) {
    let echo = example_path("echo");
    let out = under_strace(
        errno,
        &echo,
        &["--backend", "uring", "--addr", "127.0.0.1:0"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("    {errno}: {}", stderr.trim());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("uring backend is unavailable") && stderr.contains("epoll"),
        "{stderr}"
    );
    let mut server = common::Example::start_wrapped(
        &[
            "strace",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            &format!("inject=io_uring_setup:error={errno}"),
        ],
        "echo",
        &["--backend", "epoll", "--addr", "127.0.0.1:0"],
    );
    let mut client = std::net::TcpStream::connect(server.addr()).unwrap();
    client.set_read_timeout(Some(common::SOON)).unwrap();
    use std::io::{Read, Write};
    client.write_all(b"still here\n").unwrap();
    let mut echo = [0; 11];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"still here\n");
    drop(client);
    // The echo server is strace's only child; stopping it stops strace.
    let children = common::children(server.pid());
    assert_eq!(children.len(), 1, "strace's children: {children:?}");
    // SAFETY: kill only sends a signal to the traced echo server.
    assert_eq!(unsafe { libc::kill(children[0].0, libc::SIGTERM) }, 0);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("probe") {
        return probe();
    }
    let mut runner = Runner::from_args();
    for errno in ["ENOSYS", "EPERM"] {
        let suffix = errno.to_lowercase();
        runner.test(
            &format!("the_library_returns_unavailable_naming_epoll::{suffix}"),
            || {
                require_program("strace");
                the_library_returns_unavailable_naming_epoll(errno);
            },
        );
        runner.test(
            &format!("the_echo_example_explains_and_epoll_still_serves::{suffix}"),
            || {
                require_program("strace");
                the_echo_example_explains_and_epoll_still_serves(errno);
            },
        );
    }
    runner.finish()
}
