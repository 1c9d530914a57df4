//! The chat room end to end: the real `epoll_chat` binary on port 0, real
//! TCP clients, on every backend. The faults it survives are in
//! docs/reliability.md: slow readers, oversized input, slowloris, hostile
//! chat names, duplicate names and ghost users, impersonation, connection
//! floods, frozen peers and graceful shutdown.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Example, SOON, cpu_share};
use reactor::Backend;

backend_tests!(
    login_broadcast_who_quit,
    duplicate_names_collide_after_nfkc_and_case,
    invalid_names_are_refused_and_the_client_may_retry,
    eof_and_reset_send_one_left_and_free_the_name,
    impersonation_is_impossible,
    admin_lines_from_stdin_reach_members_only,
    line_too_long_is_dropped_and_the_client_stays,
    login_timeout_closes_nameless_connections,
    slowloris_during_login_is_closed_at_the_deadline,
    room_full_past_max_clients,
    connection_flood_is_refused_without_starving_members,
    slow_consumer_is_dropped_and_the_room_gets_everything_in_order,
    frozen_member_does_not_slow_the_room,
    concurrent_senders_are_each_delivered_in_order,
    five_hundred_clients_at_once,
    sigterm_tells_everyone_and_exits_zero,
    chat_client_joins_and_exits_cleanly,
    shutdown_waits_at_most_a_second_for_a_stuck_client_and_a_second_signal_cuts_it_short,
    quit_flushes_what_was_queued_for_the_leaving_client,
    quit_closes_a_client_that_does_not_read_within_a_second,
    help_lists_the_commands_to_the_sender_only,
    telnet_negotiation_is_stripped_refused_and_never_broadcast,
    the_longest_legal_line_reaches_readers_at_the_smallest_max_queue,
    welcome_and_who_stay_bounded_in_a_big_room,
    names_that_impersonate_or_look_blank_are_refused,
    chat_client_says_when_the_server_closes_and_exits_1_unless_it_shut_down,
    the_queue_bound_is_the_memory_bound_and_memory_returns_after_a_drop,
);

/// A room on `backend` with `--max-queue max_queue`: member `x`, whose
/// receive window is 4 KiB and who reads nothing after its welcome, and
/// members `y` and `z`, who saw the others join. Returns
/// `(server, x, y, z)`.
fn room_with_a_member_that_never_reads(
    backend: Backend,
    max_queue: &str,
) -> (Example, Peer, Peer, Peer) {
    let chat = server(backend, &["--max-queue", max_queue]);
    let mut z = Peer::login(chat.addr(), "z");
    let mut x = Peer::connect_raw(chat.addr());
    set_int_opt(&x.stream, libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
    x.line();
    x.send("x");
    x.line();
    z.expect("* x joined");
    let y = Peer::login(chat.addr(), "y");
    z.expect("* y joined");
    (chat, x, y, z)
}

/// Starts the server on `backend` with extra flags.
fn server(backend: Backend, extra: &[&str]) -> Example {
    let mut args = vec!["--addr", "127.0.0.1:0", "--backend", backend.name()];
    args.extend_from_slice(extra);
    Example::start("epoll_chat", &args)
}

/// A raw line client, as `nc` would be.
struct Peer {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    what: String,
}

impl Peer {
    /// Connects and reads the name prompt.
    #[track_caller]
    fn connect(addr: SocketAddr) -> Peer {
        let mut peer = Peer::connect_raw(addr);
        let prompt = peer.line();
        assert!(prompt.starts_with("* "), "prompt {prompt:?}");
        peer
    }

    /// Connects without reading anything.
    #[track_caller]
    fn connect_raw(addr: SocketAddr) -> Peer {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(SOON)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Peer {
            stream,
            reader,
            what: format!("{addr}"),
        }
    }

    /// Connects and logs in as `name`; returns the welcome line.
    #[track_caller]
    fn login(addr: SocketAddr, name: &str) -> Peer {
        let mut peer = Peer::connect(addr);
        peer.send(name);
        let welcome = peer.line();
        assert!(
            welcome.starts_with(&format!("* welcome {name}, online: ")),
            "{welcome:?}"
        );
        peer.what = name.to_owned();
        peer
    }

    fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next line (without `\n`); fails on timeout or end of file.
    #[track_caller]
    fn line(&mut self) -> String {
        match self.try_line() {
            Some(line) => line,
            None => panic!("{}: end of file where a line was expected", self.what),
        }
    }

    /// The next line, or `None` at end of file; fails on timeout.
    #[track_caller]
    fn try_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert_eq!(
                    buf.pop(),
                    Some(b'\n'),
                    "{}: a line without \\n: {buf:?}",
                    self.what
                );
                Some(String::from_utf8(buf).expect("server lines are UTF-8"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("{}: no line within {SOON:?}: {e}", self.what),
        }
    }

    #[track_caller]
    fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{}", self.what);
    }

    /// Reads to end of file; the lines read.
    #[track_caller]
    fn expect_eof(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.try_line() {
            lines.push(line);
        }
        lines
    }

    /// No line arrives within `wait` (then the read timeout is restored).
    #[track_caller]
    fn expect_silence(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!(
                "{}: expected silence, got {other:?} {:?}",
                self.what,
                String::from_utf8_lossy(&buf)
            ),
        }
        self.stream.set_read_timeout(Some(SOON)).unwrap();
    }
}

