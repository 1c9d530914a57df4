//! The guide cannot rot: every command it names is run here against the
//! real example binaries.
//!
//! The rule (stated for writers in `docs/README.md`): in `docs/README.md`
//! and the chapters `docs/NN-*.md`, every fenced block tagged `sh` is one
//! *session*, and each non-comment line in it is a command, either
//! `[VAR=value …] cargo run [--release] --example NAME [-- ARGS…]` or
//! `[VAR=value …] python3 ARGS…`. Anything else in an `sh` block fails the
//! test (put other shell text in a `text` block). A session runs like this:
//!
//! 1. Every *server* in it (see [`role`]) starts with its address swapped for
//!    `--addr 127.0.0.1:0` (or its `--path` for a fresh temporary path) and
//!    must print its `listening on` line; it is then exercised by a small
//!    client of its own kind ([`exercise`]). A session that names only a
//!    client gets that client's server started for it.
//! 2. Every other line runs in order and must exit 0 within a deadline:
//!    *clients* get the running server's `--addr`/`--path`; `python3` lines
//!    get `8888` replaced by the server's port and `./sock_file` by its path;
//!    *programs* (such as `triggers`) just run.
//! 3. The servers get SIGINT and must exit 0.
//!
//! A fenced block tagged `output` right after a session of one program is
//! that program's exact standard output, and is compared.
//!
//! So a command naming a missing example, or a flag an example rejects
//! (clap's exit status 2), fails this test. Without python3 the test is
//! skipped (a `harness = false` binary run by the shared runner of
//! tests/common/runner.rs, which counts it as skipped).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::runner::Runner;
use common::{Example, example_path};
use reactor::Backend;

fn main() {
    let mut runner = Runner::from_args();
    runner.test("shell_words_split_like_sh", shell_words_split_like_sh);
    runner.test(
        "every_command_in_the_guide_runs",
        every_command_in_the_guide_runs,
    );
    runner.test(
        "the_table_of_contents_links_every_chapter",
        the_table_of_contents_links_every_chapter,
    );
    runner.per_backend("triggers_shows_each_trigger", triggers_shows_each_trigger);
    runner.test(
        "every_picture_is_shown_and_has_its_source",
        every_picture_is_shown_and_has_its_source,
    );
    runner.test(
        "the_timeline_data_is_what_triggers_emits_today",
        the_timeline_data_is_what_triggers_emits_today,
    );
    runner.finish()
}

/// How long a client, program or python line may run.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// What an example is, for the purpose of running it from the guide.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    /// Listens on `--addr`; exercised with [`exercise`].
    TcpServer,
    /// Listens on `--path`; exercised with [`exercise`].
    UnixServer,
    /// Talks to the named server; fed this text on stdin, must exit 0.
    Client {
        server: &'static str,
        stdin: &'static str,
    },
    /// Runs to completion on its own and exits 0.
    Program,
}

/// Every example the guide may name, and how to run it. An example missing
/// here fails the test with a request to add it.
fn role(name: &str) -> Role {
    match name {
        "select_server" | "poll_server" | "epoll_server" | "echo" | "prefork_echo"
        | "struct_recv" | "epoll_chat" | "http_server" => Role::TcpServer,
        "unix_recv" => Role::UnixServer,
        "unix_send" => Role::Client {
            server: "unix_recv",
            stdin: "hello from the guide\n",
        },
        "struct_send" => Role::Client {
            server: "struct_recv",
            stdin: "",
        },
        "chat_client" => Role::Client {
            server: "epoll_chat",
            stdin: "guide_reader\nhello from the guide\n/quit\n",
        },
        "triggers" | "pitfalls" => Role::Program,
        other => panic!(
            "the guide names example {other:?}, which tests/guide.rs does not know: add it to `role`"
        ),
    }
}

