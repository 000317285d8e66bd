//! The printed results: one row per measured workload, their ratios, and the
//! machine they ran on.

use crate::open_loop::Outcome;

/// Prints the latency table of `rows` (a name and what it did), each run at
/// `rate` calls per second (0: as fast as it could, shown as `max`).
pub fn print_table(rate: u32, rows: &[(&str, &Outcome)]) {
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  errors",
        "", "target/s", "ok/s", "p50 ms", "p90 ms", "p99 ms", "p999 ms", "max ms"
    );
    let target = if rate == 0 { "max".to_string() } else { rate.to_string() };
    for (name, outcome) in rows {
        let latency = &outcome.latency;
        let ms = |quantile: f64| latency.value_at_quantile(quantile) as f64 / 1000.0;
        println!(
            "{name:<14} {:>8} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
            target,
            outcome.throughput(),
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            latency.max() as f64 / 1000.0,
            errors(outcome),
        );
    }
}

/// `a / b` of the p50, the p99 and the throughput.
pub fn print_ratios(a: (&str, &Outcome), b: (&str, &Outcome)) {
    let quantile = |outcome: &Outcome, q: f64| outcome.latency.value_at_quantile(q) as f64;
    println!(
        "{} / {}: p50 x{:.1}, p99 x{:.1}, throughput x{:.2}",
        a.0,
        b.0,
        quantile(a.1, 0.5) / quantile(b.1, 0.5),
        quantile(a.1, 0.99) / quantile(b.1, 0.99),
        a.1.throughput() / b.1.throughput(),
    );
}

/// Failed calls by kind, e.g. `Unavailable=3 timeout=1`, or `0`.
pub fn errors(outcome: &Outcome) -> String {
    if outcome.errors.is_empty() {
        return "0".into();
    }
    outcome.errors.iter().map(|(kind, count)| format!("{kind}={count}")).collect::<Vec<_>>().join(" ")
}

/// `machine: 2 CPUs (AMD EPYC), 23.5 GiB RAM, load average 0.52 0.40 0.31`,
/// from what this process sees. Taken before the run, the load average shows
/// how busy the machine already was.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = proc_field(&cpuinfo, "model name").unwrap_or("unknown CPU");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = proc_field(&meminfo, "MemTotal")
        .and_then(|total| total.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(|| "unknown".into(), |kib| format!("{:.1} GiB", kib / (1024.0 * 1024.0)));
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loadavg = loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    format!("machine: {cpus} CPUs ({model}), {memory} RAM, load average {loadavg}")
}

/// The process's peak resident set (`VmHWM`), e.g. `412.3 MiB`: with the
/// server in this process, an upper bound of the server's own.
pub fn peak_rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    proc_field(&status, "VmHWM")
        .and_then(|peak| peak.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(|| "unknown".into(), |kib| format!("{:.1} MiB", kib / 1024.0))
}

/// The process's resident set now (`VmRSS`), in bytes.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = proc_field(&status, "VmRSS")?.trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// The value of the first `name: value` line of a `/proc` file.
fn proc_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}
