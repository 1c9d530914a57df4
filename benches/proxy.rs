//! Proxy throughput: `examples/proxy.rs` (ours, epoll) against
//! `peers/mio_proxy.rs` (mio), the same program on two APIs.
//!
//! Each round opens `conns` connections through the proxy to an upstream
//! that echoes (a thread per connection, in this process), and pushes
//! `bytes` through each: a writer thread sends them and half-closes, a
//! reader takes the echo until end of file and checks every byte. So each
//! byte crosses the proxy twice and the half-close is forwarded both ways.
//! Rounds alternate ours, mio, ours, …; the table gives medians of MB/s
//! (bytes sent by the clients per wall second) and of the proxy's CPU time
//! per MB, and the ours/mio ratio of each.
//!
//! `cargo bench -p reactor-bench --bench proxy -- [--quick|--full|--smoke] [--out DIR]`
//! (benches/run.sh builds `--example proxy` first; without it the bench
//! says so and skips).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reactor_bench as common;

/// One proxy process under test.
struct Proxy {
    kind: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Proxy {
    fn start(kind: &'static str, exe: &PathBuf, upstream: SocketAddr) -> Proxy {
        let mut command = Command::new(exe);
        command.args(["--addr", "127.0.0.1:0", "--to", &upstream.to_string()]);
        if kind == "ours" {
            command.args(["--backend", "epoll"]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap_or_else(|e| die(&format!("spawn {}: {e}", exe.display())));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| die(&format!("proxy {kind}: {e}")));
        let addr = line
            .split_whitespace()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| die(&format!("proxy {kind} said {line:?}")));
        Proxy { kind, child, addr }
    }

    /// utime + stime of the proxy process, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (tick(11).unwrap_or(0) + tick(12).unwrap_or(0)) as f64 / hz
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An upstream that echoes every connection, a thread each, until EOF.
fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die(&e.to_string()));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| die(&e.to_string()));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let (mut stream, mut buf) = (stream, vec![0; 64 * 1024]);
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) if stream.write_all(&buf[..n]).is_err() => break,
                        Ok(_) => {}
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// The byte at `offset` of every stream: cheap to make and to check.
fn byte_at(offset: usize) -> u8 {
    (offset.wrapping_mul(31) >> 3) as u8
}

/// Pushes `bytes` through each of `conns` connections and takes the echo;
/// returns the wall time, or why the round failed.
fn round(proxy: &Proxy, conns: usize, bytes: usize) -> Result<Duration, String> {
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..conns {
        let stream = TcpStream::connect(proxy.addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let chunk: Vec<u8> = (0..64 * 1024).map(byte_at).collect();
            let mut sent = 0;
            while sent < bytes {
                let n = chunk.len().min(bytes - sent);
                // 64 KiB is a multiple of the pattern's period (256 × 8).
                writer.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
                sent += n;
            }
            writer.shutdown(Shutdown::Write).map_err(|e| e.to_string())
        }));
        let mut reader = stream;
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let (mut got, mut buf) = (0, vec![0; 64 * 1024]);
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Some(i) = (0..n).find(|&i| buf[i] != byte_at(got + i)) {
                            return Err(format!("byte {} differs", got + i));
                        }
                        got += n;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read after {got} bytes: {e}")),
                }
            }
            if got == bytes {
                Ok(())
            } else {
                Err(format!("{got} bytes back of {bytes}"))
            }
        }));
    }
    for thread in threads {
        thread.join().map_err(|_| "a client thread panicked")??;
    }
    Ok(start.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn die(msg: &str) -> ! {
    eprintln!("proxy bench: {msg}");
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    // (name, rounds, [(conns, MiB per connection)])
    let (name, rounds, cases): (&str, usize, Vec<(usize, usize)>) = if has("--full") {
        ("full", 7, vec![(1, 256), (8, 64), (64, 8)])
    } else if has("--smoke") {
        ("smoke", 1, vec![(1, 4), (8, 1)])
    } else {
        ("quick", 3, vec![(1, 64), (8, 16)])
    };
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| "target/bench-results".to_owned(), Clone::clone);
    println!("{}", common::env_header());
    let ours = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("examples").join("proxy")))
        .filter(|path| path.exists());
    let Some(ours) = ours else {
        println!("skipped: build examples/proxy first (cargo build --release --example proxy)");
        return;
    };
    let mio = PathBuf::from(env!("CARGO_BIN_EXE_mio_proxy"));
    let upstream = echo_upstream();
    let proxies = [
        Proxy::start("ours", &ours, upstream),
        Proxy::start("mio", &mio, upstream),
    ];
    let mut md = format!(
        "## Proxy throughput ({name}: {rounds} interleaved rounds; MB sent by the clients per second, each byte echoed back through the proxy)\n\n\
         | conns | MiB each | ours MB/s | mio MB/s | ours/mio | CPU s/GB ours · mio | CPU ours/mio |\n|---|---|---|---|---|---|---|\n"
    );
    let mut failures = 0;
    for &(conns, mib) in &cases {
        let bytes = mib << 20;
        let mut rates = [Vec::new(), Vec::new()];
        let mut cpu = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (i, proxy) in proxies.iter().enumerate() {
                let cpu0 = proxy.cpu_seconds();
                match round(proxy, conns, bytes) {
                    Ok(took) => {
                        let total = (conns * bytes) as f64;
                        rates[i].push(total / 1e6 / took.as_secs_f64());
                        cpu[i].push((proxy.cpu_seconds() - cpu0) / (total / 1e9));
                    }
                    Err(e) => {
                        eprintln!("{} conns={conns}: {e}", proxy.kind);
                        failures += 1;
                    }
                }
            }
        }
        let [ro, rm] = rates.map(median);
        let [co, cm] = cpu.map(median);
        md.push_str(&format!(
            "| {conns} | {mib} | {ro:.0} | {rm:.0} | {:.2} | {co:.2} · {cm:.2} | {:.2} |\n",
            ro / rm,
            co / cm
        ));
    }
    println!("{md}");
    let _ = std::fs::create_dir_all(&out_dir);
    let _ = std::fs::write(format!("{out_dir}/proxy.md"), &md);
    if failures > 0 {
        die(&format!("{failures} round(s) failed"));
    }
}