/// Talks to a freshly started server the way its chapter describes, and
/// fails if it does not answer as its chapter says.
fn exercise(name: &str, server: &Example, path: &Path) {
    match name {
        "select_server" | "poll_server" | "epoll_server" => {
            let mut s = connect(server);
            s.write_all(b"hello from the guide").unwrap();
            expect_bytes(&mut s, "收到了".as_bytes());
            server.expect_line("Receive: …", |l| {
                l.starts_with("Receive: hello from the guide")
            });
        }
        "echo" | "prefork_echo" => {
            let mut s = connect(server);
            s.write_all(b"echo me\n").unwrap();
            expect_bytes(&mut s, b"echo me\n");
        }
        "struct_recv" => {
            // Python: struct.Struct('i5sf').pack(1, b'zhang', 1.75), sent in
            // two pieces so the server must reassemble the record.
            let mut record = Vec::new();
            record.extend_from_slice(&1i32.to_ne_bytes());
            record.extend_from_slice(b"zhang\0\0\0");
            record.extend_from_slice(&1.75f32.to_ne_bytes());
            let mut s = connect(server);
            s.write_all(&record[..6]).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(&record[6..]).unwrap();
            drop(s);
            server.expect_line("(1, b'zhang', 1.75)", |l| l.contains("(1, b'zhang', 1.75)"));
        }
        "epoll_chat" => {
            let s = connect(server);
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let prompt = read_line(&mut reader);
            assert!(prompt.starts_with("* "), "epoll_chat greeting {prompt:?}");
            (&s).write_all(b"guide_visitor\n").unwrap();
            let welcome = read_line(&mut reader);
            assert!(
                welcome.starts_with("* welcome guide_visitor"),
                "epoll_chat answered {welcome:?}"
            );
        }
        "http_server" => {
            let mut s = connect(server);
            s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: guide\r\n\r\n")
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"\r\n\r\nhello\n") {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let text = String::from_utf8_lossy(&got);
            assert!(
                text.starts_with("HTTP/1.1 200 OK\r\n"),
                "http_server answered {text:?}"
            );
            assert!(
                text.ends_with("\r\n\r\nhello\n"),
                "http_server answered {text:?}"
            );
            server.expect_line("the access-log line", |l| {
                l.ends_with("\"GET /hello.txt HTTP/1.1\" 200 6")
            });
        }
        "unix_recv" => {
            let mut s = UnixStream::connect(path)
                .unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
            s.set_read_timeout(Some(common::SOON)).unwrap();
            s.write_all(b"hello from the guide").unwrap();
            expect_bytes(&mut s, b"Receive");
        }
        other => panic!("no way to exercise server {other:?}: add it to `exercise`"),
    }
}

fn connect(server: &Example) -> TcpStream {
    let s = TcpStream::connect(server.addr())
        .unwrap_or_else(|e| panic!("connect {}: {e}", server.addr()));
    s.set_read_timeout(Some(common::SOON)).unwrap();
    s
}

fn read_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("read a line within the timeout");
    line
}

/// Reads until exactly `want` has arrived (it may come in pieces).
fn expect_bytes(s: &mut impl Read, want: &[u8]) {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want.len() {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "waiting for {:?}: {e}; got {:?}",
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

/// One command line of an `sh` block.
#[derive(Debug, Clone)]
struct Line {
    /// `docs/file.md:line`, for messages.
    at: String,
    env: Vec<(String, String)>,
    what: What,
}

#[derive(Debug, Clone)]
enum What {
    Example { name: String, args: Vec<String> },
    Python { args: Vec<String> },
}

/// One `sh` block and the `output` block after it, if any.
#[derive(Debug)]
struct Session {
    lines: Vec<Line>,
    output: Option<(String, String)>,
}

/// The guide's files: its table of contents and the numbered chapters.
fn guide_files() -> Vec<PathBuf> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut files = vec![docs.join("README.md")];
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(&docs)
        .expect("docs/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.len() > 3
                && name.as_bytes()[..2].iter().all(u8::is_ascii_digit)
                && name.as_bytes()[2] == b'-'
                && name.ends_with(".md")
        })
        .collect();
    chapters.sort();
    files.extend(chapters);
    files
}

