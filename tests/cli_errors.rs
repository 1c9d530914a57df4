//! Every example as a user first meets it: a bad flag value is a usage
//! error (exit status 2, the first line of stderr says what is wrong), and
//! `--help` names the backend it will use when `--backend` is not given.

mod common;

use std::process::{Command, Output, Stdio};

use common::example_path;

/// Runs `name args` with no stdin and `REACTOR_BACKEND` as given.
fn run(name: &str, args: &[&str], env_backend: Option<&str>) -> Output {
    let mut command = Command::new(example_path(name));
    command
        .args(args)
        .stdin(Stdio::null())
        .env_remove("REACTOR_BACKEND");
    if let Some(backend) = env_backend {
        command.env("REACTOR_BACKEND", backend);
    }
    command.output().unwrap()
}

/// The examples that take `--addr`.
const WITH_ADDR: [&str; 10] = [
    "select_server",
    "poll_server",
    "epoll_server",
    "echo",
    "struct_recv",
    "epoll_chat",
    "prefork_echo",
    "struct_send",
    "chat_client",
    "http_server",
];

#[test]
fn a_bad_addr_is_a_usage_error_everywhere() {
    for name in WITH_ADDR {
        for bad in ["0.0.0.0:99999", "127.0.0.1", "127.0.0.1:port", ":8888"] {
            let out = run(name, &["--addr", bad], None);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} --addr {bad}: {stderr}");
            let first = stderr.lines().next().unwrap_or("");
            assert!(
                first.contains("--addr") && first.contains(bad),
                "{name} --addr {bad}: first line {first:?}"
            );
            assert!(out.stdout.is_empty(), "{name} --addr {bad}");
        }
    }
}

#[test]
fn other_bad_values_exit_2() {
    for (name, args) in [
        ("epoll_chat", &["--max-clients", "0"][..]),
        ("epoll_chat", &["--max-queue", "0"]),
        ("prefork_echo", &["--workers", "0"]),
        ("echo", &["--backend", "kqueue"]),
        ("unix_recv", &["--path", ""]),
    ] {
        let out = run(name, args, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn help_names_the_backend_it_will_use() {
    for (name, own) in [
        ("select_server", "select"),
        ("poll_server", "poll"),
        ("epoll_server", "epoll"),
        ("echo", "epoll"),
        ("unix_recv", "epoll"),
        ("struct_recv", "epoll"),
        ("epoll_chat", "epoll"),
        ("prefork_echo", "epoll"),
        ("chat_client", "epoll"),
        ("http_server", "epoll"),
    ] {
        let out = run(name, &["--help"], None);
        assert_eq!(out.status.code(), Some(0), "{name}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains(&format!("[default: {own}]")),
            "{name} --help does not say it uses {own}:\n{help}"
        );
        let out = run(name, &["--help"], Some("poll"));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("[default: poll, from REACTOR_BACKEND]"),
            "{name} --help with REACTOR_BACKEND=poll:\n{help}"
        );
    }
}
