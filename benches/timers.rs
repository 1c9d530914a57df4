//! B5: timers at 10k and 1M (docs/benchmarks.md, "B5: timers"), ns per timer operation.
//!
//! Interleaved rounds ([`reactor_bench::rounds`]), the process pinned to
//! one CPU. A group is one operation at one n; each variant times only the
//! operation it is named after, on a structure that already held `n`
//! timers (steady state: no allocation, no page faults), is calibrated to a
//! fixed number of repetitions (about `--secs` seconds), and runs once per
//! round in the order ours, libev, libevent, heap. Samples are ns per timer.
//!
//! - `insert/<n>`: `n` timers with random deadlines 10–60 s ahead;
//! - `cancel/<n>`: cancel those `n` timers, in insertion order;
//! - `expire/<n>`: `n` timers all due, fired by one `expire` call (every
//!   one must fire: a correctness failure otherwise);
//! - `reset/<n>` (ours only): each of `n` pending timers re-armed 10× to a
//!   new random deadline 10–60 s ahead (libev's `ev_timer_again`
//!   pattern), per reset;
//! - `libev`, `libevent`: the same on libev 4.33's `ev_timer`
//!   (`ev_timer_start` / `ev_timer_stop`, a 4-ary heap) and libevent
//!   2.1.12's `evtimer_add` / `evtimer_del` (a min-heap), built from
//!   `benches/peers/*.c` (skipped with a note when not installed), timed
//!   inside C; expire fires n due timers in one loop pass
//!   (`ev_run(EVRUN_NOWAIT)`, `event_base_loop(NONBLOCK)`);
//! - `heap`: a `std::collections::BinaryHeap` of (deadline, seq) as the
//!   floor: push `n` (beside insert), pop `n` (beside expire).
//!
//! The report: each median [min–max], and the per-round ratios ours/libev
//! and ours/libevent judged against ≤ 0.5×.
//!
//! Run: `cargo bench -p reactor-bench --bench timers -- --reduced` (5
//! rounds; `--quick` 3, `--full` 7, `--smoke` 1 round of one repetition:
//! every timer fires; `--rounds R --secs S`, `--cpu K`, `--out DIR` for
//! `b5_rounds.{csv,md}`).

use reactor::timer::{TimerId, Timers};
use reactor_bench::rounds::{self, Profile, Run, Variant};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Timer counts to measure.
const SIZES: [usize; 2] = [10_000, 1_000_000];
/// Resets per timer in the `reset` benchmark.
const RESETS: usize = 10;

/// xorshift64*: deterministic deadlines without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `n` random offsets from the wheel's start, 10–60 s, in nanoseconds.
fn offsets(n: usize, seed: u64) -> Vec<u64> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| 10_000_000_000 + rng.next() % 50_000_000_000)
        .collect()
}

/// A `Timers` whose slab held `n` timers, its deadlines and (empty) ids.
type Warm = (Timers, Vec<Instant>, Vec<TimerId>);

/// A `Timers` whose slab has held `n` timers, and those deadlines as instants.
fn warm(n: usize, seed: u64) -> Warm {
    let mut timers = Timers::with_capacity(n);
    let t0 = timers.start();
    let deadlines: Vec<Instant> = offsets(n, seed)
        .into_iter()
        .map(|ns| t0 + Duration::from_nanos(ns))
        .collect();
    let mut ids: Vec<TimerId> = deadlines.iter().map(|&d| timers.insert(d)).collect();
    for id in ids.drain(..) {
        timers.cancel(id);
    }
    (timers, deadlines, ids)
}

/// `reps` times: `before` (untimed), `op` (timed), `after` (untimed), on
/// one state.
fn timed<S>(
    s: &mut S,
    reps: u64,
    before: impl Fn(&mut S),
    op: impl Fn(&mut S),
    after: impl Fn(&mut S),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..reps {
        before(s);
        let start = Instant::now();
        op(s);
        total += start.elapsed();
        after(s);
    }
    total
}

fn insert_all((timers, deadlines, ids): &mut Warm) {
    ids.extend(deadlines.iter().map(|&d| timers.insert(d)));
}

