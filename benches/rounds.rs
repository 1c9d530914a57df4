//! Interleaved rounds: how B1, B5 and B8 (and B2's ratios) turn timings
//! into a verdict against a target.
//!
//! A *group* is a set of variants doing the same work (B1 at one N, one B5
//! operation at one n, the B8 idle loop). Each variant is first calibrated
//! to a fixed number of repetitions that takes about `--secs` seconds; then
//! for R rounds every variant is measured once, in the group's fixed order
//! (ours first, then mio, polling, libev, libevent, libc), so a slow stretch
//! of a shared machine falls on every variant of a round alike. A sample is
//! nanoseconds per element (event, timer, turn). A ratio ours/peer is taken
//! per round; its median with the min–max over the rounds is judged:
//! *met* when the whole range is on the target's side, *MISS* when it is
//! entirely on the wrong side, *inconclusive* otherwise.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The fewest rounds a verdict accepts.
pub const MIN_ROUNDS: usize = 5;

/// How many rounds, how long each measurement, how long the calibration.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub rounds: usize,
    /// Target seconds of one measurement (one variant in one round).
    pub secs: f64,
    /// Seconds of calibration per variant (also its warm-up).
    pub warmup: f64,
    /// The CPU the process is pinned to.
    pub cpu: usize,
}

impl Profile {
    /// `--smoke` (1 round of one repetition: correctness only), `--quick`
    /// (3 rounds), `--reduced` (5), `--full` (7, the default per-measurement
    /// time doubled), each overridable with `--rounds R`, `--secs S` and
    /// `--cpu K` (pinned CPU, default 0). `secs` is the per-measurement time
    /// of the quick and reduced profiles, chosen by each bench for its work.
    pub fn from_args(args: &[String], secs: f64) -> Profile {
        let has = |f: &str| args.iter().any(|a| a == f);
        let value = |f: &str| {
            args.iter()
                .position(|a| a == f)
                .and_then(|i| args.get(i + 1))
                .and_then(|v| v.parse::<f64>().ok())
        };
        let (name, rounds, secs) = if has("--smoke") {
            ("smoke", 1, 0.0)
        } else if has("--full") {
            ("full", 7, secs * 2.0)
        } else if has("--reduced") {
            ("reduced", 5, secs)
        } else {
            ("quick", 3, secs)
        };
        let rounds = value("--rounds").map_or(rounds, |r| (r as usize).max(1));
        // NaN and negative mean 0 (smoke); an hour is the most a measurement gets.
        let secs = value("--secs")
            .filter(|s| !s.is_nan())
            .unwrap_or(secs)
            .clamp(0.0, 3600.0);
        Profile {
            name: if value("--rounds").is_some() || value("--secs").is_some() {
                format!("{rounds} rounds × {secs} s")
            } else {
                name.to_owned()
            },
            rounds,
            secs,
            warmup: (secs / 2.0).min(0.5),
            cpu: value("--cpu").map_or(0, |c| c as usize),
        }
    }

    /// One repetition per measurement and no calibration: correctness only.
    pub fn is_smoke(&self) -> bool {
        self.secs == 0.0
    }
}

/// `--out DIR`, else `$CARGO_TARGET_DIR/bench-results`, else
/// `target/bench-results`; created.
pub fn out_dir(args: &[String]) -> String {
    let dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .or_else(|| {
            std::env::var("CARGO_TARGET_DIR")
                .ok()
                .map(|t| format!("{t}/bench-results"))
        })
        .unwrap_or_else(|| "target/bench-results".to_owned());
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Times `reps` repetitions of a variant's work (set-up between them is
/// not timed); an error is a correctness failure (a lost event, a timer
/// that did not fire).
pub type Measure<'a> = Box<dyn FnMut(u64) -> Result<Duration, String> + 'a>;

/// One variant of a group.
pub struct Variant<'a> {
    pub name: String,
    /// Elements (events, timers, turns) in one repetition.
    pub elements: f64,
    pub measure: Measure<'a>,
}

impl<'a> Variant<'a> {
    pub fn new(
        name: impl Into<String>,
        elements: usize,
        measure: impl FnMut(u64) -> Result<Duration, String> + 'a,
    ) -> Variant<'a> {
        Variant {
            name: name.into(),
            elements: elements as f64,
            measure: Box::new(measure),
        }
    }
}

/// One measurement: ns per element of `variant` in `round` of `group`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub group: String,
    pub variant: String,
    pub round: usize,
    pub reps: u64,
    pub ns: f64,
}

