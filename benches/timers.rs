//! B5: timers at 10k and 1M (docs/benchmarks.md, "B5: timers"), ns per timer operation.
//!
//! Each benchmark times only the operation it is named after, with
//! `iter_custom`, on a `Timers` whose slab already held `n` timers (steady
//! state: no allocation, no page faults). Throughput is `n` elements, so
//! criterion's "thrpt" and "time / n" are the per-timer cost.
//!
//! - `insert`: `n` timers with random deadlines 10–60 s ahead;
//! - `cancel`: cancel those `n` timers, in insertion order;
//! - `expire`: `n` timers all due, fired by one `expire` call;
//! - `reset`: each of `n` pending timers re-armed 10× to a new random
//!   deadline 10–60 s ahead (libev's `ev_timer_again` pattern), per reset;
//! - `libev insert|cancel|expire`, `libevent insert|cancel|expire`: the
//!   same on libev 4.33's `ev_timer` (`ev_timer_start` / `ev_timer_stop`, a
//!   4-ary heap) and libevent 2.1.12's `evtimer_add` / `evtimer_del` (a
//!   min-heap), built from `benches/peers/*.c`; expire fires n due timers
//!   in one loop pass (`ev_run(EVRUN_NOWAIT)`, `event_base_loop(NONBLOCK)`);
//! - `heap push` / `heap pop`: a `std::collections::BinaryHeap` of
//!   (deadline, seq) as the floor: push `n`, pop `n`.
//!
//! Run: `cargo bench --bench timers -- --warm-up-time 1 --measurement-time 3`.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use reactor::timer::{TimerId, Timers};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
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

/// A `Timers` whose slab has held `n` timers, and those deadlines as instants.
fn warm(n: usize, seed: u64) -> (Timers, Vec<Instant>, Vec<TimerId>) {
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

fn b5_timers(c: &mut Criterion) {
    let mut group = c.benchmark_group("B5 timers");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));

        group.bench_function(BenchmarkId::new("insert", n), |b| {
            let (mut timers, deadlines, mut ids) = warm(n, 1);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for &d in &deadlines {
                        ids.push(timers.insert(d));
                    }
                    total += start.elapsed();
                    for id in ids.drain(..) {
                        timers.cancel(id);
                    }
                }
                total
            });
        });

        group.bench_function(BenchmarkId::new("cancel", n), |b| {
            let (mut timers, deadlines, mut ids) = warm(n, 2);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    ids.extend(deadlines.iter().map(|&d| timers.insert(d)));
                    let start = Instant::now();
                    for id in ids.drain(..) {
                        black_box(timers.cancel(id));
                    }
                    total += start.elapsed();
                }
                total
            });
        });

        group.bench_function(BenchmarkId::new("expire", n), |b| {
            let (mut timers, _, _) = warm(n, 3);
            let mut fired = Vec::with_capacity(n);
            let mut now = timers.start();
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    now += Duration::from_millis(1);
                    for _ in 0..n {
                        timers.insert(now);
                    }
                    fired.clear();
                    let start = Instant::now();
                    let count = timers.expire(now, &mut fired);
                    total += start.elapsed();
                    assert_eq!(count, n);
                }
                total
            });
        });

        group.throughput(Throughput::Elements((n * RESETS) as u64));
        group.bench_function(BenchmarkId::new("reset", n), |b| {
            let (mut timers, deadlines, mut ids) = warm(n, 4);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    ids.extend(deadlines.iter().map(|&d| timers.insert(d)));
                    let start = Instant::now();
                    for round in 1..=RESETS {
                        // Timer i takes the deadline of timer i + shift: random again.
                        let shift = round * (n / RESETS + 1) % n;
                        let (head, tail) = deadlines.split_at(shift);
                        for (&id, &d) in ids.iter().zip(tail.iter().chain(head)) {
                            black_box(timers.reset(id, d));
                        }
                    }
                    total += start.elapsed();
                    for id in ids.drain(..) {
                        timers.cancel(id);
                    }
                }
                total
            });
        });

        group.throughput(Throughput::Elements(n as u64));
        c_peers(&mut group, n);

        group.bench_function(BenchmarkId::new("heap push", n), |b| {
            let keys = offsets(n, 5);
            let mut heap = BinaryHeap::with_capacity(n);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    heap.clear();
                    let start = Instant::now();
                    for (seq, &d) in keys.iter().enumerate() {
                        heap.push(Reverse((d, seq as u64)));
                    }
                    total += start.elapsed();
                }
                total
            });
        });

        group.bench_function(BenchmarkId::new("heap pop", n), |b| {
            let keys = offsets(n, 6);
            let mut heap = BinaryHeap::with_capacity(n);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    heap.extend(
                        keys.iter()
                            .enumerate()
                            .map(|(seq, &d)| Reverse((d, seq as u64))),
                    );
                    let start = Instant::now();
                    while let Some(top) = heap.pop() {
                        black_box(top);
                    }
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

/// libev's `ev_timer` and libevent's `evtimer` (`benches/peers/*.c`): the
/// same three operations on `n` timers with random timeouts 10–60 s (insert,
/// cancel) or due at once (expire: one loop pass fires them all), each timed
/// inside C around exactly the operation. Skipped when not installed.
fn c_peers(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, n: usize) {
    for peer in reactor_bench::peers::c_peers() {
        let after = || -> Vec<f64> { offsets(n, 7).iter().map(|&ns| ns as f64 / 1e9).collect() };
        let mut timers = reactor_bench::peers::B5::new(peer, after());
        // Warm: the peer's heap has held n timers once (steady state, as ours).
        timers.insert();
        timers.cancel();
        group.bench_function(BenchmarkId::new(format!("{} insert", peer.name), n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += Duration::from_nanos(timers.insert());
                    timers.cancel();
                }
                total
            });
        });
        group.bench_function(BenchmarkId::new(format!("{} cancel", peer.name), n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    timers.insert();
                    total += Duration::from_nanos(timers.cancel());
                }
                total
            });
        });
        group.bench_function(BenchmarkId::new(format!("{} expire", peer.name), n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let ns = timers.expire().expect("every due timer fires in one pass");
                    total += Duration::from_nanos(ns);
                }
                total
            });
        });
    }
}

criterion_group!(benches, b5_timers);
criterion_main!(benches);
