//! `ChildMode::detect` chooses pidfds only if *both* calls that mode uses
//! work: `pidfd_open` (Linux 5.3) and `waitid(P_PIDFD)` (Linux 5.4). On a
//! 5.3 kernel the first works and the second fails with `EINVAL`; a probe of
//! `pidfd_open` alone then picks a mode whose every `try_wait` fails.
//!
//! Older kernels are simulated with a seccomp filter that makes the one
//! call fail the way the old kernel does. The filter is installed in a
//! fresh copy of this test binary (re-run with `CHILD_MODE_FILTER` set), so
//! it never touches the process running the other tests. A
//! `harness = false` binary run by the shared runner of
//! tests/common/runner.rs: where seccomp is not available the tests are
//! counted as skipped.

mod common;

use std::process::Command;

use common::runner::{Runner, skip};
use reactor::ChildMode;

fn main() {
    // The re-run copy: install the filter, detect, print, and stop.
    if let Ok(filter) = std::env::var(FILTER_VAR) {
        detect_under_the_filter(&filter);
        return;
    }
    let mut runner = Runner::from_args();
    runner.test(
        "a_kernel_without_waitid_p_pidfd_gets_sigchld",
        a_kernel_without_waitid_p_pidfd_gets_sigchld,
    );
    runner.test(
        "a_kernel_without_pidfd_open_gets_sigchld",
        a_kernel_without_pidfd_open_gets_sigchld,
    );
    runner.test(
        "a_kernel_with_both_gets_pidfds",
        a_kernel_with_both_gets_pidfds,
    );
    runner.finish()
}

/// Set in the re-run copy: which call its filter refuses.
const FILTER_VAR: &str = "CHILD_MODE_FILTER";

/// Runs [`detect_under_the_filter`] in a copy of this binary whose filter
/// refuses `filter`; returns what it detected, or skips the test where
/// seccomp is not available.
fn detect_with(filter: &str) -> String {
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .env(FILTER_VAR, filter)
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "[{filter}] {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for line in stdout.lines() {
        if let Some(mode) = line.strip_prefix("detected: ") {
            return mode.to_owned();
        }
        if let Some(why) = line.strip_prefix("no filter: ") {
            skip(why);
        }
    }
    panic!("[{filter}] the re-run printed no verdict:\n{stdout}");
}

fn a_kernel_without_waitid_p_pidfd_gets_sigchld() {
    // Linux 5.3: pidfd_open works, waitid(P_PIDFD) is EINVAL.
    let mode = detect_with("waitid-p-pidfd");
    assert_eq!(
        mode, "sigchld",
        "waitid(P_PIDFD) refused, yet pidfds chosen"
    );
}

fn a_kernel_without_pidfd_open_gets_sigchld() {
    // Before Linux 5.3: pidfd_open is ENOSYS.
    assert_eq!(detect_with("pidfd-open"), "sigchld");
}

fn a_kernel_with_both_gets_pidfds() {
    let mode = detect_with("none");
    if mode != "pidfd" {
        // This kernel itself may be older than 5.4: then the probe is right.
        skip(&format!(
            "this kernel has no pidfds either (detected {mode})"
        ));
    }
}

/// The re-run copy's whole run: refuse the call `filter` names, then say
/// what `detect` chose.
fn detect_under_the_filter(filter: &str) {
    let refuse = match filter {
        "waitid-p-pidfd" => Some((libc::SYS_waitid, Some(libc::P_PIDFD), libc::EINVAL)),
        "pidfd-open" => Some((libc::SYS_pidfd_open, None, libc::ENOSYS)),
        _ => None,
    };
    if let Some((call, first_arg, errno)) = refuse
        && let Err(err) = refuse_call(call, first_arg, errno)
    {
        println!("no filter: cannot install a seccomp filter: {err}");
        return;
    }
    println!("detected: {}", ChildMode::detect());
}

// Classic BPF opcodes (linux/filter.h) for the filter below.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`: the call number, and the low 32 bits
/// of the first argument (little-endian).
const NR: u32 = 0;
const ARG0_LOW: u32 = 16;

/// Installs a seccomp filter on this thread: system call `call` (when its
/// first argument is `first_arg`, if given) fails with `errno`; every
/// other call is allowed.
fn refuse_call(call: libc::c_long, first_arg: Option<u32>, errno: i32) -> std::io::Result<()> {
    if !cfg!(target_endian = "little") {
        return Err(std::io::Error::other(
            "the filter reads arguments little-endian",
        ));
    }
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k, jt, jf| libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    };
    let allow = stmt(RET_K, libc::SECCOMP_RET_ALLOW);
    let refuse = stmt(RET_K, libc::SECCOMP_RET_ERRNO | errno as u32);
    let program = match first_arg {
        // nr == call ? refuse : allow
        None => vec![stmt(LD_W_ABS, NR), jump(call as u32, 0, 1), refuse, allow],
        // nr == call && arg0 == first_arg ? refuse : allow
        Some(arg) => vec![
            stmt(LD_W_ABS, NR),
            jump(call as u32, 0, 3),
            stmt(LD_W_ABS, ARG0_LOW),
            jump(arg, 0, 1),
            refuse,
            allow,
        ],
    };
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fprog` points to `program`, which outlives the call; the
    // kernel copies the filter.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