/// Median and range over the rounds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The median, min and max of `v`; `None` when empty.
pub fn stats(mut v: Vec<f64>) -> Option<Stats> {
    if v.is_empty() {
        return None;
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(Stats {
        median: crate::median(&mut v),
        min,
        max,
    })
}

/// met / MISS / inconclusive for "ratio ≤ target" (`at_most`) or "≥".
pub fn verdict(s: Stats, target: f64, at_most: bool) -> &'static str {
    let (all_ok, none_ok) = if at_most {
        (s.max <= target, s.min > target)
    } else {
        (s.min >= target, s.max < target)
    };
    if all_ok {
        "met"
    } else if none_ok {
        "MISS"
    } else {
        "inconclusive"
    }
}

/// `0.982 [0.950–1.010] inconclusive`: a ratio's median, range and, given
/// a target, its verdict; `void` without samples.
pub fn show(s: Option<Stats>, target: Option<(f64, bool)>) -> String {
    match s {
        None => "void".to_owned(),
        Some(st) => {
            let mut out = format!("{:.3} [{:.3}–{:.3}]", st.median, st.min, st.max);
            if let Some((t, at_most)) = target {
                let _ = write!(out, " {}", verdict(st, t, at_most));
            }
            out
        }
    }
}

/// The unit a time of `ns` is shown in: (divisor, suffix, decimals).
fn unit(ns: f64) -> (f64, &'static str, usize) {
    if ns >= 1e6 {
        (1e6, "ms", 2)
    } else if ns >= 1e3 {
        (1e3, "µs", 2)
    } else if ns >= 100.0 {
        (1.0, "ns", 0)
    } else {
        (1.0, "ns", 1)
    }
}

/// A time for humans: ns, µs or ms.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        return "–".to_owned();
    }
    let (div, suffix, dec) = unit(ns);
    format!("{:.dec$} {suffix}", ns / div)
}

/// `1.23 µs [1.20–1.31]`: a time's median and range over the rounds, the
/// range in the median's unit.
pub fn show_ns(s: Option<Stats>) -> String {
    match s {
        None => "–".to_owned(),
        Some(st) => {
            let (div, suffix, dec) = unit(st.median);
            format!(
                "{:.dec$} {suffix} [{:.dec$}–{:.dec$}]",
                st.median / div,
                st.min / div,
                st.max / div
            )
        }
    }
}

/// Every sample of one bench run, and the correctness failures seen.
pub struct Run {
    pub profile: Profile,
    pub samples: Vec<Sample>,
    pub failures: usize,
}

impl Run {
    /// Pins the process (`sched_setaffinity`) and prints the set-up.
    pub fn start(bench: &str, profile: Profile) -> Run {
        println!("{}", crate::env_header());
        if let Some(note) = crate::peers::skipped_note() {
            println!("{note}");
        }
        let pinned = crate::pin_to_cpu(profile.cpu);
        eprintln!(
            "{bench}: profile {}, {} round(s), {} s per measurement, {}",
            profile.name,
            profile.rounds,
            profile.secs,
            if pinned {
                format!("pinned to cpu{}", profile.cpu)
            } else {
                "NOT pinned".to_owned()
            }
        );
        Run {
            profile,
            samples: Vec::new(),
            failures: 0,
        }
    }

    /// Calibrates each variant, then runs the rounds, interleaved in the
    /// order given.
    pub fn group(&mut self, group: &str, mut variants: Vec<Variant<'_>>) {
        let mut reps = Vec::with_capacity(variants.len());
        for v in &mut variants {
            reps.push(self.calibrate(group, v));
        }
        for round in 0..self.profile.rounds {
            for (v, &reps) in variants.iter_mut().zip(&reps) {
                match (v.measure)(reps) {
                    Ok(took) => {
                        let ns = took.as_nanos() as f64 / (reps as f64 * v.elements);
                        eprintln!(
                            "  {group} round {round} {:>26}: {:>10}/element ({reps} reps)",
                            v.name,
                            fmt_ns(ns)
                        );
                        self.samples.push(Sample {
                            group: group.to_owned(),
                            variant: v.name.clone(),
                            round,
                            reps,
                            ns,
                        });
                    }
                    Err(e) => self.fail(group, &v.name, &e),
                }
            }
        }
    }

