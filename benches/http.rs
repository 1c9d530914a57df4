//! HTTP: `http_server`'s engine against nginx under `wrk`
//! (docs/benchmarks.md, "HTTP: http_server versus nginx"). A driver, not
//! criterion (`harness = false`).
//!
//! Two servers, each its own process pinned to CPU 0, serving the same
//! folder with the same settings — one process, one worker, no access log,
//! keep-alive with no request limit, `sendfile` for large files:
//! - `ours`: `servers::http` (this binary re-executed as `--serve ROOT`),
//!   the engine of `http_server --quiet`, on the epoll backend;
//! - `nginx`: Debian's nginx with a configuration generated into a
//!   temporary folder (`worker_processes 1`, `master_process off`,
//!   `access_log off`, `keepalive_requests` unlimited, `sendfile on`),
//!   bound to 127.0.0.1 on a port chosen free.
//!
//! `wrk -t1 -c50`, pinned to CPU 1, drives four loads: `GET /hello.txt`
//! (6 bytes), `GET /` (the shipped 4 KiB `index.html`), `GET /big.bin`
//! (1 MiB), and `/hello.txt` pipelined 16 deep per connection (a wrk Lua
//! script). Rounds are interleaved (ours, nginx, ours, …); each round's
//! server CPU time comes from `/proc/<pid>/stat` (utime + stime) before and
//! after. Reported per load: median requests/s and server CPU ns per
//! request of each, and the median (min–max) of the per-round ratios.
//!
//! Profiles: `--quick` (3 rounds × 2 s, the default), `--full` (7 rounds ×
//! 5 s; wrk takes whole seconds), `--smoke` (correctness only: every body byte-compared on both
//! servers, a pipelined burst answered in order, one short wrk run with no
//! errors). Output: `http.md` and `http.csv` in `target/bench-results/`
//! (`--out DIR`). Exits 1 when a response was wrong; a missing `wrk` or
//! `nginx` is said and skipped.
//!
//! Run: `cargo bench -p reactor-bench --bench http -- --full` (or
//! `benches/run.sh`).

use reactor_bench as common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;
/// wrk connections.
const CONNS: usize = 50;
/// Requests per write in the pipelined load.
const DEPTH: usize = 16;

/// One load: what wrk asks for, and the target ratio ours/nginx.
struct Load {
    name: &'static str,
    path: &'static str,
    pipelined: bool,
    /// requests/s ours ÷ nginx at least this.
    target: f64,
}

const LOADS: [Load; 4] = [
    Load {
        name: "hello.txt (6 B)",
        path: "/hello.txt",
        pipelined: false,
        target: 1.5,
    },
    Load {
        name: "/ (4 KiB index.html)",
        path: "/",
        pipelined: false,
        target: 1.3,
    },
    Load {
        name: "big.bin (1 MiB)",
        path: "/big.bin",
        pipelined: false,
        target: 1.0,
    },
    Load {
        name: "hello.txt pipelined ×16",
        path: "/hello.txt",
        pipelined: true,
        target: 1.5,
    },
];

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// `--serve ROOT`: our server, in this process.
fn serve_ours(root: &str) -> ! {
    common::pin_to_cpu(SERVER_CPU);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die(&format!("bind: {e}")));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| die(&e.to_string()));
    println!("listening on {addr} (server: ours)");
    let _ = std::io::stdout().flush();
    let stop = reactor::Signals::new(&[libc::SIGTERM, libc::SIGINT])
        .unwrap_or_else(|e| die(&e.to_string()));
    let mut config = servers::http::Config::new(PathBuf::from(root));
    config.quiet = true;
    match servers::http::serve(listener, reactor::Backend::Epoll, stop, &config) {
        Ok(()) => std::process::exit(0),
        Err(e) => die(&e.to_string()),
    }
}

fn die(msg: &str) -> ! {
    eprintln!("http bench: {msg}");
    std::process::exit(2)
}

