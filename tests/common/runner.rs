//! The runner of the harness-free test binaries (`harness = false`: one
//! thread, for signals and `fork`): runs each named test, catching its
//! panic, and prints the libtest-like lines and the summary
//! `N passed, M failed, K skipped`. A test that cannot run here (a tool is
//! missing) calls [`skip`] and is counted as skipped, never as passed.
//!
//! Understands the arguments `cargo test` passes on as libtest does:
//! `--list` (print the names, run nothing), `--exact`, `--skip NAME`, name
//! filters, and `--ignored` (none of these tests is ignored, so it runs
//! nothing); other flags (`--nocapture`, `--test-threads N`, …) are
//! accepted and ignored.

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
    /// `--skip` filters (a test matching any of them does not run).
    skips: Vec<String>,
    /// `--ignored`: run only ignored tests, and none of these is.
    only_ignored: bool,
}

impl Runner {
    /// A runner configured from the command line; installs a panic hook
    /// that stays quiet for [`skip`].
    pub fn from_args() -> Runner {
        let mut runner = Runner {
            passed: 0,
            failed: 0,
            skipped: 0,
            list: false,
            exact: false,
            filters: Vec::new(),
            skips: Vec::new(),
            only_ignored: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--list" => runner.list = true,
                "--exact" => runner.exact = true,
                "--ignored" => runner.only_ignored = true,
                "--skip" => runner.skips.extend(args.next()),
                // libtest's options that take a value as the next argument.
                "--test-threads" | "--color" | "--format" | "--logfile" | "-Z" => {
                    args.next();
                }
                flag if flag.starts_with('-') => {}
                filter => runner.filters.push(filter.to_owned()),
            }
        }
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Skipped>().is_none() {
                default_hook(info);
            }
        }));
        runner
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
        let matches = |filter: &String| {
            if self.exact {
                name == filter
            } else {
                name.contains(filter.as_str())
            }
        };
        !self.only_ignored
            && (self.filters.is_empty() || self.filters.iter().any(matches))
            && !self.skips.iter().any(matches)
    }
}