/// Splits markdown into sessions, per the rule in the module docs.
fn sessions(file: &Path) -> Vec<Session> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let short = format!("docs/{}", file.file_name().unwrap().to_string_lossy());
    let mut out: Vec<Session> = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    // Whether the last thing seen was an sh block (only blank lines since).
    let mut after_sh = false;
    while let Some((i, line)) = lines.next() {
        let fence = line.trim_start();
        if let Some(tag) = fence.strip_prefix("```") {
            let tag = tag.trim();
            let mut body = Vec::new();
            for (j, inner) in lines.by_ref() {
                if inner.trim_start().starts_with("```") {
                    break;
                }
                body.push((j, inner));
            }
            match tag {
                "sh" => {
                    let mut commands = Vec::new();
                    let mut pending: Option<(usize, String)> = None;
                    for (j, l) in &body {
                        // A quote left open continues on the next line, as in sh.
                        let (start, text) = match pending.take() {
                            Some((start, text)) => (start, format!("{text}\n{l}")),
                            None if l.trim().is_empty() || l.trim_start().starts_with('#') => {
                                continue;
                            }
                            None => (*j, (*l).to_owned()),
                        };
                        match shell_words(&text) {
                            Err(e) if e.starts_with("unterminated") => {
                                pending = Some((start, text))
                            }
                            _ => commands.push(parse_line(&text, format!("{short}:{}", start + 1))),
                        }
                    }
                    if let Some((start, _)) = pending {
                        panic!("{short}:{}: unterminated quote", start + 1);
                    }
                    out.push(Session {
                        lines: commands,
                        output: None,
                    });
                    after_sh = true;
                    continue;
                }
                "output" => {
                    assert!(
                        after_sh,
                        "{short}:{}: an `output` block must follow an `sh` block",
                        i + 1
                    );
                    let session = out.last_mut().unwrap();
                    let text = body.iter().map(|(_, l)| *l).collect::<Vec<_>>().join("\n");
                    session.output = Some((format!("{short}:{}", i + 1), text));
                }
                _ => {}
            }
            after_sh = false;
        } else if !line.trim().is_empty() && !line.trim_start().starts_with("<!--") {
            // Blank lines and HTML comments may sit between `sh` and `output`.
            after_sh = false;
        }
    }
    out
}

/// Parses one command line of an `sh` block.
fn parse_line(line: &str, at: String) -> Line {
    let words = shell_words(line).unwrap_or_else(|e| panic!("{at}: {e}: {line}"));
    let mut env = Vec::new();
    let mut rest = &words[..];
    while let Some((first, tail)) = rest.split_first() {
        match first.split_once('=') {
            Some((var, value))
                if !var.is_empty() && var.chars().all(|c| c.is_ascii_uppercase() || c == '_') =>
            {
                env.push((var.to_owned(), value.to_owned()));
                rest = tail;
            }
            _ => break,
        }
    }
    let what = match rest {
        [cargo, run, tail @ ..] if cargo == "cargo" && run == "run" => {
            let mut name = None;
            let mut args = Vec::new();
            let mut it = tail.iter();
            while let Some(word) = it.next() {
                match word.as_str() {
                    "--example" => name = it.next().cloned(),
                    "--release" | "-q" | "--quiet" => {}
                    "--" => {
                        args = it.by_ref().cloned().collect();
                    }
                    other => {
                        panic!("{at}: `cargo run` flag {other:?} is not part of the guide's rule")
                    }
                }
            }
            let name = name.unwrap_or_else(|| panic!("{at}: `cargo run` without `--example NAME`"));
            What::Example { name, args }
        }
        [python, args @ ..] if python == "python3" => What::Python {
            args: args.to_vec(),
        },
        _ => panic!(
            "{at}: an `sh` block may hold only `cargo run --example …` and `python3 …` lines (use a `text` block for other shell text): {line}"
        ),
    };
    Line { at, env, what }
}