/// A running server.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn ours(root: &Path) -> Server {
        let (child, addr) = common::spawn_self_server(root.as_os_str())
            .unwrap_or_else(|e| die(&format!("our server: {e}")));
        Server {
            name: "ours",
            child,
            addr,
        }
    }

    /// nginx on `root`, configured in `dir`, pinned to the server CPU.
    fn nginx(root: &Path, dir: &Path) -> Server {
        // A free port: bound by the kernel, released, handed to nginx.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| die(&format!("free port: {e}")));
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\nmaster_process off;\n\
             error_log {d}/error.log;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n\
             keepalive_requests 4294967295;\n  keepalive_timeout 75s;\n\
             include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n\
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             server {{ listen 127.0.0.1:{port}; root {}; index index.html; }}\n}}\n",
            root.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap_or_else(|e| die(&format!("nginx.conf: {e}")));
        // taskset execs nginx: the pid is nginx's.
        let child = Command::new("taskset")
            .args(["-c", &SERVER_CPU.to_string(), "nginx", "-c"])
            .arg(&conf_path)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| die(&format!("spawn nginx: {e}")));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                die("nginx did not start listening within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            name: "nginx",
            child,
            addr,
        }
    }

    /// utime + stime, in seconds.
    fn cpu_seconds(&self) -> f64 {
        common::cpu_seconds(self.child.id())
    }

    fn stop(mut self) {
        common::stop_child(&mut self.child);
    }
}

// ---------------------------------------------------------------------------
// The site, and correctness
// ---------------------------------------------------------------------------

/// The served folder: hello.txt, the shipped index.html, a 1 MiB file.
fn make_site(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap_or_else(|e| die(&format!("{}: {e}", root.display())));
    std::fs::write(root.join("hello.txt"), "hello\n").unwrap_or_else(|e| die(&e.to_string()));
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../static/index.html");
    std::fs::copy(&shipped, root.join("index.html"))
        .unwrap_or_else(|e| die(&format!("{}: {e}", shipped.display())));
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).unwrap_or_else(|e| die(&e.to_string()));
    root
}

/// Reads one response's body off `reader` (status must be 200).
fn read_response(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    if !line.starts_with("HTTP/1.1 200") {
        return Err(format!("status line {line:?}"));
    }
    let mut length = None;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).map_err(|e| e.to_string())?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length.ok_or("no Content-Length")?];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}

