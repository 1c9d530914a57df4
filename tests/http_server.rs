//! `http_server` end to end, as people use it: the real binary on port 0
//! serving a copy of the shipped site, driven by real clients — `curl`,
//! Python's `http.client`, headless Chromium — and by raw sockets for what
//! no polite client sends (limits, slow and malformed requests). Every
//! timeout is shrunk with its flag, so nothing here waits seconds for a
//! limit. A test whose tool is missing says so and is skipped.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::runner::{Runner, skip};
use common::{Example, SOON, cpu_share, have_program, limit_nofile, require_program, rss_kib};
use reactor::Backend;

fn main() {
    let mut runner = Runner::from_args();
    runner.per_backend(
        "curl_gets_the_site_over_one_keep_alive_connection",
        curl_gets_the_site_over_one_keep_alive_connection,
    );
    runner.per_backend("curl_head_and_range_requests", curl_head_and_range_requests);
    runner.per_backend(
        "traversal_attempts_are_404_however_they_are_spelled",
        traversal_attempts_are_404_however_they_are_spelled,
    );
    runner.per_backend(
        "python_http_client_keeps_alive_and_revalidates",
        python_http_client_keeps_alive_and_revalidates,
    );
    runner.per_backend(
        "chromium_renders_the_page_and_fetches_its_stylesheet_and_image",
        chromium_renders_the_page_and_fetches_its_stylesheet_and_image,
    );
    runner.per_backend(
        "pipelined_requests_are_answered_in_order",
        pipelined_requests_are_answered_in_order,
    );
    runner.per_backend(
        "each_limit_answers_its_status",
        each_limit_answers_its_status,
    );
    runner.per_backend(
        "a_small_request_body_is_read_and_dropped_and_the_connection_kept",
        a_small_request_body_is_read_and_dropped_and_the_connection_kept,
    );
    runner.per_backend(
        "a_slow_head_gets_408_and_an_idle_connection_is_closed",
        a_slow_head_gets_408_and_an_idle_connection_is_closed,
    );
    runner.per_backend(
        "past_max_clients_a_connection_gets_503",
        past_max_clients_a_connection_gets_503,
    );
    runner.per_backend("range_and_if_modified_since", range_and_if_modified_since);
    runner.per_backend(
        "directories_redirect_then_serve_index_or_an_escaped_listing",
        directories_redirect_then_serve_index_or_an_escaped_listing,
    );
    runner.per_backend(
        "http_1_0_closes_unless_asked_to_keep_alive",
        http_1_0_closes_unless_asked_to_keep_alive,
    );
    runner.per_backend(
        "a_slow_reader_of_a_sparse_gigabyte_leaves_others_served_and_memory_flat",
        a_slow_reader_of_a_sparse_gigabyte_leaves_others_served_and_memory_flat,
    );
    runner.per_backend(
        "sigterm_and_sigint_stop_it_with_status_0",
        sigterm_and_sigint_stop_it_with_status_0,
    );
    runner.per_backend(
        "workers_share_the_listener_or_reuse_the_port_and_stop_together",
        workers_share_the_listener_or_reuse_the_port_and_stop_together,
    );
    runner.per_backend(
        "out_of_descriptors_it_keeps_serving_without_spinning_and_recovers",
        out_of_descriptors_it_keeps_serving_without_spinning_and_recovers,
    );
    runner.test("help_and_bad_arguments", help_and_bad_arguments);
    runner.finish()
}

// ------------------------------------------------------------ harness

/// The shipped `static/` folder.
fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("static")
}

/// A temporary copy of the shipped site, plus what the tests need: a
/// folder without an index, a symlink leaving the root, a secret beside it.
/// Removed when dropped.
struct Site {
    dir: PathBuf,
}