/// Splits a line into words the way `sh` would for the guide's simple
/// commands: whitespace, '…' and "…" (with \" and \\ escapes).
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated \"".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '|' | '&' | ';' | '<' | '>' | '$' | '`' => {
                return Err(format!(
                    "shell syntax {c:?} is not allowed; one plain command per line"
                ));
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Replaces the value of `flag` in `args` (or appends `flag value`).
fn with_flag(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut found = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == flag {
            it.next();
            out.push(flag.to_owned());
            out.push(value.to_owned());
            found = true;
        } else if let Some(_old) = arg.strip_prefix(&format!("{flag}=")) {
            out.push(format!("{flag}={value}"));
            found = true;
        } else {
            out.push(arg.clone());
        }
    }
    if !found {
        out.push(flag.to_owned());
        out.push(value.to_owned());
    }
    out
}

/// A server started for a session.
struct Running {
    name: String,
    at: String,
    example: Example,
    path: PathBuf,
}

/// A fresh socket path under the target directory's tmp.
fn temp_path(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("guide-{}-{tag}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn start_server(
    name: &str,
    args: &[String],
    env: &[(String, String)],
    at: &str,
    n: usize,
) -> Running {
    let path = temp_path(&format!("{n}"));
    let args = match role(name) {
        Role::UnixServer => with_flag(args, "--path", path.to_str().unwrap()),
        _ => with_flag(args, "--addr", "127.0.0.1:0"),
    };
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let example = Example::start_with(name, &argv, |c| {
        c.envs(env.iter().map(|(k, v)| (k, v)));
        if name == "epoll_chat" {
            // The chat server reads admin lines from stdin: keep it open.
            c.stdin(Stdio::piped());
        }
    });
    exercise(name, &example, &path);
    Running {
        name: name.to_owned(),
        at: at.to_owned(),
        example,
        path,
    }
}

/// Runs a command to completion, failing unless it exits 0 within `RUN_LIMIT`.
fn run_to_end(mut command: Command, stdin: &str, at: &str) -> String {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("REACTOR_BACKEND");
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{at}: spawn: {e}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    std::thread::spawn(move || {
        for line in stdin.split_inclusive('\n') {
            if input.write_all(line.as_bytes()).is_err() {
                return;
            }
            // Line by line, as a person types: a client may act on each.
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let collect = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = pipe.read_to_end(&mut all);
            let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
        });
        rx
    };
    let out = collect(Box::new(child.stdout.take().unwrap()));
    let err = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{at}: still running after {RUN_LIMIT:?}; stderr: {}",
                err.recv_timeout(Duration::from_secs(1)).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    let stderr = err.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    assert!(
        status.success(),
        "{at}: exited with {status}\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

fn run_session(session: &Session, n: &mut usize) {
    let mut servers: Vec<Running> = Vec::new();
    for line in &session.lines {
        if let What::Example { name, args } = &line.what
            && matches!(role(name), Role::TcpServer | Role::UnixServer)
        {
            *n += 1;
            eprintln!("guide: {}: server {name} {args:?}", line.at);
            servers.push(start_server(name, args, &line.env, &line.at, *n));
        }
    }
    // A session of clients only gets their server.
    if servers.is_empty() {
        for line in &session.lines {
            if let What::Example { name, .. } = &line.what
                && let Role::Client { server, .. } = role(name)
            {
                *n += 1;
                servers.push(start_server(server, &[], &[], &line.at, *n));
                break;
            }
        }
    }
    for line in &session.lines {
        eprintln!("guide: {}: {:?}", line.at, line.what);
        let stdout = match &line.what {
            What::Example { name, args } => match role(name) {
                Role::TcpServer | Role::UnixServer => continue,
                Role::Client { server, stdin } => {
                    let running = servers
                        .iter()
                        .find(|s| s.name == server)
                        .unwrap_or_else(|| {
                            panic!("{}: {name} needs {server} in the same session", line.at)
                        });
                    let args = if role(server) == Role::UnixServer {
                        with_flag(args, "--path", running.path.to_str().unwrap())
                    } else {
                        with_flag(args, "--addr", &running.example.listening_on)
                    };
                    let mut command = Command::new(example_path(name));
                    command.args(&args).envs(line.env.iter().cloned());
                    run_to_end(command, stdin, &line.at)
                }
                Role::Program => {
                    let mut command = Command::new(example_path(name));
                    command.args(args).envs(line.env.iter().cloned());
                    run_to_end(command, "", &line.at)
                }
            },
            What::Python { args } => {
                let args: Vec<String> = args
                    .iter()
                    .map(|a| {
                        let mut a = a.clone();
                        if let Some(server) = servers.first() {
                            if let Ok(addr) =
                                server.example.listening_on.parse::<std::net::SocketAddr>()
                            {
                                a = a.replace("8888", &addr.port().to_string());
                            }
                            a = a.replace("./sock_file", server.path.to_str().unwrap());
                        }
                        a
                    })
                    .collect();
                let mut command = Command::new("python3");
                command.args(&args).envs(line.env.iter().cloned());
                run_to_end(command, "", &line.at)
            }
        };
        if let Some((at, want)) = &session.output {
            assert_eq!(
                session.lines.len(),
                1,
                "{at}: an `output` block follows a session of exactly one command"
            );
            assert_eq!(
                stdout.trim_end(),
                want.trim_end(),
                "{at}: the guide's output differs from what {} prints",
                line.at
            );
        }
    }
    for mut server in servers {
        server.example.signal(libc::SIGINT);
        let status = server.example.wait_exit(Duration::from_secs(10));
        assert!(
            status.success(),
            "{}: {} exited with {status} after SIGINT; stderr: {}",
            server.at,
            server.name,
            server.example.stderr()
        );
        let _ = std::fs::remove_file(&server.path);
    }
}

fn shell_words_split_like_sh() {
    assert_eq!(
        shell_words("a 'b c' \"d \\\"e\\\"\"").unwrap(),
        ["a", "b c", "d \"e\""]
    );
    assert!(shell_words("a | b").is_err());
    let line = parse_line(
        "RUST_LOG=reactor=trace cargo run --example echo -- --backend poll",
        "x".into(),
    );
    assert_eq!(
        line.env,
        [("RUST_LOG".to_owned(), "reactor=trace".to_owned())]
    );
    assert!(
        matches!(line.what, What::Example { ref name, ref args } if name == "echo" && args == &["--backend", "poll"])
    );
    assert_eq!(
        with_flag(&["--addr".into(), "1:2".into()], "--addr", "3"),
        ["--addr", "3"]
    );
    assert_eq!(with_flag(&[], "--path", "p"), ["--path", "p"]);
}

fn every_command_in_the_guide_runs() {
    // GUIDE_FILE=03 runs only the files whose name contains "03" (for writers).
    let only = std::env::var("GUIDE_FILE").ok();
    let files: Vec<PathBuf> = guide_files()
        .into_iter()
        .filter(|f| {
            only.as_deref()
                .is_none_or(|o| f.to_string_lossy().contains(o))
        })
        .collect();
    assert!(
        only.is_some() || files.len() >= 13,
        "the table of contents and twelve chapters (0 to 11): {files:?}"
    );
    let sessions: Vec<Session> = files.iter().flat_map(|file| sessions(file)).collect();
    let uses_python = sessions
        .iter()
        .flat_map(|session| &session.lines)
        .any(|line| matches!(line.what, What::Python { .. }));
    if uses_python {
        common::require_program("python3");
    }
    let mut n = 0;
    let mut commands = 0;
    for session in &sessions {
        commands += session.lines.len();
        run_session(session, &mut n);
    }
    assert!(
        only.is_some() || commands >= 10,
        "only {commands} commands found: is the `sh` tag still used?"
    );
}

fn the_table_of_contents_links_every_chapter() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let toc = std::fs::read_to_string(docs.join("README.md")).unwrap();
    for chapter in guide_files().iter().skip(1) {
        let name = chapter.file_name().unwrap().to_string_lossy();
        assert!(
            toc.contains(&format!("]({name})")),
            "docs/README.md does not link {name}"
        );
    }
}

/// The `triggers` example on every backend: level and oneshot behave the
/// same everywhere, edge is shown on epoll and refused (with the typed
/// error's message) on select and poll.
fn triggers_shows_each_trigger(backend: Backend) {
    let mut command = Command::new(example_path("triggers"));
    command.args(["--backend", backend.name()]);
    let out = run_to_end(command, "", &format!("triggers --backend {backend}"));
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name:<9}")))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("[{backend}] no summary row for {name}:\n{out}"))
    };
    let closed = if backend == Backend::Select {
        "IN"
    } else {
        "IN|RDHUP|HUP"
    };
    assert_eq!(
        row("level"),
        format!("IN IN IN IN - {closed}"),
        "[{backend}]\n{out}"
    );
    assert_eq!(row("oneshot"), "IN - - IN - -", "[{backend}]\n{out}");
    if backend == Backend::Epoll || backend == Backend::Uring {
        assert_eq!(
            row("edge"),
            "IN - IN - - IN|RDHUP|HUP",
            "[{backend}]\n{out}"
        );
    } else {
        assert!(
            out.contains(&format!("the {backend} backend has no edge triggering")),
            "[{backend}] edge not refused with Error::Unsupported:\n{out}"
        );
    }
}

