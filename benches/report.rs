//! The benchmark report: reads criterion's results for B0
//! (`target/criterion/**/new/{benchmark,estimates}.json`), the interleaved
//! rounds of B1, B5 and B8 (`target/bench-results/b{1,5,8}_rounds.{csv,md}`),
//! the echo, HTTP and proxy drivers' files, the idle-loop syscall count and
//! the callgrind counts in `target/bench-results/`, and writes
//! - the SVG plots under `docs/bench/` (plotters, SVG backend), and
//! - the generated part of `docs/benchmarks.md`, between the markers
//!   `<!-- BEGIN GENERATED -->` and `<!-- END GENERATED -->`.
//!
//! It only acts when given `--report` (so that a plain `cargo bench` does not
//! rewrite the docs): `cargo bench --bench report -- --report`, which is what
//! `benches/run.sh` calls after the measurements.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use reactor_bench::rounds::fmt_ns;

const BEGIN: &str = "<!-- BEGIN GENERATED -->";
const END: &str = "<!-- END GENERATED -->";

/// One criterion benchmark: median ns per iteration and elements per iteration.
#[derive(Debug, Clone)]
struct Bench {
    ns: f64,
    elements: Option<f64>,
}

impl Bench {
    /// ns per element (per event, per registration, per timer) or per iteration.
    fn per(&self) -> f64 {
        self.ns / self.elements.unwrap_or(1.0)
    }
}

/// group → function → value ("" when none) → result.
type Results = BTreeMap<String, BTreeMap<String, BTreeMap<String, Bench>>>;

fn collect(dir: &Path, out: &mut Results) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "new") {
                read_bench(&path, out);
            } else {
                collect(&path, out);
            }
        }
    }
}

fn read_bench(dir: &Path, out: &mut Results) {
    let read = |name: &str| -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(dir.join(name)).ok()?;
        serde_json::from_str(&text).ok()
    };
    let (Some(meta), Some(est)) = (read("benchmark.json"), read("estimates.json")) else {
        return;
    };
    let Some(ns) = est["median"]["point_estimate"].as_f64() else {
        return;
    };
    let s = |k: &str| meta[k].as_str().unwrap_or("").to_owned();
    let elements = meta["throughput"]["Elements"].as_f64();
    out.entry(s("group_id"))
        .or_default()
        .entry(s("function_id"))
        .or_default()
        .insert(s("value_str"), Bench { ns, elements });
}

fn get<'a>(r: &'a Results, group: &str, func: &str, value: &str) -> Option<&'a Bench> {
    r.get(group)?.get(func)?.get(value)
}

fn mark(ratio: f64, target: f64, at_most: bool) -> String {
    if !ratio.is_finite() {
        return "–".to_owned();
    }
    let ok = if at_most {
        ratio <= target
    } else {
        ratio >= target
    };
    format!("{ratio:.3} {}", if ok { "met" } else { "MISS" })
}

/// Enough distinct colours for every B1 variant (13) and B8's epoll family.
const PALETTE: [RGBColor; 14] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(0, 0, 128),
    RGBColor(128, 128, 0),
    RGBColor(0, 128, 128),
];

type Series = Vec<(String, Vec<(f64, f64)>)>;

/// (size, conns) → server → (msgs/s of each round, CPU ns/msg of each round).
type EchoData = BTreeMap<(u64, u64), BTreeMap<String, (Vec<f64>, Vec<f64>)>>;