impl Site {
    fn new(name: &str) -> Site {
        let dir = std::env::temp_dir().join(format!("http-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::create_dir_all(root.join("list")).unwrap();
        for entry in fs::read_dir(shipped()).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), root.join(entry.file_name())).unwrap();
        }
        fs::write(root.join("sub/index.html"), "<p>sub index</p>\n").unwrap();
        fs::write(root.join("list/<b>&.txt"), "x").unwrap();
        fs::write(root.join("list/plain.txt"), "x").unwrap();
        fs::write(dir.join("secret.txt"), "secret\n").unwrap();
        std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("leak.txt")).unwrap();
        Site { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Starts `http_server` on `root` with the backend and `extra` flags.
#[track_caller]
fn start(backend: Backend, root: &Path, extra: &[&str]) -> Example {
    let root = root.to_str().unwrap();
    let mut args = vec![
        "--addr",
        "127.0.0.1:0",
        "--backend",
        backend.name(),
        "--root",
        root,
    ];
    args.extend_from_slice(extra);
    Example::start("http_server", &args)
}

/// One response, as read off the wire.
#[derive(Debug)]
struct Response {
    status: u16,
    /// Header names in lower case.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A raw connection that writes bytes and reads responses.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    #[track_caller]
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(SOON)).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// GET `path` (HTTP/1.1, Host given) and read the response.
    #[track_caller]
    fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.response(false)
    }

    /// Reads one response; `head` says the request was HEAD (no body).
    #[track_caller]
    fn response(&mut self, head: bool) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header name: value");
            headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
        }
        let length: usize = headers
            .get("content-length")
            .expect("every response has Content-Length")
            .parse()
            .unwrap();
        let mut body = vec![0; if head || status == 304 { 0 } else { length }];
        self.reader.read_exact(&mut body).expect("body");
        Response {
            status,
            headers,
            body,
        }
    }

    /// Whether the server closed the connection (EOF, or a reset) within
    /// `wait`; false if it is still open (or sent bytes instead).
    fn closed_within(&mut self, wait: Duration) -> bool {
        self.reader.get_ref().set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0u8; 1];
        let closed = match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.reader.get_ref().set_read_timeout(Some(SOON)).unwrap();
        closed
    }
}

/// Waits for an access-log line containing `needle`.
#[track_caller]
fn expect_log(server: &Example, needle: &str) -> String {
    server.expect_line(&format!("containing {needle:?}"), |l| l.contains(needle))
}