/// Every picture a guide page shows exists in `docs/pictures/`, every SVG
/// there is shown somewhere, and each has the source `make.sh` draws it
/// from (a `.dot` file, or the timeline's script and data).
fn every_picture_is_shown_and_has_its_source() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let pictures = docs.join("pictures");
    let mut shown = std::collections::BTreeSet::new();
    for page in guide_files() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (i, _) in text.match_indices("](pictures/") {
            let rest = &text[i + "](pictures/".len()..];
            let name = &rest[..rest.find(')').expect("closing parenthesis")];
            assert!(
                pictures.join(name).exists(),
                "{} shows pictures/{name}, which does not exist (run docs/pictures/make.sh)",
                page.display()
            );
            shown.insert(name.to_owned());
        }
    }
    for entry in std::fs::read_dir(&pictures).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".svg") else {
            continue;
        };
        assert!(
            shown.contains(&name),
            "docs/pictures/{name} is shown by no guide page"
        );
        let source = if stem == "triggers-timeline" {
            pictures.join("timeline.py")
        } else {
            pictures.join(format!("{stem}.dot"))
        };
        assert!(
            source.exists(),
            "docs/pictures/{name} has no source {}",
            source.display()
        );
    }
}

/// The timeline picture is drawn from `triggers.json`; that data must still
/// be what `triggers --emit json` prints, or the picture shows a run the
/// program no longer makes (regenerate with docs/pictures/make.sh).
fn the_timeline_data_is_what_triggers_emits_today() {
    let mut command = Command::new(example_path("triggers"));
    command.args(["--emit", "json"]);
    let emitted = run_to_end(command, "", "triggers --emit json");
    let stored = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/pictures/triggers.json"),
    )
    .unwrap();
    assert_eq!(
        emitted.trim_end(),
        stored.trim_end(),
        "docs/pictures/triggers.json is stale: run docs/pictures/make.sh"
    );
}
