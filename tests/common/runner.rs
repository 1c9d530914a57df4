//! The runner of the harness-free test binaries (`harness = false`: one
//! thread, for signals and `fork`): runs each named test, catching its
//! panic, and prints the libtest-like lines and the summary
//! `N passed, M failed, K skipped`. A test that cannot run here (a tool is
//! missing) calls [`skip`] and is counted as skipped, never as passed.
//!
//! Understands the arguments `cargo test` passes on: `--list` (print the
//! names, run nothing), `--exact` and name filters; other flags
//! (`--nocapture`, `--test-threads=…`) are accepted and ignored.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::exit;

use reactor::Backend;

use super::BACKENDS;

/// The panic payload of [`skip`]: why the test did not run.
struct Skipped(String);

/// Stops the running test and has it counted as skipped, with `reason`
/// printed next to its name. Inside the libtest harness (which knows no
/// run-time skip) the test fails instead: it never passes unrun.
pub fn skip(reason: &str) -> ! {
    std::panic::panic_any(Skipped(reason.to_owned()))
}

/// Runs the tests of one harness-free binary and keeps the score.
pub struct Runner {
    passed: usize,
    failed: usize,
    skipped: usize,
    /// `--list`: print the names only.
    list: bool,
    /// `--exact`: a filter must equal the whole name.
    exact: bool,
    /// Name filters (a test runs if any matches; none means all).
    filters: Vec<String>,
}

impl Runner {
    /// A runner configured from the command line; installs a panic hook
    /// that stays quiet for [`skip`].
    pub fn from_args() -> Runner {
        let (mut list, mut exact, mut filters) = (false, false, Vec::new());
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--list" => list = true,
                "--exact" => exact = true,
                flag if flag.starts_with('-') => {}
                filter => filters.push(filter.to_owned()),
            }
        }
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Skipped>().is_none() {
                default_hook(info);
            }
        }));
        Runner {
            passed: 0,
            failed: 0,
            skipped: 0,
            list,
            exact,
            filters,
        }
    }

    /// Runs `test` under `name` (unless filtered out) and scores it.
    pub fn test(&mut self, name: &str, test: impl FnOnce()) {
        if !self.selected(name) {
            return;
        }
        if self.list {
            println!("{name}: test");
            return;
        }
        match catch_unwind(AssertUnwindSafe(test)) {
            Ok(()) => {
                println!("test {name} ... ok");
                self.passed += 1;
            }
            Err(payload) => match payload.downcast::<Skipped>() {
                Ok(skipped) => {
                    println!("test {name} ... skipped: {}", skipped.0);
                    self.skipped += 1;
                }
                Err(_) => {
                    // The panic hook has printed the message on stderr.
                    println!("test {name} ... FAILED");
                    self.failed += 1;
                }
            },
        }
    }

    /// Runs `test` once per backend, named `<backend>::<name>` as the
    /// `backend_tests!` macro names its tests.
    pub fn per_backend(&mut self, name: &str, test: fn(Backend)) {
        for &backend in BACKENDS {
            self.test(&format!("{backend}::{name}"), || test(backend));
        }
    }

    /// Prints the summary (the last line, which CI reads) and exits:
    /// status 1 if any test failed.
    pub fn finish(self) -> ! {
        if !self.list {
            println!(
                "{} passed, {} failed, {} skipped",
                self.passed, self.failed, self.skipped
            );
        }
        exit(i32::from(self.failed > 0))
    }

    fn selected(&self, name: &str) -> bool {
        self.filters.is_empty()
            || self.filters.iter().any(|filter| {
                if self.exact {
                    name == filter
                } else {
                    name.contains(filter.as_str())
                }
            })
    }
}
