//! `struct_recv` / `struct_send` run as a user runs them, on every backend:
//! the course's own `struct_send.py` against `struct_recv`, records split
//! across reads and coalesced in one, garbage and partial records checked
//! against CPython's output (docs/reliability.md#hostile-binary-records),
//! bad formats, and signals.
//!
//! A `harness = false` binary run by the shared runner (tests/common/runner.rs),
//! so that the tests needing python3 are counted as skipped where it is not
//! installed.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::runner::Runner;
use common::{Example, Rng, SOON, example_path};
use reactor::Backend;
use reactor::codec::{Struct, Value};

fn main() {
    let mut runner = Runner::from_args();
    runner.per_backend(
        "the_courses_struct_send_py_works_unchanged_but_for_the_address",
        the_courses_struct_send_py_works_unchanged_but_for_the_address,
    );
    runner.per_backend(
        "struct_send_sends_the_course_record_values_and_stdin_lines",
        struct_send_sends_the_course_record_values_and_stdin_lines,
    );
    runner.per_backend(
        "records_arriving_a_byte_at_a_time_are_reassembled",
        records_arriving_a_byte_at_a_time_are_reassembled,
    );
    runner.per_backend(
        "a_hundred_records_in_one_write_are_split",
        a_hundred_records_in_one_write_are_split,
    );
    runner.per_backend(
        "interleaved_clients_keep_their_own_partial_records",
        interleaved_clients_keep_their_own_partial_records,
    );
    runner.per_backend(
        "garbage_and_partial_records_print_as_cpython_and_do_not_stop_the_server",
        garbage_and_partial_records_print_as_cpython_and_do_not_stop_the_server,
    );
    runner.per_backend(
        "a_bool_byte_other_than_0_or_1_is_true",
        a_bool_byte_other_than_0_or_1_is_true,
    );
    runner.per_backend("sigint_exits_zero", sigint_exits_zero);
    runner.test(
        "a_bad_format_is_a_usage_error",
        a_bad_format_is_a_usage_error,
    );
    runner.test(
        "struct_send_prints_what_was_packed_and_warns_on_truncation",
        struct_send_prints_what_was_packed_and_warns_on_truncation,
    );
    runner.finish()
}

/// `struct_send.py` exactly as the course notes have it
/// (`course/002_4a8c4b08ead37e2a.txt`); the test changes only the address.
const COURSE_STRUCT_SEND_PY: &str = "\
from socket import *
import struct
s=socket()
s.connect(('0.0.0.0',8888))
st=struct.Struct('i5sf')
#将数据打包发送
data=st.pack(1,b'zhang',1.75)
s.send(data)
s.close()
";

fn start(backend: Backend, format: &str) -> Example {
    Example::start(
        "struct_recv",
        &[
            "--addr",
            "127.0.0.1:0",
            "--backend",
            backend.name(),
            "--format",
            format,
        ],
    )
}