fn cancel_all((timers, _, ids): &mut Warm) {
    for id in ids.drain(..) {
        black_box(timers.cancel(id));
    }
}

/// ours: `n` inserts per repetition (cancelled again, untimed).
fn ours_insert<'a>(n: usize) -> Variant<'a> {
    let mut s = warm(n, 1);
    Variant::new("ours", n, move |reps| {
        Ok(timed(&mut s, reps, |_| {}, insert_all, cancel_all))
    })
}

/// ours: `n` cancels in insertion order per repetition.
fn ours_cancel<'a>(n: usize) -> Variant<'a> {
    let mut s = warm(n, 2);
    Variant::new("ours", n, move |reps| {
        Ok(timed(&mut s, reps, insert_all, cancel_all, |_| {}))
    })
}

/// ours: `n` due timers fired by one `expire` per repetition; every one
/// must fire.
fn ours_expire<'a>(n: usize) -> Variant<'a> {
    let (mut timers, _, _) = warm(n, 3);
    let mut fired = Vec::with_capacity(n);
    let mut now = timers.start();
    Variant::new("ours", n, move |reps| {
        let mut total = Duration::ZERO;
        for _ in 0..reps {
            now += Duration::from_millis(1);
            for _ in 0..n {
                timers.insert(now);
            }
            fired.clear();
            let start = Instant::now();
            let count = timers.expire(now, &mut fired);
            total += start.elapsed();
            if count != n {
                return Err(format!("{count} of {n} due timers fired"));
            }
        }
        Ok(total)
    })
}

/// ours: each of `n` pending timers re-armed `RESETS` times, per reset.
fn ours_reset<'a>(n: usize) -> Variant<'a> {
    let mut s = warm(n, 4);
    let reset_all = move |(timers, deadlines, ids): &mut Warm| {
        for round in 1..=RESETS {
            // Timer i takes the deadline of timer i + shift: random again.
            let shift = round * (n / RESETS + 1) % n;
            let (head, tail) = deadlines.split_at(shift);
            for (&id, &d) in ids.iter().zip(tail.iter().chain(head)) {
                black_box(timers.reset(id, d));
            }
        }
    };
    Variant::new("ours", n * RESETS, move |reps| {
        Ok(timed(&mut s, reps, insert_all, reset_all, cancel_all))
    })
}

/// A `BinaryHeap` of (deadline, seq) and the keys it is filled with.
type Heap = (BinaryHeap<Reverse<(u64, u64)>>, Vec<u64>);

fn heap_fill((heap, keys): &mut Heap) {
    for (seq, &d) in keys.iter().enumerate() {
        heap.push(Reverse((d, seq as u64)));
    }
}

fn heap(n: usize, seed: u64) -> Heap {
    (BinaryHeap::with_capacity(n), offsets(n, seed))
}

/// The floor for insert: `n` pushes onto a `BinaryHeap` of (deadline, seq).
fn heap_push<'a>(n: usize) -> Variant<'a> {
    let mut s = heap(n, 5);
    Variant::new("heap", n, move |reps| {
        Ok(timed(&mut s, reps, |(h, _)| h.clear(), heap_fill, |_| {}))
    })
}

/// The floor for expire: `n` pops off a `BinaryHeap` of (deadline, seq).
fn heap_pop<'a>(n: usize) -> Variant<'a> {
    let mut s = heap(n, 6);
    let pop_all = |(h, _): &mut Heap| {
        while let Some(top) = h.pop() {
            black_box(top);
        }
    };
    Variant::new("heap", n, move |reps| {
        Ok(timed(&mut s, reps, heap_fill, pop_all, |_| {}))
    })
}

/// The three timer operations.
#[derive(Clone, Copy, PartialEq)]
enum Op {
    Insert,
    Cancel,
    Expire,
}