/// Every load's body, compared byte for byte, then a pipelined burst.
fn check(server: &Server, root: &Path) -> Result<(), String> {
    let stream = TcpStream::connect(server.addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    for (path, file) in [
        ("/hello.txt", "hello.txt"),
        ("/", "index.html"),
        ("/big.bin", "big.bin"),
    ] {
        let expected = std::fs::read(root.join(file)).map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
        reader
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let body = read_response(&mut reader)?;
        if body != expected {
            return Err(format!(
                "{path}: {} bytes, not the file's {}",
                body.len(),
                expected.len()
            ));
        }
    }
    let burst = "GET /hello.txt HTTP/1.1\r\nHost: bench\r\n\r\n".repeat(DEPTH);
    reader
        .get_mut()
        .write_all(burst.as_bytes())
        .map_err(|e| e.to_string())?;
    for i in 0..DEPTH {
        if read_response(&mut reader)? != b"hello\n" {
            return Err(format!("pipelined response {i} is wrong"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// wrk
// ---------------------------------------------------------------------------

/// What one wrk run reported.
#[derive(Debug, Default, Clone)]
struct Wrk {
    requests: f64,
    seconds: f64,
    rate: f64,
    bytes_per_sec: f64,
    p99_ms: f64,
    errors: String,
}

/// Runs wrk on the client CPU against `url` for `secs`.
fn wrk(url: &str, secs: f64, conns: usize, script: Option<&Path>) -> Result<Wrk, String> {
    let mut command = Command::new("taskset");
    command.args(["-c", &CLIENT_CPU.to_string(), "wrk", "-t1", "--latency"]);
    command
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", secs.round().max(1.0)));
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let out = command.arg(url).output().map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut result = Wrk::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [n, "requests", "in", secs, ..] => {
                result.requests = n.parse().unwrap_or(0.0);
                result.seconds = secs
                    .trim_end_matches(',')
                    .trim_end_matches('s')
                    .parse()
                    .unwrap_or(0.0);
            }
            ["Requests/sec:", rate] => result.rate = rate.parse().unwrap_or(0.0),
            ["Transfer/sec:", amount] => result.bytes_per_sec = bytes(amount),
            ["99%", latency] => result.p99_ms = millis(latency),
            ["Non-2xx", ..] | ["Socket", "errors:", ..] => {
                result.errors.push_str(line.trim());
                result.errors.push(' ');
            }
            _ => {}
        }
    }
    // Socket errors: read errors are connections wrk itself closed at the
    // end of the run; only what counts as a wrong answer is an error.
    if result.errors.contains("Non-2xx") {
        return Err(format!("wrong responses: {}", result.errors));
    }
    Ok(result)
}

/// `12.34MB` → bytes.
fn bytes(amount: &str) -> f64 {
    let split = amount
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(amount.len());
    let (n, unit) = amount.split_at(split);
    let n: f64 = n.parse().unwrap_or(0.0);
    n * match unit {
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    }
}

/// `1.23ms` / `456.00us` / `1.2s` → milliseconds.
fn millis(latency: &str) -> f64 {
    let split = latency
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(latency.len());
    let (n, unit) = latency.split_at(split);
    let n: f64 = n.parse().unwrap_or(0.0);
    n * match unit {
        "us" => 0.001,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => 1.0,
    }
}

/// The wrk script that sends `DEPTH` requests per write.
fn pipeline_script(dir: &Path, path: &str) -> PathBuf {
    let script = dir.join("pipeline.lua");
    let lua = format!(
        "-- {DEPTH} requests per write, answered in order (wrk counts each response).\n\
         init = function(args)\n  local r = {{}}\n  for i = 1, {DEPTH} do\n    \
         r[i] = wrk.format(nil, \"{path}\")\n  end\n  req = table.concat(r)\nend\n\
         request = function()\n  return req\nend\n"
    );
    std::fs::write(&script, lua).unwrap_or_else(|e| die(&e.to_string()));
    script
}

// ---------------------------------------------------------------------------
// Rounds and the report
// ---------------------------------------------------------------------------

/// One round of one load on one server.
struct Row {
    load: usize,
    round: usize,
    server: &'static str,
    wrk: Wrk,
    cpu_ns_per_req: f64,
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        serve_ours(args.get(i + 1).map_or("", String::as_str));
    }
    let has = |f: &str| args.iter().any(|a| a == f);
    let (profile, rounds, secs) = if has("--full") {
        ("full", 7, 5.0)
    } else if has("--smoke") {
        ("smoke", 0, 1.0)
    } else {
        ("quick", 3, 2.0)
    };
    let out_dir = PathBuf::from(
        args.iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1))
            .map_or("target/bench-results", String::as_str),
    );
    std::fs::create_dir_all(&out_dir)
        .unwrap_or_else(|e| die(&format!("{}: {e}", out_dir.display())));
    println!("{}", common::env_header());
    let work = std::env::temp_dir().join(format!("reactor-bench-http-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap_or_else(|e| die(&e.to_string()));
    let root = make_site(&work);

    let mut servers = vec![Server::ours(&root)];
    if have("nginx") && have("taskset") {
        servers.push(Server::nginx(&root, &work));
    } else {
        eprintln!("SKIPPED the nginx peer: nginx (or taskset) is not installed");
    }
    let mut failures = 0;
    for server in &servers {
        match check(server, &root) {
            Ok(()) => eprintln!(
                "{}: every body byte-exact, {DEPTH} pipelined answered in order",
                server.name
            ),
            Err(e) => {
                eprintln!("{}: CORRECTNESS FAILURE: {e}", server.name);
                failures += 1;
            }
        }
    }
    let wrk_ok = have("wrk");
    if !wrk_ok {
        eprintln!("SKIPPED the wrk loads: wrk is not installed");
    }
    let script = pipeline_script(&work, "/hello.txt");
    let mut rows = Vec::new();
    if wrk_ok && profile == "smoke" {
        for server in &servers {
            let url = format!("http://{}/hello.txt", server.addr);
            match wrk(&url, secs, 2, Some(&script)) {
                Ok(w) if w.requests > 0.0 => {
                    eprintln!("{}: wrk smoke run, {} responses", server.name, w.requests)
                }
                Ok(_) => {
                    eprintln!("{}: CORRECTNESS FAILURE: wrk got no responses", server.name);
                    failures += 1;
                }
                Err(e) => {
                    eprintln!("{}: CORRECTNESS FAILURE: {e}", server.name);
                    failures += 1;
                }
            }
        }
    }
    if wrk_ok && profile != "smoke" {
        for (l, load) in LOADS.iter().enumerate() {
            eprintln!("{}: {rounds} rounds × {secs} s, -c{CONNS}", load.name);
            for round in 0..rounds {
                for server in &servers {
                    let url = format!("http://{}{}", server.addr, load.path);
                    let before = server.cpu_seconds();
                    let result = wrk(
                        &url,
                        secs,
                        CONNS,
                        load.pipelined.then_some(script.as_path()),
                    );
                    let cpu = server.cpu_seconds() - before;
                    match result {
                        Ok(w) => {
                            let cpu_ns_per_req = cpu * 1e9 / w.requests.max(1.0);
                            eprintln!(
                                "  round {round} {:>5}: {:>9.0} req/s {:>8.1} MB/s {:>7.0} ns CPU/req  p99 {:.2} ms",
                                server.name,
                                w.rate,
                                w.bytes_per_sec / 1048576.0,
                                cpu_ns_per_req,
                                w.p99_ms
                            );
                            rows.push(Row {
                                load: l,
                                round,
                                server: server.name,
                                wrk: w,
                                cpu_ns_per_req,
                            });
                        }
                        Err(e) => {
                            eprintln!("  round {round} {}: CORRECTNESS FAILURE: {e}", server.name);
                            failures += 1;
                        }
                    }
                }
            }
        }
    }
    for server in servers {
        server.stop();
    }
    let _ = std::fs::remove_dir_all(&work);
    if profile != "smoke" && !rows.is_empty() {
        let report = report(&rows, profile, rounds, secs);
        println!("{report}");
        let _ = std::fs::write(out_dir.join("http.md"), &report);
        let mut csv = String::from(
            "load,round,server,requests_per_sec,bytes_per_sec,cpu_ns_per_req,p99_ms\n",
        );
        for r in &rows {
            csv.push_str(&format!(
                "{},{},{},{:.0},{:.0},{:.0},{:.3}\n",
                LOADS[r.load].name,
                r.round,
                r.server,
                r.wrk.rate,
                r.wrk.bytes_per_sec,
                r.cpu_ns_per_req,
                r.wrk.p99_ms
            ));
        }
        let _ = std::fs::write(out_dir.join("http.csv"), csv);
    }
    if failures > 0 {
        eprintln!("{failures} correctness failure(s)");
        std::process::exit(1);
    }
}

/// The markdown table: per load, medians and per-round ratios.
fn report(rows: &[Row], profile: &str, rounds: usize, secs: f64) -> String {
    let mut md = format!(
        "profile {profile}: {rounds} interleaved rounds × {secs} s, wrk -t1 -c{CONNS} on cpu{CLIENT_CPU}, \
         servers on cpu{SERVER_CPU}\n\n\
         | load | ours req/s | nginx req/s | ratio (min–max) | target | ours CPU ns/req | nginx CPU ns/req | CPU ratio (min–max) | ours p99 ms | nginx p99 ms |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    );
    for (l, load) in LOADS.iter().enumerate() {
        let of = |server: &str| -> Vec<&Row> {
            rows.iter()
                .filter(|r| r.load == l && r.server == server)
                .collect()
        };
        let (ours, nginx) = (of("ours"), of("nginx"));
        let med = |rs: &[&Row], f: &dyn Fn(&Row) -> f64| {
            let mut v: Vec<f64> = rs.iter().map(|r| f(r)).collect();
            common::median(&mut v)
        };
        let ratios = |f: &dyn Fn(&Row) -> f64| -> Option<(f64, f64, f64)> {
            let mut v: Vec<f64> = ours
                .iter()
                .filter_map(|o| {
                    nginx
                        .iter()
                        .find(|n| n.round == o.round)
                        .map(|n| f(o) / f(n))
                })
                .collect();
            if v.is_empty() {
                return None;
            }
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some((common::median(&mut v), min, max))
        };
        let show = |r: Option<(f64, f64, f64)>| {
            r.map_or("–".to_owned(), |(m, lo, hi)| {
                format!("{m:.2}× ({lo:.2}–{hi:.2})")
            })
        };
        let rate = ratios(&|r| r.wrk.rate);
        let cpu = ratios(&|r| r.cpu_ns_per_req);
        let verdict = match rate {
            Some((_, lo, _)) if lo >= load.target => "met",
            Some((_, _, hi)) if hi < load.target => "MISS",
            Some(_) => "inconclusive",
            None => "–",
        };
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} | {} | ≥ {:.1}× {verdict} | {:.0} | {:.0} | {} | {:.2} | {:.2} |\n",
            load.name,
            med(&ours, &|r| r.wrk.rate),
            med(&nginx, &|r| r.wrk.rate),
            show(rate),
            load.target,
            med(&ours, &|r| r.cpu_ns_per_req),
            med(&nginx, &|r| r.cpu_ns_per_req),
            show(cpu),
            med(&ours, &|r| r.wrk.p99_ms),
            med(&nginx, &|r| r.wrk.p99_ms),
        ));
    }
    md
}
