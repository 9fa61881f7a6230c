//! A process's CPU time and memory, read from `/proc` (Linux only).

use std::path::Path;
use std::time::Duration;

/// Clock ticks per second for `/proc/PID/stat` times (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime (user + system CPU, in ticks) from the text of `/proc/PID/stat`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // "pid (comm) state ppid ..." — comm may hold spaces and parentheses, so split after
    // the last ')'. Fields after it start at field 3 (state); utime is 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` field (e.g. `VmHWM`, `VmRSS`) of `/proc/PID/status`, in bytes.
pub fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = v.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// CPU time (user + system) the process has used.
pub fn cpu_time(pid: u32, ticks_per_sec: u64) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let t = parse_stat_cpu_ticks(&s)?;
    Some(Duration::from_secs_f64(t as f64 / ticks_per_sec as f64))
}

/// Peak resident set size (`VmHWM`) in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    parse_status_kb(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmHWM",
    )
}

/// Current resident set size (`VmRSS`) in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    parse_status_kb(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmRSS",
    )
}

/// Resets the process's peak RSS to its current RSS (`echo 5 > /proc/PID/clear_refs`), so
/// the next [`peak_rss`] is the peak since now. Returns false where not permitted.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Bytes of disk the files under `dir` use (like `du -s`).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            total += disk_usage(&e.path());
        } else {
            total += m.blocks() * 512;
        }
    }
    total
}

/// Human size: `123.4 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line() {
        let s = "4242 (etcd (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 12 0 100 \
                 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(s), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_fields() {
        let s = "Name:\tetcd\nVmPeak:\t  900 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(parse_status_kb(s, "VmHWM"), Some(51200 * 1024));
        assert_eq!(parse_status_kb(s, "VmRSS"), Some(40960 * 1024));
        assert_eq!(parse_status_kb(s, "VmSwap"), None);
    }

    #[test]
    fn own_process() {
        let pid = std::process::id();
        assert!(cpu_time(pid, clock_ticks()).is_some());
        assert!(peak_rss(pid).unwrap() > 0);
        assert!(rss(pid).unwrap() > 0);
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
