//! One sample of the guest: /proc/stat, /proc/meminfo, /proc/pressure and
//! every container's cgroup.

use voidbox_api::telemetry::{ContainerSample, CpuTimes, Pressure, Sample};

use crate::cgroups::containers_parent;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The aggregate `cpu` line of /proc/stat.
pub fn parse_cpu(stat: &str) -> CpuTimes {
    let f: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| l.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    CpuTimes {
        user: at(0),
        nice: at(1),
        system: at(2),
        idle: at(3),
        iowait: at(4),
        irq: at(5),
        softirq: at(6),
        steal: at(7),
        ..Default::default()
    }
}

/// Online CPUs: the `cpuN` lines of /proc/stat (cheaper than asking
/// available_parallelism, which reads cgroup files every time).
pub fn count_cpus(stat: &str) -> u32 {
    stat.lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count() as u32
}

/// A /proc/meminfo field, in bytes.
pub fn meminfo(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// A /proc/pressure file: "some avg10=.. avg60=.. avg300=.. total=..", "full ...".
pub fn parse_pressure(text: &str) -> Pressure {
    let mut p = Pressure::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let kind = words.next().unwrap_or_default();
        for kv in words {
            let Some((k, v)) = kv.split_once('=') else { continue };
            match (kind, k) {
                ("some", "avg10") => p.some_avg10 = v.parse().unwrap_or(0.0),
                ("full", "avg10") => p.full_avg10 = v.parse().unwrap_or(0.0),
                ("some", "total") => p.some_total_us = v.parse().unwrap_or(0),
                ("full", "total") => p.full_total_us = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    p
}

fn flat(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn containers() -> Vec<ContainerSample> {
    let Ok(dir) = std::fs::read_dir(containers_parent()) else {
        return Vec::new();
    };
    // The entry's own type (getdents' d_type), not a stat of each: the
    // parent also holds its dozens of cgroup interface files, and their
    // stats were about a quarter of a sample's guest CPU under TCG.
    dir.filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let p = e.path();
            let file = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
            ContainerSample {
                id: e.file_name().to_string_lossy().into_owned(),
                cpu_usage_usec: flat(&file("cpu.stat"), "usage_usec"),
                memory_current: file("memory.current").trim().parse().unwrap_or(0),
                oom_kills: flat(&file("memory.events"), "oom_kill"),
                pids_current: file("pids.current").trim().parse().unwrap_or(0),
                ..Default::default()
            }
        })
        .collect()
}

/// vminitd's CPU time so far, in ns: the scheduler's exact runtime, not
/// /proc's 10 ms ticks, so that a sampler costing well under a tick shows.
pub fn own_cpu_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

pub fn take() -> Sample {
    let meminfo_text = read("/proc/meminfo");
    let stat = read("/proc/stat");
    Sample {
        time_unix_nano: crate::boot::realtime_ns(),
        cpu: Some(parse_cpu(&stat)).into(),
        cpus: count_cpus(&stat),
        memory_total: meminfo(&meminfo_text, "MemTotal"),
        memory_available: meminfo(&meminfo_text, "MemAvailable"),
        memory_free: meminfo(&meminfo_text, "MemFree"),
        cpu_pressure: Some(parse_pressure(&read("/proc/pressure/cpu"))).into(),
        memory_pressure: Some(parse_pressure(&read("/proc/pressure/memory"))).into(),
        io_pressure: Some(parse_pressure(&read("/proc/pressure/io"))).into(),
        containers: containers(),
        sampler_cpu_ns: own_cpu_ns(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let cpu = parse_cpu("cpu  10 1 20 300 4 5 6 7 0 0\ncpu0 10 1 20 300 4 5 6 7 0 0\n");
        assert_eq!((cpu.user, cpu.system, cpu.idle, cpu.steal), (10, 20, 300, 7));
        assert_eq!(count_cpus("cpu  1 2\ncpu0 1 2\ncpu1 1 2\nintr 5\nctxt 9\n"), 2);
        let mem = "MemTotal:         501700 kB\nMemFree:          400000 kB\nMemAvailable:     450000 kB\n";
        assert_eq!(meminfo(mem, "MemAvailable"), 450_000 * 1024);
        assert_eq!(meminfo(mem, "MemTotal"), 501_700 * 1024);
        let p = parse_pressure(
            "some avg10=1.50 avg60=0.20 avg300=0.00 total=1234\nfull avg10=0.25 avg60=0.00 avg300=0.00 total=99\n",
        );
        assert_eq!(
            (p.some_avg10, p.full_avg10, p.some_total_us, p.full_total_us),
            (1.5, 0.25, 1234, 99)
        );
        assert_eq!(flat("usage_usec 77\nuser_usec 5\n", "usage_usec"), 77);
        assert!(own_cpu_ns() < 3_600_000_000_000, "a sane number");
    }
}