/// Runs `curl` with `args` (the test is skipped where curl is missing).
fn curl(args: &[&str]) -> Output {
    require_program("curl");
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

// -------------------------------------------------------------- curl

fn curl_gets_the_site_over_one_keep_alive_connection(backend: Backend) {
    let site = Site::new(&format!("curl-{backend}"));
    let server = start(backend, &site.root(), &[]);
    let base = format!("http://{}", server.addr());
    let out = curl(&[
        "--verbose",
        &format!("{base}/"),
        "--next",
        &format!("{base}/hello.txt"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = fs::read(shipped().join("index.html")).unwrap();
    assert_eq!(out.stdout, [&index[..], b"hello\n"].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Re-using existing connection"), "{stderr}");
    assert!(
        stderr.contains("< Content-Type: text/html; charset=utf-8"),
        "{stderr}"
    );
    assert!(stderr.contains("< Server: reactor-http"), "{stderr}");
    assert!(stderr.contains("< Date: "), "{stderr}");
    let line = expect_log(&server, "\"GET / HTTP/1.1\" 200 ");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.ends_with(&format!(" 200 {}", index.len())), "{line}");
    expect_log(&server, "\"GET /hello.txt HTTP/1.1\" 200 6");
}

fn curl_head_and_range_requests(backend: Backend) {
    let site = Site::new(&format!("curl-range-{backend}"));
    let server = start(backend, &site.root(), &[]);
    let url = format!("http://{}/hello.txt", server.addr());
    let head = curl(&["-I", &url]);
    let head = String::from_utf8_lossy(&head.stdout).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 6\r\n"), "{head}");
    assert!(head.contains("Last-Modified: "), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body after HEAD: {head:?}");
    let part = curl(&["--range", "1-3", "-D", "-", &url]);
    let part = String::from_utf8_lossy(&part.stdout).into_owned();
    assert!(
        part.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{part}"
    );
    assert!(part.contains("Content-Range: bytes 1-3/6\r\n"), "{part}");
    assert!(part.ends_with("\r\n\r\nell"), "{part:?}");
    expect_log(&server, "\"HEAD /hello.txt HTTP/1.1\" 200 -");
    expect_log(&server, "\"GET /hello.txt HTTP/1.1\" 206 3");
}

fn traversal_attempts_are_404_however_they_are_spelled(backend: Backend) {
    let site = Site::new(&format!("traversal-{backend}"));
    let server = start(backend, &site.root(), &[]);
    let base = format!("http://{}", server.addr());
    let attempts = [
        "/../secret.txt",
        "/../../../../etc/passwd",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/../../secret.txt",
        "/.%2e/secret.txt",
        "/hello.txt%00.html",
        "/leak.txt",
    ];
    require_program("curl");
    for path in attempts {
        let out = curl(&[
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}{path}"),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "404", "{path}");
    }
    // The same over a raw socket, byte for byte as written.
    let mut client = Client::connect(server.addr());
    for path in attempts {
        let response = client.get(path);
        assert_eq!(response.status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&response.body).contains("secret"));
    }
    // A `..` that stays inside the root is only a longer name.
    assert_eq!(client.get("/sub/../hello.txt").body, b"hello\n");
}

// ------------------------------------------------------------ Python

fn python_http_client_keeps_alive_and_revalidates(backend: Backend) {
    require_program("python3");
    let site = Site::new(&format!("python-{backend}"));
    let server = start(backend, &site.root(), &[]);
    let script = r#"
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port), timeout=5)
c.request("GET", "/")
r = c.getresponse(); body = r.read()
assert r.status == 200, r.status
assert r.getheader("Content-Type") == "text/html; charset=utf-8"
assert int(r.getheader("Content-Length")) == len(body)
assert r.getheader("Server") == "reactor-http" and r.getheader("Date")
sock = c.sock
c.request("GET", "/hello.txt")
r = c.getresponse()
assert r.read() == b"hello\n"
assert c.sock is sock, "the connection was not kept alive"
c.request("GET", "/hello.txt", headers={"If-Modified-Since": r.getheader("Last-Modified")})
r = c.getresponse(); r.read()
assert r.status == 304, r.status
c.request("GET", "/missing.txt")
r = c.getresponse(); body = r.read()
assert r.status == 404 and b"404 Not Found" in body
c.request("DELETE", "/hello.txt")
r = c.getresponse(); r.read()
assert r.status == 405 and r.getheader("Allow") == "GET, HEAD"
print("ok")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &server.addr().to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    expect_log(&server, "\"DELETE /hello.txt HTTP/1.1\" 405 ");
}

// ---------------------------------------------------------- Chromium

/// The Chromium binary, if one is installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|p| have_program(p))
}

/// Headless Chromium's usual flags for a container run as root.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-extensions",
    "--virtual-time-budget=5000",
];

fn chromium_renders_the_page_and_fetches_its_stylesheet_and_image(backend: Backend) {
    let Some(browser) = chromium() else {
        skip("chromium is not installed");
    };
    let site = Site::new(&format!("chromium-{backend}"));
    let server = start(backend, &site.root(), &[]);
    let profile = site.dir.join("profile");
    let out = Command::new(browser)
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("http://{}/", server.addr()))
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("It works: served by the reactor"),
        "rendered DOM lacks the page's heading:\n{dom}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("<table>"), "{dom}");
    // The browser fetched what the page links to.
    expect_log(&server, "\"GET /style.css HTTP/1.1\" 200 ");
    expect_log(&server, "\"GET /reactor.png HTTP/1.1\" 200 ");
}

// ------------------------------------------------------------ raw HTTP