/// 1, 2, 5 × 10^k between `lo` and `hi`: labels for a log axis.
fn key_points(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powi(lo.max(1e-3).log10().floor() as i32);
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// A log–log line plot, one line per series.
fn line_plot(path: &Path, title: &str, xlabel: &str, ylabel: &str, series: &Series) {
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if xmin > xmax {
        return;
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let _ = root.fill(&WHITE);
    let chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (xmin * 0.8..xmax * 1.25).log_scale(),
            (ymin * 0.7..ymax * 1.5)
                .log_scale()
                .with_key_points(key_points(ymin * 0.7, ymax * 1.5)),
        );
    let Ok(mut chart) = chart else { return };
    let _ = chart
        .configure_mesh()
        .x_desc(xlabel)
        .y_desc(ylabel)
        .y_label_formatter(&|v| fmt_ns(*v))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw();
    for (i, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let style = if name.contains("reactor") {
            color.stroke_width(2)
        } else {
            color.stroke_width(1)
        };
        if let Ok(ann) = chart.draw_series(LineSeries::new(points.clone(), style)) {
            ann.label(name.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
        let _ = chart.draw_series(
            points
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
        );
    }
    let _ = chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw();
    let _ = root.present();
}

/// Grouped bars: `groups` along x, one bar per series inside each group.
fn bar_plot(path: &Path, title: &str, ylabel: &str, groups: &[String], series: &Series) {
    let ymax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold(0.0f64, f64::max);
    if groups.is_empty() || ymax <= 0.0 {
        return;
    }
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    let _ = root.fill(&WHITE);
    let n = groups.len() as f64;
    let chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..n, 0.0..ymax * 1.15);
    let Ok(mut chart) = chart else { return };
    let labels = groups.to_vec();
    let _ = chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|v| {
            let i = v.floor() as usize;
            if (v - v.floor() - 0.5).abs() < 0.01 && i < labels.len() {
                labels[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc(ylabel)
        .draw();
    let k = series.len() as f64;
    let width = 0.8 / k;
    for (s, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        let bars = points.iter().map(move |&(gi, y)| {
            let x0 = gi + 0.1 + width * s as f64;
            Rectangle::new([(x0, 0.0), (x0 + width * 0.95, y)], color.filled())
        });
        if let Ok(ann) = chart.draw_series(bars) {
            ann.label(name.clone()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
            });
        }
    }
    let _ = chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw();
    let _ = root.present();
}

fn by_value(map: &BTreeMap<String, Bench>) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = map
        .iter()
        .filter_map(|(k, b)| k.parse::<f64>().ok().map(|x| (x, b.per())))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

fn b0(r: &Results, md: &mut String, docs: &Path) {
    md.push_str("### B0 calibration (`cargo bench --bench calibration`)\n\n");
    md.push_str("| what | cost |\n|---|---|\n");
    let rows = [
        (
            "null syscall `syscall(SYS_getppid)`",
            "b0_syscall",
            "null_getppid",
            "",
        ),
        (
            "1-byte `write` + `read` on a socketpair",
            "b0_syscall",
            "socketpair_write_read_1byte",
            "",
        ),
        (
            "`epoll_wait(0)`, 1 idle eventfd",
            "b0_epoll_wait0",
            "idle_eventfds",
            "1",
        ),
        (
            "`epoll_wait(0)`, 10 000 idle eventfds",
            "b0_epoll_wait0",
            "idle_eventfds",
            "10000",
        ),
    ];
    for (label, g, f, v) in rows {
        let cost = get(r, g, f, v).map_or(f64::NAN, Bench::per);
        let _ = writeln!(md, "| {label} | {} |", fmt_ns(cost));
    }
    let Some(group) = r.get("b0_wait_per_fd") else {
        return;
    };
    let funcs = [
        "raw_select",
        "ours_select",
        "raw_poll",
        "ours_poll",
        "raw_epoll",
        "ours_epoll",
    ];
    md.push_str("\nOne wait with timeout 0 over n idle socketpair ends:\n\n| n |");
    for f in funcs {
        let _ = write!(md, " {f} |");
    }
    md.push_str("\n|---|");
    for _ in funcs {
        md.push_str("---|");
    }
    md.push('\n');
    for n in ["1", "10", "100", "1000"] {
        let _ = write!(md, "| {n} |");
        for f in funcs {
            let cost = group
                .get(f)
                .and_then(|m| m.get(n))
                .map_or(f64::NAN, Bench::per);
            let _ = write!(md, " {} |", fmt_ns(cost));
        }
        md.push('\n');
    }
    // Slopes per idle fd: poll over 10..1000, select over 1..100 (its fds
    // stop below 1024).
    md.push_str("\nSlope per idle fd (target: ours ≤ 1.05× raw):\n\n| backend | over n | raw ns/fd | ours ns/fd | ours/raw |\n|---|---|---|---|---|\n");
    for (backend, lo, hi) in [("poll", "10", "1000"), ("select", "1", "100")] {
        let slope = |f: &str| -> f64 {
            let c = |n: &str| {
                group
                    .get(f)
                    .and_then(|m| m.get(n))
                    .map_or(f64::NAN, Bench::per)
            };
            let (l, h): (f64, f64) = (lo.parse().unwrap_or(1.0), hi.parse().unwrap_or(1.0));
            (c(hi) - c(lo)) / (h - l)
        };
        let raw = slope(&format!("raw_{backend}"));
        let ours = slope(&format!("ours_{backend}"));
        let _ = writeln!(
            md,
            "| {backend} | {lo}–{hi} | {raw:.1} | {ours:.1} | {} |",
            mark(ours / raw, 1.05, true)
        );
    }
    let series: Series = funcs
        .iter()
        .filter_map(|f| group.get(*f).map(|m| (f.to_string(), by_value(m))))
        .collect();
    line_plot(
        &docs.join("bench/wait_per_fd.svg"),
        "B0: one zero-timeout wait over n idle fds",
        "idle fds (n)",
        "time per call",
        &series,
    );
    md.push_str("\n![wait cost vs idle fds](bench/wait_per_fd.svg)\n\n");
}

/// A rounds driver's samples (`<results>/<stem>.csv`, written by
/// `reactor_bench::rounds`): group → variant → ns per element of each round.
type RoundsData = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

/// The samples, and the variants in the order the driver ran them.
fn read_rounds(results: &Path, stem: &str) -> Option<(RoundsData, Vec<String>)> {
    let csv = std::fs::read_to_string(results.join(format!("{stem}.csv"))).ok()?;
    let mut data = RoundsData::new();
    let mut order: Vec<String> = Vec::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(group), Some(variant), Some(Ok(ns))) =
            (f.get(1), f.get(2), f.get(5).map(|v| v.parse::<f64>()))
        else {
            continue;
        };
        if !order.iter().any(|o| o == variant) {
            order.push((*variant).to_owned());
        }
        data.entry((*group).to_owned())
            .or_default()
            .entry((*variant).to_owned())
            .or_default()
            .push(ns);
    }
    Some((data, order))
}

/// The median of a variant's rounds in one group.
fn rounds_median(data: &RoundsData, group: &str, variant: &str) -> Option<f64> {
    let mut v = data.get(group)?.get(variant)?.clone();
    (!v.is_empty()).then(|| reactor_bench::median(&mut v))
}

/// A rounds driver's markdown (`<results>/<stem>.md`), whole.
fn include_md(md: &mut String, results: &Path, stem: &str) {
    if let Ok(text) = std::fs::read_to_string(results.join(format!("{stem}.md"))) {
        md.push_str(text.trim());
        md.push_str("\n\n");
    }
}

fn b1(md: &mut String, docs: &Path, results: &Path) {
    let Some((data, order)) = read_rounds(results, "b1_rounds") else {
        return;
    };
    md.push_str("### B1 dispatch (`cargo bench -p reactor-bench --bench dispatch -- --full`)\n\n");
    include_md(md, results, "b1_rounds");
    let sizes: Vec<(f64, String)> = {
        let mut v: Vec<(f64, String)> = data
            .keys()
            .filter_map(|g| g.strip_prefix("run/"))
            .filter_map(|n| n.parse::<f64>().ok().map(|x| (x, format!("run/{n}"))))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let series: Series = order
        .iter()
        .map(|v| {
            let points = sizes
                .iter()
                .filter_map(|(x, g)| rounds_median(&data, g, v).map(|y| (*x, y)))
                .collect();
            (v.clone(), points)
        })
        .collect();
    line_plot(
        &docs.join("bench/dispatch.svg"),
        "B1: run time per event vs socketpairs (A = 100, W = N; median of rounds)",
        "socketpairs (N)",
        "run time per event",
        &series,
    );
    md.push_str("![dispatch cost vs N](bench/dispatch.svg)\n\n");
    include_table(
        md,
        results,
        "dispatch_instructions.md",
        "User-space instructions per event (`cargo bench -p reactor-bench --bench dispatch -- --instructions`, callgrind; deterministic):",
    );
}

/// The idle loop's epoll-family variants in the plot, with short labels.
const B8_PLOT: [(&str, &str); 8] = [
    ("poller_epoll", "Poller"),
    ("reactor_epoll", "Reactor"),
    ("reactor_epoll_1000_timers", "Reactor+1k timers"),
    ("mio_epoll", "mio"),
    ("polling_epoll", "polling"),
    ("libev_epoll", "libev"),
    ("libevent_epoll", "libevent"),
    ("raw_epoll_wait0", "raw wait(0)"),
];

fn b8(md: &mut String, docs: &Path, results: &Path) {
    let Some((data, _)) = read_rounds(results, "b8_rounds") else {
        return;
    };
    md.push_str(
        "### B8 idle loop (`cargo bench -p reactor-bench --bench idle_loop -- --full`)\n\n",
    );
    include_md(md, results, "b8_rounds");
    let shown: Vec<(&str, f64)> = B8_PLOT
        .iter()
        .filter_map(|(v, label)| rounds_median(&data, "idle", v).map(|ns| (*label, ns)))
        .collect();
    let groups: Vec<String> = shown.iter().map(|(l, _)| (*l).to_owned()).collect();
    let series: Series = vec![(
        "ns per turn (median of rounds)".to_owned(),
        shown
            .iter()
            .enumerate()
            .map(|(i, (_, ns))| (i as f64, *ns))
            .collect(),
    )];
    bar_plot(
        &docs.join("bench/idle_loop.svg"),
        "B8: one idle turn, epoll (median of rounds)",
        "ns per turn",
        &groups,
        &series,
    );
    md.push_str("![idle loop per turn](bench/idle_loop.svg)\n\n");
    include_table(
        md,
        results,
        "idle_syscalls.md",
        "System calls per iteration (`cargo bench -p reactor-bench --bench idle_loop -- --count-syscalls`, strace):",
    );
    include_table(
        md,
        results,
        "idle_instructions.md",
        "User-space instructions per iteration (`cargo bench -p reactor-bench --bench idle_loop -- --instructions`, callgrind; deterministic):",
    );
}

/// Copies the markdown table lines of `results/file`, under `title`.
fn include_table(md: &mut String, results: &Path, file: &str, title: &str) {
    if let Ok(text) = std::fs::read_to_string(results.join(file)) {
        let _ = write!(md, "{title}\n\n");
        md.push_str(
            &text
                .lines()
                .filter(|l| l.starts_with('|'))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        md.push_str("\n\n");
    }
}

fn others(r: &Results, md: &mut String) {
    let known = ["b0_syscall", "b0_epoll_wait0", "b0_wait_per_fd"];
    for (group, funcs) in r {
        if known.contains(&group.as_str()) {
            continue;
        }
        let _ = writeln!(
            md,
            "### {group}\n\n| benchmark | n | per element | per iteration |\n|---|---|---|---|"
        );
        for (func, values) in funcs {
            for (value, b) in values {
                let _ = writeln!(
                    md,
                    "| {func} | {value} | {} | {} |",
                    fmt_ns(b.per()),
                    fmt_ns(b.ns)
                );
            }
        }
        md.push('\n');
    }
}

/// For `groups` bar groups and each server, the medians of the rounds'
/// rates and CPU times (÷ 1000: k/s and µs) that `rounds` gives for a
/// group and a server: the two series of a throughput and a CPU plot.
fn medians<'a>(
    groups: usize,
    servers: &[&str],
    rounds: impl Fn(usize, &str) -> Option<&'a (Vec<f64>, Vec<f64>)>,
) -> (Series, Series) {
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() { 0.0 } else { v[v.len() / 2] }
    };
    let mut rate: Series = Vec::new();
    let mut cpu: Series = Vec::new();
    for &server in servers {
        let mut r = Vec::new();
        let mut c = Vec::new();
        for i in 0..groups {
            if let Some((rates, cpus)) = rounds(i, server) {
                r.push((i as f64, median(rates) / 1000.0));
                c.push((i as f64, median(cpus) / 1000.0));
            }
        }
        rate.push((server.to_owned(), r));
        cpu.push((server.to_owned(), c));
    }
    (rate, cpu)
}

fn b2(md: &mut String, docs: &Path, results: &Path) {
    let Ok(csv) = std::fs::read_to_string(results.join("echo.csv")) else {
        return;
    };
    md.push_str("### B2 echo (`cargo bench --bench echo -- --full`)\n\n");
    if let Ok(table) = std::fs::read_to_string(results.join("echo.md")) {
        md.push_str(table.lines().skip(2).collect::<Vec<_>>().join("\n").trim());
        md.push_str("\n\n");
    }
    // (conns, size) → server → (rates, cpu)
    let mut data: EchoData = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 12 || f[11] != "true" {
            continue;
        }
        let (Ok(conns), Ok(size), Ok(rate), Ok(cpu)) = (
            f[1].parse::<u64>(),
            f[2].parse::<u64>(),
            f[7].parse::<f64>(),
            f[9].parse::<f64>(),
        ) else {
            continue;
        };
        let e = data
            .entry((size, conns))
            .or_default()
            .entry(f[4].to_owned())
            .or_default();
        e.0.push(rate);
        e.1.push(cpu);
    }
    let groups: Vec<String> = data
        .keys()
        .map(|(size, conns)| format!("{conns}×{size}B"))
        .collect();
    let per: Vec<_> = data.values().collect();
    let (rate, cpu) = medians(
        per.len(),
        &["ours", "mio", "polling", "libev", "libevent", "libc"],
        |i, server| per[i].get(server),
    );
    bar_plot(
        &docs.join("bench/echo_throughput.svg"),
        "B2 echo: throughput (median of rounds)",
        "k msg/s",
        &groups,
        &rate,
    );
    bar_plot(
        &docs.join("bench/echo_cpu.svg"),
        "B2 echo: server CPU per message (median of rounds)",
        "µs CPU / msg",
        &groups,
        &cpu,
    );
    md.push_str("![echo throughput](bench/echo_throughput.svg)\n\n![echo CPU per message](bench/echo_cpu.svg)\n\n");
    include_table(
        md,
        results,
        "echo_instructions.md",
        "Echo server, user-space instructions per message (`cargo bench -p reactor-bench --bench echo -- --instructions`, callgrind, start-up subtracted; deterministic):",
    );
}

/// B5: the rounds' tables, and one log–log plot per operation with every
/// peer.
fn b5(md: &mut String, docs: &Path, results: &Path) {
    let Some((data, order)) = read_rounds(results, "b5_rounds") else {
        return;
    };
    md.push_str("### B5 timers (`cargo bench -p reactor-bench --bench timers -- --full`)\n\n");
    include_md(md, results, "b5_rounds");
    for op in ["insert", "cancel", "expire"] {
        let groups: Vec<String> = data
            .keys()
            .filter(|g| g.split('/').next() == Some(op))
            .cloned()
            .collect();
        let series: Series = order
            .iter()
            .filter(|v| groups.iter().any(|g| data[g].contains_key(*v)))
            .map(|v| {
                let mut points: Vec<(f64, f64)> = groups
                    .iter()
                    .filter_map(|g| {
                        let n = g.split('/').nth(1)?.parse::<f64>().ok()?;
                        rounds_median(&data, g, v).map(|y| (n, y))
                    })
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                (v.clone(), points)
            })
            .collect();
        line_plot(
            &docs.join(format!("bench/timers_{op}.svg")),
            &format!("B5: {op}, time per timer vs timers (median of rounds)"),
            "timers (n)",
            "time per timer",
            &series,
        );
        let _ = write!(md, "![timers {op}](bench/timers_{op}.svg) ");
    }
    md.push_str("\n\n");
}

/// Memory per registration (`cargo bench -p reactor-bench --bench memory`).
fn memory(md: &mut String, results: &Path) {
    if let Ok(text) = std::fs::read_to_string(results.join("memory.md")) {
        md.push_str(
            "### Memory per registration (`cargo bench -p reactor-bench --bench memory`)\n\n",
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            md.push_str(line);
            md.push('\n');
        }
        md.push('\n');
    }
}

/// HTTP against nginx: `benches/http.rs`'s table, and a throughput and a
/// CPU-per-request plot of the medians of its rounds.
fn http(md: &mut String, docs: &Path, results: &Path) {
    let Ok(csv) = std::fs::read_to_string(results.join("http.csv")) else {
        return;
    };
    md.push_str("### HTTP (`cargo bench -p reactor-bench --bench http -- --full`)\n\n");
    if let Ok(table) = std::fs::read_to_string(results.join("http.md")) {
        md.push_str(table.trim());
        md.push_str("\n\n");
    }
    // load → server → (req/s of each round, CPU ns/req of each round), in
    // the order the loads were run.
    let mut loads: Vec<String> = Vec::new();
    let mut data: BTreeMap<(usize, String), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(load), Some(server), Some(Ok(rate)), Some(Ok(cpu))) = (
            f.first(),
            f.get(2),
            f.get(3).map(|v| v.parse::<f64>()),
            f.get(5).map(|v| v.parse::<f64>()),
        ) else {
            continue;
        };
        let i = loads.iter().position(|l| l == load).unwrap_or_else(|| {
            loads.push((*load).to_owned());
            loads.len() - 1
        });
        let e = data.entry((i, (*server).to_owned())).or_default();
        e.0.push(rate);
        e.1.push(cpu);
    }
    let (rate, cpu) = medians(loads.len(), &["ours", "nginx"], |i, server| {
        data.get(&(i, server.to_owned()))
    });
    bar_plot(
        &docs.join("bench/http_throughput.svg"),
        "HTTP: requests/s, wrk -t1 -c50 (median of rounds)",
        "k requests/s",
        &loads,
        &rate,
    );
    bar_plot(
        &docs.join("bench/http_cpu.svg"),
        "HTTP: server CPU per request (median of rounds)",
        "µs CPU / request",
        &loads,
        &cpu,
    );
    md.push_str("![HTTP throughput](bench/http_throughput.svg)\n\n![HTTP CPU per request](bench/http_cpu.svg)\n\n");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--report") {
        println!("report: pass --report to regenerate docs/benchmarks.md (benches/run.sh does)");
        return;
    }
    // The package lives in benches/; the docs are the repository's. Results
    // and criterion's output are in the target directory (criterion too
    // honours CARGO_TARGET_DIR).
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf);
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let results = target.join("bench-results");
    let docs = root.join("docs");
    let _ = std::fs::create_dir_all(docs.join("bench"));
    let mut r = Results::new();
    collect(&target.join("criterion"), &mut r);

    let mut md = String::new();
    if let Ok(meta) = std::fs::read_to_string(results.join("run.txt")) {
        md.push_str("```\n");
        md.push_str(meta.trim());
        md.push_str("\n```\n\n");
    }
    b0(&r, &mut md, &docs);
    b1(&mut md, &docs, &results);
    b8(&mut md, &docs, &results);
    b2(&mut md, &docs, &results);
    http(&mut md, &docs, &results);
    include_table(
        &mut md,
        &results,
        "proxy.md",
        "### Proxy throughput (`cargo bench --bench proxy`): `examples/proxy` against `mio_proxy`",
    );
    b5(&mut md, &docs, &results);
    memory(&mut md, &results);
    others(&r, &mut md);

    let doc_path = docs.join("benchmarks.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|_| format!("# Benchmarks\n\n{BEGIN}\n{END}\n"));
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        eprintln!(
            "report: {} lacks the markers {BEGIN} / {END}",
            doc_path.display()
        );
        std::process::exit(1);
    };
    let new_doc = format!("{}{BEGIN}\n\n{md}{}", &doc[..b], &doc[e..]);
    if let Err(err) = std::fs::write(&doc_path, new_doc) {
        eprintln!("report: {}: {err}", doc_path.display());
        std::process::exit(1);
    }
    println!("report: wrote {} and docs/bench/*.svg", doc_path.display());
}