/// libev's `ev_timer` or libevent's `evtimer` (`benches/peers/*.c`): the
/// same operation on `n` timers with random timeouts 10–60 s (insert,
/// cancel) or due at once (expire: one loop pass fires them all), each
/// timed inside C around exactly the operation.
fn c_peer<'a>(peer: &'static reactor_bench::peers::CPeer, op: Op, n: usize) -> Variant<'a> {
    let after: Vec<f64> = offsets(n, 7).iter().map(|&ns| ns as f64 / 1e9).collect();
    let mut timers = reactor_bench::peers::B5::new(peer, after);
    // Warm: the peer's heap has held n timers once (steady state, as ours).
    timers.insert();
    timers.cancel();
    Variant::new(peer.name, n, move |reps| {
        let mut ns = 0;
        for _ in 0..reps {
            ns += match op {
                Op::Insert => {
                    let took = timers.insert();
                    timers.cancel();
                    took
                }
                Op::Cancel => {
                    timers.insert();
                    timers.cancel()
                }
                Op::Expire => timers
                    .expire()
                    .ok_or_else(|| format!("not every one of {n} due timers fired"))?,
            };
        }
        Ok(Duration::from_nanos(ns))
    })
}

/// The variants of one operation, in the rounds' order: ours, libev,
/// libevent, the heap floor.
fn group<'a>(op: Op, n: usize) -> Vec<Variant<'a>> {
    let mut v = vec![match op {
        Op::Insert => ours_insert(n),
        Op::Cancel => ours_cancel(n),
        Op::Expire => ours_expire(n),
    }];
    for peer in reactor_bench::peers::c_peers() {
        v.push(c_peer(peer, op, n));
    }
    match op {
        Op::Insert => v.push(heap_push(n)),
        Op::Expire => v.push(heap_pop(n)),
        Op::Cancel => {}
    }
    v
}

const OPS: [(&str, Op); 3] = [
    ("insert", Op::Insert),
    ("cancel", Op::Cancel),
    ("expire", Op::Expire),
];
const ORDER: [&str; 4] = ["ours", "libev", "libevent", "heap"];
/// Target: ours ≤ 0.5× each C peer.
const TARGET: f64 = 0.5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let profile = Profile::from_args(&args, 0.2);
    let out = rounds::out_dir(&args);
    let mut run = Run::start("B5 timers", profile);
    for n in SIZES {
        for (name, op) in OPS {
            run.group(&format!("{name}/{n}"), group(op, n));
        }
        run.group(&format!("reset/{n}"), vec![ours_reset(n)]);
    }

    let mut md = format!("{}\n\n", run.method(&ORDER));
    md.push_str(&format!(
        "Per timer operation (insert and cancel: random timeouts 10–60 s; expire: n due \
         timers fired by one call or loop pass; reset: {RESETS} re-arms per timer; heap: \
         `BinaryHeap` push / pop, the floor):\n\n"
    ));
    let mut groups = Vec::new();
    for (name, _) in OPS.iter().chain(&[("reset", Op::Insert)]) {
        for n in SIZES {
            groups.push((format!("{name}/{n}"), format!("{name} {n}")));
        }
    }
    // One row per operation and n, one column per variant.
    md.push_str("| op | n |");
    for v in ORDER {
        let _ = write!(md, " {v} |");
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---|".repeat(ORDER.len()));
    md.push('\n');
    for (group, label) in &groups {
        let (op, n) = label.split_once(' ').unwrap_or((label, ""));
        let _ = write!(md, "| {op} | {n} |");
        for v in ORDER {
            let _ = write!(md, " {} |", rounds::show_ns(run.time(group, v)));
        }
        md.push('\n');
    }
    md.push_str(
        "\nours/peer per timer (target: ≤ 0.50× libev's `ev_timer` and libevent's `evtimer` for \
         insert, cancel and expire; the heap is reported, not judged):\n\n\
         | op | n | ours/libev | ours/libevent | ours/heap |\n|---|---|---|---|---|\n",
    );
    for (name, _) in OPS {
        for n in SIZES {
            let group = format!("{name}/{n}");
            let _ = write!(md, "| {name} | {n} |");
            for (peer, target) in [
                ("libev", Some((TARGET, true))),
                ("libevent", Some((TARGET, true))),
                ("heap", None),
            ] {
                let shown = if run.has(&group, peer) {
                    run.show_ratio(&group, "ours", peer, target)
                } else {
                    "–".to_owned()
                };
                let _ = write!(md, " {shown} |");
            }
            md.push('\n');
        }
    }
    run.finish(&out, "b5_rounds", &md);
}
