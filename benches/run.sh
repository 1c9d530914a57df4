#!/usr/bin/env bash
# Regenerates every benchmark figure and plot in docs/benchmarks.md.
#
#   benches/run.sh --quick   # 3 interleaved rounds everywhere, short measurements
#   benches/run.sh --full    # the report: 7 rounds (B1, B5 0.4 s and B8 1 s per
#                            # measurement; echo 3 s), B0 criterion 1 s + 3 s
#   benches/run.sh --reduced # the report, shorter: 5 rounds (B1, B5 0.2 s, B8 0.5 s;
#                            # echo 2 s): the fewest rounds a verdict accepts
#   benches/run.sh --smoke   # CI: compiles everything (every peer), runs each bench for a
#                            # moment (1 round of one repetition), asserts correctness
#                            # only (every echoed byte, every B1 event, every B5 timer
#                            # fired, 1 syscall per idle loop)
#
# Steps: B0 calibration (criterion), B1 dispatch, B8 idle loop (+ syscall
# count under strace, + instructions under callgrind), B5 timers, memory per
# registration (B1, B5, B8 and B2 are interleaved rounds, pinned: ratios with
# their min–max range and a verdict), B2 echo (+ instructions per message under callgrind), HTTP
# against nginx, echo on epoll vs io_uring (uring_oneshot), then the report
# (tables + SVG plots into docs/benchmarks.md and docs/bench/).
# Peers: mio, polling, libev and libevent (C, benches/peers/, built when
# libev-dev / libevent-dev are installed; skipped with a note otherwise),
# the plain libc loop.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${1:---quick}
case "$profile" in
  --quick) crit=(--warm-up-time 0.5 --measurement-time 1.5); uring_args=(--rounds 3 --secs 1) ;;
  --full)  crit=(--warm-up-time 1 --measurement-time 3);     uring_args=(--rounds 7 --secs 2) ;;
  --smoke) crit=(--warm-up-time 0.05 --measurement-time 0.1 --sample-size 10 --noplot); uring_args=(--smoke) ;;
  --reduced) crit=(--warm-up-time 0.5 --measurement-time 1.5); uring_args=(--rounds 5 --secs 2) ;;
  *) echo "usage: $0 [--quick|--reduced|--full|--smoke]" >&2; exit 2 ;;
esac

# Everything lands in the target directory; criterion honours
# CARGO_TARGET_DIR too, and the report reads both from there.
target=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR="$target"
out=$target/bench-results
mkdir -p "$out"
# strace counts the idle loop's system calls; install it if we may.
if ! command -v strace >/dev/null 2>&1; then
  (apt-get install -y strace >/dev/null 2>&1 || true)
fi

cargo bench -p reactor-bench --no-run
rm -rf "$target/criterion"
rm -f "$out"/b1_rounds.* "$out"/b5_rounds.* "$out"/b8_rounds.*

{
  echo "profile: ${profile#--}   date: $(date -u '+%Y-%m-%d %H:%M UTC')   commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "nproc: $(nproc)   kernel: $(uname -r)   ulimit -n: $(ulimit -n)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/run.txt"
cat "$out/run.txt"

cargo bench -p reactor-bench --bench calibration -- "${crit[@]}"
# The rounds drivers (B1, B8, B5; then B2 echo, HTTP, proxy) take the
# profile's name and write their tables and samples into $out.
cargo bench -p reactor-bench --bench dispatch -- "$profile" --out "$out"
cargo bench -p reactor-bench --bench idle_loop -- "$profile" --out "$out"
cargo bench -p reactor-bench --bench idle_loop -- --count-syscalls 2000 | tee "$out/idle_syscalls.md"
cargo bench -p reactor-bench --bench timers -- "$profile" --out "$out"
cargo bench -p reactor-bench --bench memory | tee "$out/memory.md"
cargo bench -p reactor-bench --bench echo -- "$profile" --out "$out"
# HTTP: http_server's engine against nginx under wrk (skips what is not installed).
cargo bench -p reactor-bench --bench http -- "$profile" --out "$out"
# The proxy bench runs the proxy example itself: build it with the same profile.
cargo build --profile bench --example proxy
cargo bench -p reactor-bench --bench proxy -- "$profile" --out "$out"
# Echo on epoll and io_uring, oneshot and level (docs/uring.md).
cargo bench -p reactor-bench --bench uring_oneshot -- "${uring_args[@]}" | tee "$out/uring_oneshot.md"
# User-space instructions (callgrind): deterministic, whatever the load.
# Not in the smoke profile (minutes under valgrind; no correctness to add).
if [ "$profile" != "--smoke" ]; then
  cargo bench -p reactor-bench --bench idle_loop -- --instructions | tee "$out/idle_instructions.md"
  cargo bench -p reactor-bench --bench dispatch -- --instructions | tee "$out/dispatch_instructions.md"
  cargo bench -p reactor-bench --bench echo -- --instructions "$profile" --out "$out"
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/run.txt"
if [ "$profile" != "--smoke" ]; then
  cargo bench -p reactor-bench --bench report -- --report
fi