fn pipelined_requests_are_answered_in_order(backend: Backend) {
    let site = Site::new(&format!("pipeline-{backend}"));
    let server = start(backend, &site.root(), &["--quiet"]);
    let mut client = Client::connect(server.addr());
    let paths = ["/hello.txt", "/", "/missing", "/style.css"];
    let mut burst = Vec::new();
    for i in 0..16 {
        burst.extend_from_slice(
            format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", paths[i % 4]).as_bytes(),
        );
    }
    // HEAD in the middle: a head without a body must not shift the rest.
    burst.extend_from_slice(
        b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    client.send(&burst);
    for i in 0..16 {
        let response = client.response(false);
        match paths[i % 4] {
            "/hello.txt" => assert_eq!(response.body, b"hello\n", "response {i}"),
            "/missing" => assert_eq!(response.status, 404, "response {i}"),
            "/" => assert_eq!(
                response.header("content-type"),
                Some("text/html; charset=utf-8")
            ),
            _ => assert_eq!(
                response.header("content-type"),
                Some("text/css; charset=utf-8")
            ),
        }
    }
    let head = client.response(true);
    assert_eq!(head.status, 200);
    assert_eq!(client.response(false).body, b"hello\n");
    // More answers than the connection may queue (128 KiB): the server
    // stops reading, sends, then answers the rest, still in order.
    let index = fs::read(shipped().join("index.html")).unwrap();
    let mut burst = Vec::new();
    for i in 0..100 {
        let path = if i % 2 == 0 { "/" } else { "/hello.txt" };
        burst.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    client.send(&burst);
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..100 {
        let body = client.response(false).body;
        if i % 2 == 0 {
            assert_eq!(body, index, "response {i}");
        } else {
            assert_eq!(body, b"hello\n", "response {i}");
        }
    }
}

/// Sends `request` on a new connection; returns the response and whether
/// the server then closed the connection.
#[track_caller]
fn one_shot(addr: SocketAddr, request: &[u8]) -> (Response, bool) {
    let mut client = Client::connect(addr);
    client.send(request);
    let response = client.response(false);
    let closed = client.closed_within(SOON);
    (response, closed)
}

fn each_limit_answers_its_status(backend: Backend) {
    let site = Site::new(&format!("limits-{backend}"));
    let server = start(
        backend,
        &site.root(),
        &[
            "--max-head-bytes",
            "1024",
            "--max-headers",
            "10",
            "--max-body",
            "1000",
        ],
    );
    let addr = server.addr();
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(2000));
    let long_head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(1100)
    );
    let many: String = (0..11).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n");
    let cases: [(&str, &[u8], u16); 8] = [
        ("request line over the limit", long_line.as_bytes(), 414),
        ("headers over the limit", long_head.as_bytes(), 431),
        ("too many headers", many.as_bytes(), 431),
        (
            "a body over the limit",
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n",
            413,
        ),
        (
            "chunked request body",
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        ("garbage", b"\x01\x02 nonsense\r\n\r\n", 400),
        (
            "the HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            505,
        ),
        ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ];
    for (what, request, status) in cases {
        let (response, closed) = one_shot(addr, request);
        assert_eq!(response.status, status, "{what}");
        assert_eq!(response.header("connection"), Some("close"), "{what}");
        assert!(
            String::from_utf8_lossy(&response.body).contains(&status.to_string()),
            "{what}"
        );
        assert!(closed, "{what}: the connection stays open");
    }
    // A method other than GET/HEAD is refused, and the connection kept.
    let mut client = Client::connect(addr);
    client.send(b"PUT /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = client.response(false);
    assert_eq!(
        (response.status, response.header("allow")),
        (405, Some("GET, HEAD"))
    );
    assert_eq!(client.get("/hello.txt").body, b"hello\n");
    // A range starting past the end.
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=10-\r\n\r\n");
    let response = client.response(false);
    assert_eq!(
        (response.status, response.header("content-range")),
        (416, Some("bytes */6"))
    );
    expect_log(&server, "\" 414 ");
    expect_log(&server, "\"-\" 400 ");
}

fn a_small_request_body_is_read_and_dropped_and_the_connection_kept(backend: Backend) {
    let site = Site::new(&format!("body-{backend}"));
    let server = start(backend, &site.root(), &["--quiet"]);
    let mut client = Client::connect(server.addr());
    let body = vec![b'z'; 100_000];
    let mut request =
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n".to_vec();
    request.extend_from_slice(&body[..50_000]);
    client.send(&request);
    assert_eq!(client.response(false).body, b"hello\n");
    // The rest of the body arrives with the next request behind it.
    let mut rest = body[50_000..].to_vec();
    rest.extend_from_slice(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    client.send(&rest);
    assert_eq!(client.response(false).body, b"hello\n");
}

fn a_slow_head_gets_408_and_an_idle_connection_is_closed(backend: Backend) {
    let site = Site::new(&format!("slow-{backend}"));
    let server = start(
        backend,
        &site.root(),
        &[
            "--header-timeout",
            "0.3",
            "--idle-timeout",
            "0.6",
            "--linger",
            "0.5",
        ],
    );
    // Slowloris: a byte at a time, never finishing the head.
    let start = Instant::now();
    let mut slow = Client::connect(server.addr());
    let mut answered = None;
    for byte in b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-Slow: "
        .iter()
        .cycle()
        .take(200)
    {
        if slow.reader.get_mut().write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        if start.elapsed() > Duration::from_millis(1500) {
            break;
        }
        slow.reader.get_ref().set_nonblocking(true).unwrap();
        let ready = slow
            .reader
            .fill_buf()
            .map(|b| !b.is_empty())
            .unwrap_or(false);
        slow.reader.get_ref().set_nonblocking(false).unwrap();
        if ready {
            answered = Some(start.elapsed());
            break;
        }
    }
    let elapsed = answered.expect("no 408 while the head trickled in");
    assert!(
        elapsed >= Duration::from_millis(250),
        "408 too early: {elapsed:?}"
    );
    let response = slow.response(false);
    assert_eq!(response.status, 408);
    assert!(slow.closed_within(SOON), "closed after 408");
    // Keep-alive idle: served, then closed after the idle time, not before.
    let mut idle = Client::connect(server.addr());
    assert_eq!(idle.get("/hello.txt").status, 200);
    let served = Instant::now();
    assert!(
        !idle.closed_within(Duration::from_millis(300)),
        "closed before the idle timeout"
    );
    assert!(
        idle.closed_within(SOON),
        "not closed after the idle timeout"
    );
    assert!(
        served.elapsed() >= Duration::from_millis(500),
        "{:?}",
        served.elapsed()
    );
    expect_log(&server, "\"-\" 408 ");
}

fn past_max_clients_a_connection_gets_503(backend: Backend) {
    let site = Site::new(&format!("max-{backend}"));
    let server = start(backend, &site.root(), &["--max-clients", "3"]);
    let mut held: Vec<Client> = (0..3).map(|_| Client::connect(server.addr())).collect();
    for client in &mut held {
        assert_eq!(client.get("/hello.txt").status, 200);
    }
    let mut extra = Client::connect(server.addr());
    let response = extra.response(false);
    assert_eq!(response.status, 503);
    assert!(extra.closed_within(SOON));
    // The three are still served; once one leaves, a newcomer is too.
    assert_eq!(held[0].get("/hello.txt").status, 200);
    drop(held.pop());
    let deadline = Instant::now() + SOON;
    loop {
        let mut again = Client::connect(server.addr());
        again.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        if again.response(false).status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a freed slot was never given to a newcomer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    expect_log(&server, "\"-\" 503 ");
}

fn range_and_if_modified_since(backend: Backend) {
    let site = Site::new(&format!("cond-{backend}"));
    let server = start(backend, &site.root(), &["--quiet"]);
    let mut client = Client::connect(server.addr());
    let whole = client.get("/hello.txt");
    let modified = whole
        .header("last-modified")
        .expect("Last-Modified")
        .to_owned();
    for (range, status, body, content_range) in [
        ("bytes=0-1", 206, &b"he"[..], Some("bytes 0-1/6")),
        ("bytes=4-", 206, b"o\n", Some("bytes 4-5/6")),
        ("bytes=-3", 206, b"lo\n", Some("bytes 3-5/6")),
        ("bytes=2-100", 206, b"llo\n", Some("bytes 2-5/6")),
        ("bytes=0-1,3-4", 200, b"hello\n", None),
        ("bytes=6-", 416, b"", Some("bytes */6")),
    ] {
        client.send(
            format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: {range}\r\n\r\n").as_bytes(),
        );
        let response = client.response(false);
        assert_eq!(response.status, status, "{range}");
        if status != 416 {
            assert_eq!(response.body, body, "{range}");
        }
        assert_eq!(response.header("content-range"), content_range, "{range}");
    }
    client.send(
        format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {modified}\r\n\r\n")
            .as_bytes(),
    );
    let response = client.response(false);
    assert_eq!(response.status, 304);
    assert!(response.body.is_empty());
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n");
    assert_eq!(client.response(false).status, 200);
    // Still in step after a 304: the next answer is the next request's.
    assert_eq!(client.get("/hello.txt").body, b"hello\n");
}

fn directories_redirect_then_serve_index_or_an_escaped_listing(backend: Backend) {
    let site = Site::new(&format!("dirs-{backend}"));
    let server = start(backend, &site.root(), &["--quiet"]);
    let mut client = Client::connect(server.addr());
    let moved = client.get("/sub");
    assert_eq!(
        (moved.status, moved.header("location")),
        (301, Some("/sub/"))
    );
    assert_eq!(client.get("/sub/").body, b"<p>sub index</p>\n");
    let listing = client.get("/list/");
    assert_eq!(listing.status, 200);
    let page = String::from_utf8(listing.body).unwrap();
    assert!(page.contains(">&lt;b&gt;&amp;.txt</a>"), "{page}");
    assert!(page.contains("href=\"%3Cb%3E%26.txt\""), "{page}");
    assert!(!page.contains("<b>"), "{page}");
    assert!(page.contains(">plain.txt</a>"), "{page}");
}

fn http_1_0_closes_unless_asked_to_keep_alive(backend: Backend) {
    let site = Site::new(&format!("http10-{backend}"));
    let server = start(backend, &site.root(), &["--quiet"]);
    let (response, closed) = one_shot(server.addr(), b"GET /hello.txt HTTP/1.0\r\n\r\n");
    assert_eq!(response.body, b"hello\n");
    assert!(closed, "HTTP/1.0 without keep-alive stays open");
    let mut client = Client::connect(server.addr());
    client.send(b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let response = client.response(false);
    assert_eq!(response.header("connection"), Some("keep-alive"));
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let response = client.response(false);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.closed_within(SOON));
}

// ------------------------------------------------- large files, memory

fn a_slow_reader_of_a_sparse_gigabyte_leaves_others_served_and_memory_flat(backend: Backend) {
    const GIB: u64 = 1 << 30;
    let site = Site::new(&format!("gib-{backend}"));
    fs::File::create(site.root().join("big.bin"))
        .and_then(|f| f.set_len(GIB))
        .expect("create a sparse 1 GiB file");
    let server = start(backend, &site.root(), &["--quiet"]);
    let pid = server.pid();
    let mut reader = Client::connect(server.addr());
    reader.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert!(reader.reader.read_line(&mut head).unwrap() > 0, "{head}");
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {GIB}\r\n")),
        "{head}"
    );
    let rss_start = rss_kib(pid);
    // Slowly: 64 KiB every 10 ms while 1,000 small requests go through
    // on other connections.
    let others = std::thread::spawn({
        let addr = server.addr();
        move || {
            let started = Instant::now();
            let mut clients: Vec<Client> = (0..10).map(|_| Client::connect(addr)).collect();
            for i in 0..1000 {
                assert_eq!(clients[i % 10].get("/hello.txt").body, b"hello\n");
            }
            started.elapsed()
        }
    });
    let mut chunk = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    let mut rss_max = rss_start;
    while !others.is_finished() {
        let n = reader.reader.read(&mut chunk).unwrap();
        got += n as u64;
        rss_max = rss_max.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = others.join().unwrap();
    assert!(
        took < Duration::from_secs(20),
        "1,000 small requests took {took:?} beside the download"
    );
    // Then the rest at full speed: every byte arrives, and memory stays flat.
    let mut last_sample = Instant::now();
    loop {
        let n = reader.reader.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        assert!(chunk[..n].iter().all(|&b| b == 0));
        got += n as u64;
        if last_sample.elapsed() > Duration::from_millis(50) {
            rss_max = rss_max.max(rss_kib(pid));
            last_sample = Instant::now();
        }
        if got >= GIB {
            break;
        }
    }
    assert_eq!(got, GIB, "the whole file arrived");
    let growth = rss_max.saturating_sub(rss_start);
    assert!(
        growth < 8 * 1024,
        "server RSS grew {growth} KiB during a 1 GiB download"
    );
}

// -------------------------------------------------------------- signals

fn sigterm_and_sigint_stop_it_with_status_0(backend: Backend) {
    let site = Site::new(&format!("signals-{backend}"));
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut server = start(backend, &site.root(), &["--quiet"]);
        let mut client = Client::connect(server.addr());
        assert_eq!(client.get("/hello.txt").status, 200);
        server.signal(signal);
        let status = server.wait_exit(SOON);
        assert_eq!(status.code(), Some(0), "after signal {signal}");
        assert!(client.closed_within(SOON), "connections are closed");
    }
}

fn workers_share_the_listener_or_reuse_the_port_and_stop_together(backend: Backend) {
    let site = Site::new(&format!("workers-{backend}"));
    for extra in [&["--workers", "2"][..], &["--workers", "2", "--reuseport"]] {
        let mut args = vec!["--quiet"];
        args.extend_from_slice(extra);
        let mut server = start(backend, &site.root(), &args);
        for _ in 0..2 {
            server.expect_line("`worker <pid> started`", |l| l.ends_with(" started"));
        }
        // With --reuseport the parent only reserves the port; each worker
        // binds and listens on its own after `worker <pid> started` is
        // printed, so the first connections may be refused for a moment.
        let deadline = Instant::now() + SOON;
        while TcpStream::connect(server.addr()).is_err() {
            assert!(Instant::now() < deadline, "no worker listens ({extra:?})");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Several connections, each served by whichever worker took it.
        for _ in 0..8 {
            let mut client = Client::connect(server.addr());
            assert_eq!(client.get("/hello.txt").body, b"hello\n", "{extra:?}");
        }
        server.signal(libc::SIGTERM);
        assert_eq!(server.wait_exit(SOON).code(), Some(0), "{extra:?}");
    }
    // A supervisor killed outright takes its workers with it (they get
    // SIGTERM from the kernel): no orphan keeps serving the port.
    let mut server = start(backend, &site.root(), &["--quiet", "--workers", "2"]);
    let workers: Vec<i32> = (0..2)
        .map(|_| {
            let line = server.expect_line("`worker <pid> started`", |l| l.ends_with(" started"));
            line.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .expect("a pid")
        })
        .collect();
    server.signal(libc::SIGKILL);
    server.wait_exit(SOON);
    let deadline = Instant::now() + SOON;
    for pid in workers {
        // Gone, or a zombie waiting for whoever adopted it.
        while fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        }) {
            assert!(
                Instant::now() < deadline,
                "worker {pid} outlived its supervisor"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether `client` got an answer (true) or was closed unanswered.
fn answered(client: &mut Client) -> bool {
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    if !matches!(client.reader.fill_buf(), Ok(bytes) if !bytes.is_empty()) {
        return false;
    }
    client.response(false).body == b"hello\n"
}

/// Out of descriptors (`RLIMIT_NOFILE` 64): the clients it has are served,
/// the ones past the limit are closed at once, the loop does not spin, and
/// once descriptors free up newcomers are served again.
fn out_of_descriptors_it_keeps_serving_without_spinning_and_recovers(backend: Backend) {
    let site = Site::new(&format!("emfile-{backend}"));
    let root = site.root();
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--backend",
        backend.name(),
        "--quiet",
        "--root",
        root.to_str().unwrap(),
    ];
    let server = Example::start_with("http_server", &args, |command| limit_nofile(command, 64));
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..80 {
        let mut client = Client::connect(server.addr());
        if answered(&mut client) {
            held.push(client);
        } else {
            refused += 1;
        }
    }
    assert!(
        held.len() >= 40 && refused >= 10,
        "{} served, {refused} refused",
        held.len()
    );
    let cpu = cpu_share(server.pid(), Duration::from_secs(1));
    assert!(
        cpu < 0.05,
        "{:.0}% CPU while out of descriptors",
        cpu * 100.0
    );
    for client in &mut held {
        assert!(answered(client), "a held client is no longer served");
    }
    held.truncate(held.len() - 10);
    let deadline = Instant::now() + SOON;
    while !answered(&mut Client::connect(server.addr())) {
        assert!(
            Instant::now() < deadline,
            "no newcomer served after descriptors freed up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn help_and_bad_arguments() {
    let out = Command::new(common::example_path("http_server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--root",
        "--workers",
        "--max-clients",
        "--header-timeout",
        "--quiet",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    let out = Command::new(common::example_path("http_server"))
        .args(["--header-timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("soon"));
}