fn set_int_opt(stream: &TcpStream, level: libc::c_int, opt: libc::c_int, value: libc::c_int) {
    // SAFETY: setsockopt reads one c_int from a valid pointer on our socket.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            level,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// Resident memory of `pid`, in KiB.
fn vm_rss_kib(pid: i32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Peak resident memory of `pid` (VmHWM), in KiB.
fn vm_hwm_kib(pid: i32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// The KiB figure on the `field` line of `/proc/<pid>/status`.
fn status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Closes with an RST instead of a FIN (SO_LINGER {on, 0}).
fn reset(peer: Peer) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads one `linger` from a valid pointer on our socket.
    let ret = unsafe {
        libc::setsockopt(
            peer.stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0);
}

fn login_broadcast_who_quit(backend: Backend) {
    let chat = server(backend, &[]);
    let mut alice = Peer::login(chat.addr(), "alice");
    let mut bob = Peer::connect(chat.addr());
    bob.send("bob");
    bob.expect("* welcome bob, online: alice, bob");
    alice.expect("* bob joined");

    // To all others, not to the sender: bob's next line is his /who.
    bob.send("hi there");
    alice.expect("bob: hi there");
    bob.send("/who");
    bob.expect("* online: alice, bob");
    alice.send("/who");
    alice.expect("* online: alice, bob");

    // Partial lines across writes, several lines in one write, \r\n,
    // empty lines ignored.
    bob.send_bytes(b"par");
    std::thread::sleep(Duration::from_millis(50));
    bob.send_bytes("tial\r\nx\n\n\r\n张三说\n".as_bytes());
    alice.expect("bob: partial");
    alice.expect("bob: x");
    alice.expect("bob: 张三说");

    bob.send("/quit");
    assert!(
        bob.expect_eof().is_empty(),
        "[{backend}] nothing after /quit"
    );
    alice.expect("* bob left");
    alice.send("/who");
    alice.expect("* online: alice");
}

fn duplicate_names_collide_after_nfkc_and_case(backend: Backend) {
    let chat = server(backend, &[]);
    let _alice = Peer::login(chat.addr(), "alice");
    let mut other = Peer::connect(chat.addr());
    for name in ["alice", "Alice", "ＡＬＩＣＥ", "ａｌｉｃｅ"] {
        other.send(name);
        other.expect(&format!("! name taken: {name}"));
    }
    other.send("alice2");
    other.expect("* welcome alice2, online: alice, alice2");
}

fn invalid_names_are_refused_and_the_client_may_retry(backend: Backend) {
    let chat = server(backend, &[]);
    let mut peer = Peer::connect(chat.addr());
    let long = "a".repeat(33);
    let bad: Vec<&[u8]> = vec![
        // (Not 0xFF: that is telnet's IAC, stripped before lines are split.)
        b"\xfe\xc3",
        b"",
        long.as_bytes(),
        b"\x1b[2J",
        b"bob\rx",
        "alice\u{200B}".as_bytes(),
        "a\u{202E}txt".as_bytes(),
        " alice".as_bytes(),
        "al ice".as_bytes(),
        "al\u{3000}ice".as_bytes(),
        b"al\tice",
        b"[admin]",
        b"*",
        b"!x",
        "［x".as_bytes(),
        b"admin",
        b"Server",
        "ａｄｍｉｎ".as_bytes(),
    ];
    for name in bad {
        peer.send_bytes(name);
        peer.send_bytes(b"\n");
        let got = peer.line();
        assert!(
            got.starts_with("! invalid name: "),
            "[{backend}] {name:?} → {got:?}"
        );
    }
    // Still in the login state: a good name works, Chinese welcome.
    peer.send("张三");
    peer.expect("* welcome 张三, online: 张三");
    // 32 characters is the longest allowed.
    let max = "é".repeat(32);
    let _ok = Peer::login(chat.addr(), &max);
}

fn eof_and_reset_send_one_left_and_free_the_name(backend: Backend) {
    let chat = server(backend, &[]);
    let mut alice = Peer::login(chat.addr(), "alice");
    let bob = Peer::login(chat.addr(), "bob");
    alice.expect("* bob joined");
    drop(bob); // EOF
    alice.expect("* bob left");

    let bob = Peer::login(chat.addr(), "bob");
    alice.expect("* bob joined");
    reset(bob); // RST
    alice.expect("* bob left");

    // Two logins with one name in the same batch: exactly one wins.
    let mut one = Peer::connect(chat.addr());
    let mut two = Peer::connect(chat.addr());
    one.send_bytes(b"dup\n");
    two.send_bytes(b"dup\n");
    let answers = [one.line(), two.line()];
    let wins = answers
        .iter()
        .filter(|a| a.starts_with("* welcome dup, "))
        .count();
    let losses = answers.iter().filter(|a| *a == "! name taken: dup").count();
    assert_eq!((wins, losses), (1, 1), "[{backend}] {answers:?}");
    alice.expect("* dup joined");
    drop((one, two));
    alice.expect("* dup left");

    // A loser of the name race leaving does not free the name.
    let mut loser = Peer::connect(chat.addr());
    loser.send("alice");
    loser.expect("! name taken: alice");
    reset(loser);
    let mut again = Peer::connect(chat.addr());
    again.send("alice");
    again.expect("! name taken: alice");

    let _bob = Peer::login(chat.addr(), "bob");
    alice.expect("* bob joined"); // no second "left" came before it
    alice.send("/who");
    alice.expect("* online: alice, bob");
}

fn impersonation_is_impossible(backend: Backend) {
    let chat = server(backend, &[]);
    let mut alice = Peer::login(chat.addr(), "alice");
    let mut bob = Peer::login(chat.addr(), "bob");
    alice.expect("* bob joined");
    alice.send_bytes(
        b"hi\n[admin] server shutting down\nbob: i quit\n* carol joined\n! room full\n",
    );
    alice
        .send_bytes(b"\x1b[31mSYSTEM\nx\ry\n\xe2\x80\xaeevil\n\x07\x7f\xc2\x85\n/announce hello\n");
    for want in [
        "alice: hi",
        "alice: [admin] server shutting down",
        "alice: bob: i quit",
        "alice: * carol joined",
        "alice: ! room full",
        "alice: [31mSYSTEM",
        "alice: xy",
        "alice: evil",
        "alice: /announce hello",
    ] {
        bob.expect(want);
    }
}

fn admin_lines_from_stdin_reach_members_only(backend: Backend) {
    let args = ["--addr", "127.0.0.1:0", "--backend", backend.name()];
    let mut chat = Example::start_with("epoll_chat", &args, |c| {
        c.stdin(Stdio::piped());
    });
    let mut alice = Peer::login(chat.addr(), "alice");
    let mut bob = Peer::login(chat.addr(), "bob");
    alice.expect("* bob joined");
    let mut naming = Peer::connect(chat.addr());
    let mut stdin = chat.stdin.take().unwrap();
    stdin
        .write_all("hello everyone\n\n公告\n".as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    for peer in [&mut alice, &mut bob] {
        peer.expect("[admin] hello everyone");
        peer.expect("[admin] 公告");
    }
    naming.expect_silence(Duration::from_millis(200));
    // End of stdin does not stop the server.
    drop(stdin);
    std::thread::sleep(Duration::from_millis(100));
    naming.send("carol");
    naming.expect("* welcome carol, online: alice, bob, carol");
    alice.expect("* carol joined");
}

fn line_too_long_is_dropped_and_the_client_stays(backend: Backend) {
    let chat = server(backend, &["--max-line", "16"]);
    let mut naming = Peer::connect(chat.addr());
    naming.send(&"n".repeat(17));
    naming.expect("! line too long");
    let mut alice = Peer::login(chat.addr(), "alice");
    let mut bob = Peer::login(chat.addr(), "bob");
    alice.expect("* bob joined");
    bob.send(&"x".repeat(16)); // exactly max-line: fine
    alice.expect(&format!("bob: {}", "x".repeat(16)));
    bob.send(&"y".repeat(17));
    bob.expect("! line too long");
    // 1 MiB without a newline: one answer, memory stays bounded
    // (docs/reliability.md#oversized-input).
    let big = vec![b'z'; 1 << 20];
    bob.send_bytes(&big);
    bob.send_bytes(b"\nafter\n");
    bob.expect("! line too long");
    alice.expect("bob: after");
    bob.send("/who");
    bob.expect("* online: alice, bob");
}

fn login_timeout_closes_nameless_connections(backend: Backend) {
    let chat = server(backend, &["--login-timeout", "0.5"]);
    let mut alice = Peer::login(chat.addr(), "alice");
    let start = Instant::now();
    let mut idle = Peer::connect(chat.addr());
    idle.expect("! login timeout");
    assert!(idle.expect_eof().is_empty());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "[{backend}] {took:?}"
    );
    // A member is not timed out.
    std::thread::sleep(Duration::from_millis(300));
    alice.send("/who");
    alice.expect("* online: alice");
}

fn slowloris_during_login_is_closed_at_the_deadline(backend: Backend) {
    // docs/reliability.md#slowloris: many connections trickle a name and never
    // end the line; they are closed at the login deadline, and a real user
    // still gets in at once.
    let chat = server(backend, &["--login-timeout", "1"]);
    let start = Instant::now();
    let mut slow: Vec<Peer> = (0..100).map(|_| Peer::connect(chat.addr())).collect();
    for peer in &mut slow {
        peer.send_bytes(b"al");
    }
    let alice_start = Instant::now();
    let _alice = Peer::login(chat.addr(), "alice");
    assert!(
        alice_start.elapsed() < Duration::from_secs(1),
        "[{backend}] legit login slow"
    );
    // Trickle one byte every 100 ms until the deadline has passed.
    while start.elapsed() < Duration::from_millis(700) {
        for peer in &mut slow {
            peer.send_bytes(b"x");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for peer in &mut slow {
        peer.expect("! login timeout");
        assert!(peer.expect_eof().is_empty());
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "[{backend}] {took:?}"
    );
}

fn room_full_past_max_clients(backend: Backend) {
    let chat = server(backend, &["--max-clients", "3"]);
    let mut alice = Peer::login(chat.addr(), "alice");
    let _bob = Peer::login(chat.addr(), "bob");
    alice.expect("* bob joined");
    let naming = Peer::connect(chat.addr()); // not logged in: still counts
    let mut fourth = Peer::connect_raw(chat.addr());
    fourth.expect("! room full");
    assert!(fourth.expect_eof().is_empty());
    // A burst past the cap: every one refused, the room unharmed.
    let mut burst: Vec<Peer> = (0..30).map(|_| Peer::connect_raw(chat.addr())).collect();
    for peer in &mut burst {
        peer.expect("! room full");
        assert!(peer.expect_eof().is_empty());
    }
    alice.send("/who");
    alice.expect("* online: alice, bob");
    drop(naming);
    std::thread::sleep(Duration::from_millis(100));
    let _carol = Peer::login(chat.addr(), "carol");
}

fn connection_flood_is_refused_without_starving_members(backend: Backend) {
    // A flood past --max-clients, with the server also out of descriptors
    // (docs/reliability.md#connection-floods, #out-of-descriptors): members
    // keep chatting, no spin, recovery.
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--backend",
        backend.name(),
        "--max-clients",
        "40",
    ];
    let chat = Example::start_with("epoll_chat", &args, |c| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; only our child's limit changes.
        unsafe {
            c.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 32,
                    rlim_max: 32,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let mut alice = Peer::login(chat.addr(), "alice");
    let mut bob = Peer::login(chat.addr(), "bob");
    alice.expect("* bob joined");
    // 300 connection attempts, all held open.
    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(chat.addr()).ok())
        .collect();
    assert!(flood.len() > 100, "[{backend}] the backlog took too few");
    let start = Instant::now();
    bob.send("still here");
    alice.expect("bob: still here");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "[{backend}] member starved"
    );
    let cpu = cpu_share(chat.pid(), Duration::from_millis(500));
    assert!(
        cpu < 0.5,
        "[{backend}] spinning under the flood: {cpu:.2} of a core"
    );
    drop(flood);
    std::thread::sleep(Duration::from_millis(300));
    let _carol = Peer::login(chat.addr(), "carol");
    alice.expect("* carol joined");
}

fn slow_consumer_is_dropped_and_the_room_gets_everything_in_order(backend: Backend) {
    // docs/reliability.md#slow-readers: X never reads; Y floods; Z reads
    // everything.
    let (chat, x, mut y, mut z) = room_with_a_member_that_never_reads(backend, "65536");

    const LINES: usize = 30_000;
    let reader = std::thread::spawn(move || {
        let mut next = 0;
        let mut too_slow = 0;
        while next < LINES {
            let line = z.line();
            if line == "* x left (too slow)" {
                too_slow += 1;
                continue;
            }
            let want = format!("y: {next:05} {}", "m".repeat(190));
            assert_eq!(line, want, "out of order or damaged");
            next += 1;
        }
        (too_slow, z)
    });
    for i in 0..LINES {
        y.send(&format!("{i:05} {}", "m".repeat(190)));
    }
    let (too_slow, mut z) = reader.join().expect("reader");
    // Exactly one notice, in the stream or right after it.
    let too_slow = if too_slow == 0 {
        z.expect("* x left (too slow)");
        1
    } else {
        too_slow
    };
    assert_eq!(too_slow, 1, "[{backend}]");
    // X is gone from the room. (Reading X to its end of file is not
    // tested: with a 4 KiB window the kernel's zero-window probes back
    // off to minutes.)
    drop(x);
    z.send("/who");
    z.expect("* online: z, y");
    let rss = vm_rss_kib(chat.pid());
    assert!(
        rss < 64 * 1024,
        "[{backend}] server RSS {rss} KiB after the flood"
    );
}

fn frozen_member_does_not_slow_the_room(backend: Backend) {
    // docs/reliability.md#frozen-peers: a member that stops reading (as if
    // SIGSTOPped).
    let chat = server(backend, &[]);
    let _frozen = Peer::login(chat.addr(), "frozen");
    let mut alice = Peer::login(chat.addr(), "alice");
    let mut bob = Peer::login(chat.addr(), "bob");
    alice.expect("* bob joined");
    for i in 0..200 {
        let start = Instant::now();
        alice.send(&format!("message {i}"));
        bob.expect(&format!("alice: message {i}"));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "[{backend}] slowed by the frozen member"
        );
    }
}

fn concurrent_senders_are_each_delivered_in_order(backend: Backend) {
    let chat = server(backend, &[]);
    const SENDERS: usize = 4;
    const EACH: usize = 300;
    let mut receivers: Vec<Peer> = (0..2)
        .map(|i| Peer::login(chat.addr(), &format!("r{i}")))
        .collect();
    let mut senders: Vec<Peer> = (0..SENDERS)
        .map(|i| Peer::login(chat.addr(), &format!("s{i}")))
        .collect();
    for r in &mut receivers {
        // joined lines for r1 (only r0) and the senders
        let joins = if r.what == "r0" { 1 + SENDERS } else { SENDERS };
        for _ in 0..joins {
            assert!(r.line().ends_with(" joined"));
        }
    }
    let threads: Vec<_> = senders
        .drain(..)
        .enumerate()
        .map(|(i, mut s)| {
            std::thread::spawn(move || {
                for n in 0..EACH {
                    s.send(&format!("{i} {n}"));
                }
                s
            })
        })
        .collect();
    for r in &mut receivers {
        let mut next = [0usize; SENDERS];
        let mut got = 0;
        while got < SENDERS * EACH {
            let line = r.line();
            if line.ends_with(" joined") {
                continue;
            }
            let (name, text) = line.split_once(": ").expect("a message");
            let (i, n) = text.split_once(' ').unwrap();
            let i: usize = i.parse().unwrap();
            assert_eq!(name, format!("s{i}"));
            assert_eq!(
                n.parse::<usize>().unwrap(),
                next[i],
                "[{backend}] sender {i} reordered"
            );
            next[i] += 1;
            got += 1;
        }
    }
    for t in threads {
        t.join().unwrap();
    }
}

fn five_hundred_clients_at_once(backend: Backend) {
    let chat = server(backend, &[]);
    const N: usize = 500;
    // Connect everyone first (one thread: the server's queues and the
    // kernel's buffers hold the lines until each client reads).
    let mut peers: Vec<Peer> = (0..N).map(|_| Peer::connect(chat.addr())).collect();
    for (i, peer) in peers.iter_mut().enumerate() {
        peer.send(&format!("c{i}"));
    }
    for (i, peer) in peers.iter_mut().enumerate() {
        let welcome = peer.line();
        // Join order is the server's arrival order, which a loaded
        // machine may shuffle; what matters is that everyone is in.
        assert!(
            welcome.starts_with(&format!("* welcome c{i}, online: ")),
            "[{backend}] {welcome}"
        );
    }
    peers[0].send("hello 500");
    for peer in peers.iter_mut().skip(1) {
        loop {
            let line = peer.line();
            if line == "c0: hello 500" {
                break;
            }
            assert!(line.ends_with(" joined"), "[{backend}] {line}");
        }
    }
    peers[1].send("/who");
    loop {
        let line = peers[1].line();
        if let Some(list) = line.strip_prefix("* online: ") {
            // The first 50 names, then how many more.
            let (names, more) = list.split_once(", … and ").expect("a bounded list");
            let more: usize = more.trim_end_matches(" more").parse().unwrap();
            assert_eq!(names.split(", ").count() + more, N);
            break;
        }
    }
}

fn sigterm_tells_everyone_and_exits_zero(backend: Backend) {
    // docs/reliability.md#graceful-shutdown: 50 clients, some chatting,
    // some still naming.
    let mut chat = server(backend, &[]);
    let mut members: Vec<Peer> = (0..40)
        .map(|i| Peer::login(chat.addr(), &format!("m{i}")))
        .collect();
    let mut naming: Vec<Peer> = (0..10).map(|_| Peer::connect(chat.addr())).collect();
    for (i, m) in members.iter_mut().enumerate().take(10) {
        for n in 0..20 {
            m.send(&format!("busy {i} {n}"));
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    chat.signal(libc::SIGTERM);
    for peer in members.iter_mut().chain(naming.iter_mut()) {
        let lines = peer.expect_eof();
        assert_eq!(
            lines.last().map(String::as_str),
            Some("* server shutting down"),
            "[{backend}] {}",
            peer.what
        );
    }
    let status = chat.wait_exit(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "[{backend}]");
}

fn chat_client_joins_and_exits_cleanly(backend: Backend) {
    let chat = server(backend, &[]);
    let mut alice = Peer::login(chat.addr(), "alice");
    let mut client = Command::new(common::example_path("chat_client"))
        .args(["--addr", &chat.listening_on, "--backend", backend.name()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chat_client");
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"bob\nhello from bob\n").unwrap();
    alice.expect("* bob joined");
    alice.expect("bob: hello from bob");
    alice.send("hi bob");
    std::thread::sleep(Duration::from_millis(200));
    drop(stdin); // end of input: bob leaves, the client exits 0
    alice.expect("* bob left");
    let deadline = Instant::now() + SOON;
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "chat_client did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    let mut out = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("* welcome bob, online: alice, bob\n"), "{out}");
    assert!(out.contains("alice: hi bob\n"), "{out}");

    // The server going away ends the client too.
    let mut client = Command::new(common::example_path("chat_client"))
        .args(["--addr", &chat.listening_on])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    chat.signal(libc::SIGTERM);
    let deadline = Instant::now() + SOON;
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "chat_client did not exit after the server"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn bad_flags_exit_2() {
    for bad in [
        ["--login-timeout", "soon"],
        ["--login-timeout", "-1"],
        ["--max-line", "0"],
        ["--max-queue", "x"],
    ] {
        let out = Command::new(common::example_path("epoll_chat"))
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
}

fn shutdown_waits_at_most_a_second_for_a_stuck_client_and_a_second_signal_cuts_it_short(
    backend: Backend,
) {
    // docs/reliability.md#graceful-shutdown: queues are flushed within a
    // bound; a second signal
    // stops at once.
    for signals in [1, 2] {
        let (mut chat, x, mut y, mut z) = room_with_a_member_that_never_reads(backend, "8388608");
        // 6 MB for x, who never reads: more than the kernel buffers (the
        // send buffer autotunes up to tcp_wmem's 4 MB).
        const LINES: usize = 30_000;
        let reader = std::thread::spawn(move || {
            for _ in 0..LINES {
                z.line();
            }
            z
        });
        let line = "m".repeat(200);
        for _ in 0..LINES {
            y.send(&line);
        }
        let mut z = reader.join().unwrap();
        let start = Instant::now();
        chat.signal(libc::SIGTERM);
        if signals == 2 {
            std::thread::sleep(Duration::from_millis(100));
            chat.signal(libc::SIGINT);
        }
        let status = chat.wait_exit(Duration::from_secs(5));
        let took = start.elapsed();
        assert_eq!(status.code(), Some(0), "[{backend}]");
        if signals == 1 {
            assert!(
                took >= Duration::from_millis(800) && took < Duration::from_millis(2500),
                "[{backend}] {took:?}"
            );
        } else {
            assert!(
                took < Duration::from_millis(800),
                "[{backend}] second signal: {took:?}"
            );
        }
        assert_eq!(
            z.expect_eof().last().map(String::as_str),
            Some("* server shutting down")
        );
        drop(x);
    }
}

// ---- Nothing lost, nothing forged: /quit, /help, telnet, limits, memory ----

fn quit_flushes_what_was_queued_for_the_leaving_client(backend: Backend) {
    let chat = server(backend, &[]);
    let mut alice = Peer::login(chat.addr(), "alice");
    let mut ivan = Peer::connect_raw(chat.addr());
    // One write: the prompt, the welcome and the /who answer are all
    // queued before /quit is read.
    ivan.send_bytes(b"ivan\n/who\n/quit\n");
    let lines = ivan.expect_eof();
    assert_eq!(
        lines,
        [
            "* enter your name",
            "* welcome ivan, online: alice, ivan",
            "* online: alice, ivan",
        ],
        "[{backend}]"
    );
    alice.expect("* ivan joined");
    alice.expect("* ivan left");
}

fn quit_closes_a_client_that_does_not_read_within_a_second(backend: Backend) {
    let (chat, mut x, mut y, mut z) = room_with_a_member_that_never_reads(backend, "8388608");
    // More for x than the kernel buffers hold.
    let line = "m".repeat(200);
    for _ in 0..30_000 {
        y.send(&line);
    }
    for _ in 0..30_000 {
        z.line();
    }
    let fds = common::fd_count(chat.pid());
    let start = Instant::now();
    x.send("/quit");
    // x leaves the room at once; its connection waits for the flush.
    z.expect("* x left");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        common::fd_count(chat.pid()),
        fds,
        "[{backend}] closed before its second"
    );
    while common::fd_count(chat.pid()) == fds {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "[{backend}] a non-reading client is still open after /quit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(700),
        "[{backend}] closed after {took:?}"
    );
}

fn help_lists_the_commands_to_the_sender_only(backend: Backend) {
    let chat = server(backend, &[]);
    let mut alice = Peer::login(chat.addr(), "alice");
    let mut bob = Peer::login(chat.addr(), "bob");
    alice.expect("* bob joined");
    bob.send("/help");
    bob.expect("* commands: /who, /quit, /help");
    // Before logging in, too.
    let mut new = Peer::connect(chat.addr());
    new.send("/help");
    new.expect("* commands: /who, /quit, /help");
    // Anything else starting with / is a message.
    bob.send("/me waves");
    alice.expect("bob: /me waves");
}

/// Telnet's bytes: IAC and the commands used here.
const IAC: u8 = 0xFF;
const DONT: u8 = 0xFE;
const DO: u8 = 0xFD;
const WONT: u8 = 0xFC;
const WILL: u8 = 0xFB;
const SB: u8 = 0xFA;
const SE: u8 = 0xF0;
const IP: u8 = 0xF4;
const TIMING_MARK: u8 = 6;
const ECHO: u8 = 1;
const NAWS: u8 = 31;

fn telnet_negotiation_is_stripped_refused_and_never_broadcast(backend: Backend) {
    let chat = server(backend, &[]);
    let mut alice = Peer::login(chat.addr(), "alice");
    let mut carol = Peer::connect_raw(chat.addr());
    carol.line();
    // What telnet sends: options at connect, a window size in a
    // subnegotiation, and after Ctrl-C `IAC IP IAC DO TIMING-MARK`.
    let mut bytes = vec![IAC, WILL, NAWS, IAC, DO, ECHO];
    bytes.extend_from_slice(&[IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE]);
    bytes.extend_from_slice(b"carol\r\n");
    carol.send_bytes(&bytes);
    // The refusals come first, each exactly once, in order.
    let mut refusals = [0u8; 6];
    carol.reader.read_exact(&mut refusals).unwrap();
    assert_eq!(refusals, [IAC, DONT, NAWS, IAC, WONT, ECHO], "[{backend}]");
    assert_eq!(carol.line(), "* welcome carol, online: alice, carol");
    alice.expect("* carol joined");
    // Ctrl-C, then the option split across two writes, then text.
    carol.send_bytes(&[IAC, IP, IAC, DO]);
    std::thread::sleep(Duration::from_millis(50));
    carol.send_bytes(&[TIMING_MARK]);
    carol.send_bytes(b"still here\r\n");
    let mut refusal = [0u8; 3];
    carol.reader.read_exact(&mut refusal).unwrap();
    assert_eq!(refusal, [IAC, WONT, TIMING_MARK], "[{backend}]");
    // Alice sees the text and nothing of the negotiation.
    alice.expect("carol: still here");
    // Carol still sees the room.
    alice.send("can you hear me?");
    carol.expect("alice: can you hear me?");
    // A line of nothing but negotiation is no message at all.
    carol.send_bytes(&[IAC, IP, b'\r', b'\n']);
    alice.send("ping");
    carol.expect("alice: ping");
    alice.expect_silence(Duration::from_millis(200));
}

/// Runs epoll_chat expecting it to exit at start-up (killed after `SOON`).
#[track_caller]
fn chat_exit(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(common::example_path("epoll_chat"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + SOON;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_max_queue_that_cannot_hold_one_line_is_refused_at_start() {
    let out = chat_exit(&["--addr", "127.0.0.1:0", "--max-queue", "2000"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().next().unwrap_or("").contains("--max-queue"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "it must not start listening");
}

fn the_longest_legal_line_reaches_readers_at_the_smallest_max_queue(backend: Backend) {
    // The smallest --max-queue accepted with --max-line 3000: found by
    // asking the server, which names it when refusing a smaller one.
    let out = chat_exit(&[
        "--addr",
        "127.0.0.1:0",
        "--max-line",
        "3000",
        "--max-queue",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let least: u64 = stderr
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .filter(|&n| n > 3000)
        .min()
        .unwrap_or_else(|| panic!("no least --max-queue in {stderr:?}"));
    let least = least.to_string();
    let chat = server(backend, &["--max-line", "3000", "--max-queue", &least]);
    let name = "长".repeat(32);
    let mut readers: Vec<Peer> = (0..3)
        .map(|i| Peer::login(chat.addr(), &format!("r{i}")))
        .collect();
    let mut long = Peer::login(chat.addr(), &name);
    for r in &mut readers {
        while r.line() != format!("* {name} joined") {}
    }
    let text = "x".repeat(3000);
    long.send(&text);
    for r in &mut readers {
        assert_eq!(r.line(), format!("{name}: {text}"), "[{backend}]");
    }
    long.send("/who");
    assert!(long.line().starts_with("* online: r0"));
}

fn welcome_and_who_stay_bounded_in_a_big_room(backend: Backend) {
    let chat = server(backend, &[]);
    let name = |i: usize| format!("{i:03}{}", "n".repeat(29));
    let mut members: Vec<Peer> = Vec::new();
    for i in 0..120 {
        let mut peer = Peer::connect(chat.addr());
        peer.send(&name(i));
        let welcome = peer.line();
        assert!(welcome.starts_with(&format!("* welcome {}, online: ", name(i))));
        members.push(peer);
    }
    let mut last = Peer::login(chat.addr(), "last");
    last.send("/who");
    let who = last.line();
    let tail = who
        .rsplit_once(", … and ")
        .unwrap_or_else(|| panic!("[{backend}] /who not bounded: {} bytes", who.len()))
        .1;
    let (more, rest) = tail.split_once(' ').unwrap();
    assert_eq!(rest, "more", "{who}");
    let listed = who.matches(", ").count();
    assert_eq!(
        listed + more.parse::<usize>().unwrap(),
        121,
        "[{backend}] {who}"
    );
    assert!(
        who.starts_with(&format!("* online: {}, ", name(0))),
        "{who}"
    );
    assert!(who.len() < 8192, "[{backend}] /who is {} bytes", who.len());
}

fn the_queue_bound_is_the_memory_bound_and_memory_returns_after_a_drop(backend: Backend) {
    // One member never reads; another sends tiny lines until it is dropped.
    const MAX_QUEUE_KIB: u64 = 8 * 1024;
    let max_queue = (MAX_QUEUE_KIB * 1024).to_string();
    let (chat, x, mut y, z) = room_with_a_member_that_never_reads(backend, &max_queue);
    // Only x is to hold a queue: z leaves.
    drop(z);
    std::thread::sleep(Duration::from_millis(100));
    let before = vm_rss_kib(chat.pid());
    // 1-character messages: "y: m\n" is 5 bytes for x.
    let burst = "m\n".repeat(4096);
    let deadline = Instant::now() + Duration::from_secs(60);
    y.stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut seen = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "[{backend}] x never dropped");
        y.send_bytes(burst.as_bytes());
        let mut buf = [0u8; 256];
        if let Ok(n) = y.stream.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("* x left (too slow)") {
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let peak = vm_hwm_kib(chat.pid());
    let after = vm_rss_kib(chat.pid());
    // The queue, plus slack for line buffers and the allocator.
    assert!(
        peak <= before + MAX_QUEUE_KIB * 5 / 4 + 2048,
        "[{backend}] peak RSS {peak} KiB, from {before} KiB, with --max-queue {MAX_QUEUE_KIB} KiB"
    );
    assert!(
        after <= before + 2048,
        "[{backend}] RSS {after} KiB after the drop, {before} KiB before"
    );
    drop(x);
}

fn names_that_impersonate_or_look_blank_are_refused(backend: Backend) {
    let chat = server(backend, &[]);
    let _observer = Peer::login(chat.addr(), "observer");
    let _alice = Peer::login(chat.addr(), "alice");
    let mut new = Peer::connect(chat.addr());
    let refused = |new: &mut Peer, name: &str, want: &str| {
        new.send(name);
        let got = new.line();
        assert!(
            got.starts_with(want),
            "[{backend}] {name:?} (escaped {}): {got:?}",
            name.escape_unicode()
        );
    };
    // Invisible code points (Default_Ignorable): a combining grapheme
    // joiner, a variation selector, the Hangul filler.
    refused(&mut new, "obs\u{034F}erver", "! invalid name: ");
    refused(&mut new, "alice\u{FE0F}", "! invalid name: ");
    refused(&mut new, "\u{3164}", "! invalid name: ");
    // Blank-looking: no letter or digit at all.
    refused(&mut new, "\u{2800}", "! invalid name: ");
    refused(&mut new, "._.", "! invalid name: ");
    // A tower of combining marks on one letter.
    refused(
        &mut new,
        &format!("a{}", "\u{0301}".repeat(31)),
        "! invalid name: ",
    );
    // Mixed scripts: a Cyrillic а among Latin letters.
    refused(&mut new, "\u{0430}dmin", "! invalid name: ");
    refused(&mut new, "\u{0430}lice", "! invalid name: ");
    // Whole-script look-alikes of the reserved names, and confusable
    // skeletons of members' names, collide.
    refused(
        &mut new,
        "\u{0455}\u{0435}\u{0433}\u{0475}\u{0435}\u{0433}",
        "! ",
    );
    refused(&mut new, "0bserver", "! name taken: ");
    refused(&mut new, "a1ice", "! name taken: ");
    refused(&mut new, "ａｌｉｃｅ", "! name taken: ");
    // Still welcome: Chinese, accents, a few combining marks, digits.
    for ok in ["张三", "José", "e\u{0301}\u{0323}va", "bob_2", "Ωμέγα"] {
        let mut peer = Peer::connect(chat.addr());
        peer.send(ok);
        let welcome = peer.line();
        assert!(
            welcome.starts_with(&format!("* welcome {ok}, online: ")),
            "[{backend}] {ok:?}: {welcome:?}"
        );
    }
}

/// Runs chat_client against `addr` with `input` on stdin (kept open while
/// `hold` lasts), and returns its exit code and stderr.
fn chat_client_until_exit(
    addr: &str,
    backend: &str,
    input: &[u8],
    hold: Duration,
) -> (i32, String) {
    let mut client = Command::new(common::example_path("chat_client"))
        .args(["--addr", addr, "--backend", backend])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chat_client");
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(hold);
        drop(stdin);
    });
    let deadline = Instant::now() + SOON + hold;
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "chat_client did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = holder.join();
    (status.code().unwrap_or(-1), stderr)
}

fn chat_client_says_when_the_server_closes_and_exits_1_unless_it_shut_down(backend: Backend) {
    // The server closes the connection: a login timeout.
    let chat = server(backend, &["--login-timeout", "0.3"]);
    let (code, stderr) = chat_client_until_exit(
        &chat.listening_on,
        backend.name(),
        b"",
        Duration::from_secs(3),
    );
    assert_eq!(code, 1, "[{backend}] {stderr}");
    assert!(
        stderr.contains("* connection closed by server"),
        "[{backend}] {stderr:?}"
    );
    // The server shuts down: exit 0, and it says so too.
    let addr = chat.listening_on.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        chat.signal(libc::SIGTERM);
        chat
    });
    let (code, stderr) =
        chat_client_until_exit(&addr, backend.name(), b"dora\n", Duration::from_secs(3));
    let _ = stopper.join();
    assert_eq!(code, 0, "[{backend}] {stderr}");
    assert!(
        stderr.contains("* connection closed by server"),
        "[{backend}] {stderr:?}"
    );
}