fn connect(server: &Example) -> TcpStream {
    let s = TcpStream::connect(server.addr()).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// The next stdout line of `server`.
#[track_caller]
fn line(server: &Example) -> String {
    server
        .next_line(SOON)
        .unwrap_or_else(|| panic!("no line; stderr: {}", server.stderr()))
}

/// Runs python3 with `args`, returning stdout; fails if it fails, and
/// skips the test if python3 is not installed.
#[track_caller]
fn python(args: &[&str]) -> String {
    common::require_program("python3");
    let out = Command::new("python3")
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn the_courses_struct_send_py_works_unchanged_but_for_the_address(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("reactor-struct-{}-{backend}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = start(backend, "i5sf");
    let port = server.addr().port();
    let script =
        COURSE_STRUCT_SEND_PY.replace("('0.0.0.0',8888)", &format!("('127.0.0.1',{port})"));
    assert_ne!(script, COURSE_STRUCT_SEND_PY);
    let file = dir.join("struct_send.py");
    std::fs::write(&file, script).unwrap();
    python(&[file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(line(&server), "(1, b'zhang', 1.75)", "[{backend}]");
}

fn struct_send_sends_the_course_record_values_and_stdin_lines(backend: Backend) {
    let server = start(backend, "i5sf");
    let addr = server.addr().to_string();
    let send = |args: &[&str], input: &str| {
        let mut child = Command::new(example_path("struct_send"))
            .args(["--addr", &addr])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = send(&[], "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sent (1, b'zhang', 1.75)\n"
    );
    assert_eq!(line(&server), "(1, b'zhang', 1.75)");

    let out = send(
        &["--values", "2,li,2.5", "--values", "(3, b'w\\x00ng', -0.0)"],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(line(&server), "(2, b'li\\x00\\x00\\x00', 2.5)");
    assert_eq!(line(&server), "(3, b'w\\x00ng\\x00', -0.0)");

    let out = send(&["--stdin"], "4,zhao,1.5\nnot a record\n5,qian,inf\n");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad line is reported: {out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    assert_eq!(line(&server), "(4, b'zhao\\x00', 1.5)");
    assert_eq!(line(&server), "(5, b'qian\\x00', inf)");
}

fn records_arriving_a_byte_at_a_time_are_reassembled(backend: Backend) {
    let st = Struct::new("i5sf").unwrap();
    let record = st
        .pack(&[Value::from(7), Value::from(b"bytes"), Value::from(0.5)])
        .unwrap();
    let server = start(backend, "i5sf");
    let mut client = connect(&server);
    for byte in &record {
        client.write_all(std::slice::from_ref(byte)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(line(&server), "(7, b'bytes', 0.5)", "[{backend}]");
}

fn a_hundred_records_in_one_write_are_split(backend: Backend) {
    let st = Struct::new("<hq?").unwrap();
    let mut data = Vec::new();
    for i in 0..100i64 {
        st.pack_into(
            &mut data,
            &[
                Value::from(-i),
                Value::from(i * 1_000_000_007),
                Value::from(i % 2),
            ],
        )
        .unwrap();
    }
    let server = start(backend, "<hq?");
    connect(&server).write_all(&data).unwrap();
    for i in 0..100i64 {
        let want = format!(
            "({}, {}, {})",
            -i,
            i * 1_000_000_007,
            if i % 2 == 1 { "True" } else { "False" }
        );
        assert_eq!(line(&server), want, "[{backend}] record {i}");
    }
}

fn interleaved_clients_keep_their_own_partial_records(backend: Backend) {
    let st = Struct::new("i5sf").unwrap();
    let a = st
        .pack(&[Value::from(1), Value::from(b"alice"), Value::from(1.25)])
        .unwrap();
    let b = st
        .pack(&[Value::from(2), Value::from(b"bob"), Value::from(2.25)])
        .unwrap();
    let server = start(backend, "i5sf");
    let mut ca = connect(&server);
    let mut cb = connect(&server);
    ca.write_all(&a[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    cb.write_all(&b).unwrap();
    assert_eq!(line(&server), "(2, b'bob\\x00\\x00', 2.25)", "[{backend}]");
    ca.write_all(&a[10..]).unwrap();
    assert_eq!(line(&server), "(1, b'alice', 1.25)", "[{backend}]");
}

/// docs/reliability.md#hostile-binary-records: any bytes are a record of `i5sf`
/// (NaNs, odd padding, non-UTF-8 text): each prints exactly as CPython prints
/// it; a `?` byte of 2 is `True`; a trailing partial record at close is
/// reported, not a panic; the server keeps serving.
fn garbage_and_partial_records_print_as_cpython_and_do_not_stop_the_server(backend: Backend) {
    // Deterministic garbage, with NaN and infinity bit patterns mixed in.
    let mut garbage = Rng::new(0x2545_f491_4f6c_dd1d).bytes(16 * 20);
    garbage[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
    garbage[28..32].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
    garbage[44..48].copy_from_slice(&[0x01, 0x00, 0x80, 0xff]); // a NaN with a payload
    let hex: String = garbage.iter().map(|b| format!("{b:02x}")).collect();
    let expected = python(&[
        "-c",
        "import struct,sys\nd=bytes.fromhex(sys.argv[1])\nfor o in range(0,len(d),16): print(struct.unpack_from('i5sf',d,o))",
        &hex,
    ]);
    let server = start(backend, "i5sf");
    connect(&server).write_all(&garbage).unwrap();
    for want in expected.lines() {
        assert_eq!(line(&server), want, "[{backend}]");
    }
    // One and a half records, then close: the half is reported and dropped.
    let mut c = connect(&server);
    c.write_all(&garbage[..24]).unwrap();
    drop(c);
    assert_eq!(
        line(&server),
        expected.lines().next().unwrap(),
        "[{backend}]"
    );
    std::thread::sleep(Duration::from_millis(100));
    let err = server.stderr();
    assert!(
        err.contains("8 bytes of a partial record"),
        "[{backend}] stderr: {err}"
    );
    connect(&server).write_all(&garbage[16..32]).unwrap();
    assert_eq!(
        line(&server),
        expected.lines().nth(1).unwrap(),
        "[{backend}] still serving"
    );
}

/// A `?` field is `True` for any byte but zero, as in CPython.
fn a_bool_byte_other_than_0_or_1_is_true(backend: Backend) {
    let server = start(backend, "?");
    connect(&server).write_all(b"\x02\x00\x01\xff").unwrap();
    for want in ["(True,)", "(False,)", "(True,)", "(True,)"] {
        assert_eq!(line(&server), want, "[{backend}]");
    }
}

fn a_bad_format_is_a_usage_error() {
    for (name, format) in [
        ("struct_recv", "i5z"),
        ("struct_send", "<n"),
        ("struct_recv", ""),
        ("struct_recv", "2000000s"),
    ] {
        let out = Command::new(example_path(name))
            .args(["--format", format])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name} --format {format:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error:") && err.contains("--format"),
            "{name}: {err}"
        );
    }
    let out = Command::new(example_path("struct_send"))
        .args(["--values", "3000000000,a,1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("struct field 0 ('i')"));
}

fn sigint_exits_zero(backend: Backend) {
    let mut server = start(backend, "i5sf");
    let _client = connect(&server);
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(SOON).code(), Some(0), "[{backend}]");
}

/// struct_send prints what it packed, which is what went on the wire, and
/// warns when a bytes field was cut short (Python's `struct` truncates
/// silently).
fn struct_send_prints_what_was_packed_and_warns_on_truncation() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let out = Command::new(example_path("struct_send"))
        .args([
            "--addr",
            &addr,
            "--values",
            "4,你好,2.5",
            "--values",
            "5,li,1.1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sent (4, b'\\xe4\\xbd\\xa0\\xe5\\xa5', 2.5)\nsent (5, b'li\\x00\\x00\\x00', 1.100000023841858)\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("truncated")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("field 1")
            && warnings[0].contains("6 bytes")
            && warnings[0].contains('5'),
        "{stderr}"
    );
    let (mut conn, _) = listener.accept().unwrap();
    let mut wire = Vec::new();
    std::io::Read::read_to_end(&mut conn, &mut wire).unwrap();
    assert_eq!(wire.len(), 32);
    assert_eq!(&wire[4..9], "你好".as_bytes().get(..5).unwrap());
}