    /// Repetitions that take about `secs`, from repeated single
    /// repetitions for `warmup` seconds (which also warm the caches).
    fn calibrate(&mut self, group: &str, v: &mut Variant<'_>) -> u64 {
        if self.profile.is_smoke() {
            return 1;
        }
        let start = Instant::now();
        let mut done = 0u64;
        while done == 0 || start.elapsed().as_secs_f64() < self.profile.warmup {
            if let Err(e) = (v.measure)(1) {
                self.fail(group, &v.name, &e);
                return 1;
            }
            done += 1;
        }
        let per = start.elapsed().as_secs_f64() / done as f64;
        ((self.profile.secs / per.max(1e-9)).round() as u64).max(1)
    }

    fn fail(&mut self, group: &str, variant: &str, e: &str) {
        eprintln!("  {group} {variant}: CORRECTNESS FAILURE: {e}");
        self.failures += 1;
    }

    /// ns per element of `variant` over the rounds.
    pub fn time(&self, group: &str, variant: &str) -> Option<Stats> {
        stats(
            self.samples
                .iter()
                .filter(|s| s.group == group && s.variant == variant)
                .map(|s| s.ns)
                .collect(),
        )
    }

    /// The per-round ratios `ours / peer` over the rounds.
    pub fn ratio<'a>(&'a self, group: &'a str, ours: &'a str, peer: &'a str) -> Option<Stats> {
        let of = |variant: &'a str| {
            self.samples
                .iter()
                .filter(move |s| s.group == group && s.variant == variant)
        };
        stats(
            of(ours)
                .filter_map(|o| of(peer).find(|p| p.round == o.round).map(|p| o.ns / p.ns))
                .collect(),
        )
    }

    /// [`show`] of the per-round ratio `ours / peer`; the verdict only
    /// from [`MIN_ROUNDS`] rounds on (fewer say so instead).
    pub fn show_ratio(
        &self,
        group: &str,
        ours: &str,
        peer: &str,
        target: Option<(f64, bool)>,
    ) -> String {
        let ratio = self.ratio(group, ours, peer);
        if target.is_some() && self.profile.rounds < MIN_ROUNDS {
            format!("{} (no verdict: < {MIN_ROUNDS} rounds)", show(ratio, None))
        } else {
            show(ratio, target)
        }
    }

    /// Whether `variant` has samples in `group`.
    pub fn has(&self, group: &str, variant: &str) -> bool {
        self.samples
            .iter()
            .any(|s| s.group == group && s.variant == variant)
    }

    /// The method line every table of the bench starts with.
    pub fn method(&self, order: &[&str]) -> String {
        format!(
            "Profile `{}`: {} interleaved round(s), each variant calibrated to a fixed number of \
             repetitions of about {} s and measured once per round in the order {}; process \
             pinned to cpu{} (`sched_setaffinity`). Times are the median of the rounds \
             [min–max]; ratios are the median of the per-round ratios ours/peer [min–max], \
             *met* only when the whole range is on the target's side, *MISS* when all of it is \
             on the wrong side, *inconclusive* otherwise.",
            self.profile.name,
            self.profile.rounds,
            self.profile.secs,
            order.join(", "),
            self.profile.cpu
        )
    }

    /// Writes `<out>/<stem>.csv` (every sample) and `<out>/<stem>.md`
    /// (`md`), prints `md`, and exits 1 after any correctness failure.
    pub fn finish(self, out: &str, stem: &str, md: &str) {
        let mut csv = String::from("profile,group,variant,round,reps,ns_per_element\n");
        for s in &self.samples {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{:.3}",
                self.profile.name, s.group, s.variant, s.round, s.reps, s.ns
            );
        }
        for (file, text) in [
            (format!("{stem}.csv"), csv),
            (format!("{stem}.md"), md.to_owned()),
        ] {
            let path = format!("{out}/{file}");
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("{path}: {e}");
                std::process::exit(1);
            }
        }
        println!("{md}");
        println!("wrote {out}/{stem}.csv and {out}/{stem}.md");
        if self.failures > 0 {
            eprintln!("{stem}: {} correctness failure(s)", self.failures);
            std::process::exit(1);
        }
    }
}

/// A markdown table of times: one row per variant, one column per group,
/// each cell the median ns per element [min–max].
pub fn times_table(run: &Run, groups: &[(String, String)], variants: &[&str]) -> String {
    let mut md = String::from("| variant |");
    for (_, label) in groups {
        let _ = write!(md, " {label} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(groups.len()));
    md.push('\n');
    for &v in variants {
        if !groups.iter().any(|(g, _)| run.has(g, v)) {
            continue;
        }
        let _ = write!(md, "| {v} |");
        for (g, _) in groups {
            let _ = write!(md, " {} |", show_ns(run.time(g, v)));
        }
        md.push('\n');
    }
    md
}
