//! containerd's cgroup v2 metrics (`io.containerd.cgroups.v2.Metrics`) from
//! the files of the container's cgroup in the guest.

use std::collections::HashMap;

use containerd_shim_protos::cgroups_v2::metrics::{
    CPUStat, IOEntry, IOStat, MemoryEvents, MemoryStat, Metrics, PidsStat,
};
use protobuf::well_known_types::any::Any;
use protobuf::{Message, MessageField};

pub const TYPE_URL: &str = "io.containerd.cgroups.v2.Metrics";

/// "key value" lines as a map.
fn flat_keyed(text: Option<&String>) -> HashMap<&str, u64> {
    text.map(|t| {
        t.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k, v.trim().parse().ok()?))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// A single number; "max" (no limit) as u64::MAX.
fn single(text: Option<&String>) -> u64 {
    match text.map(|t| t.trim()) {
        Some("max") => u64::MAX,
        Some(v) => v.parse().unwrap_or(0),
        None => 0,
    }
}

pub fn from_files(files: &HashMap<String, String>) -> Metrics {
    let cpu = flat_keyed(files.get("cpu.stat"));
    let mem = flat_keyed(files.get("memory.stat"));
    let events = flat_keyed(files.get("memory.events"));
    let get = |m: &HashMap<&str, u64>, k: &str| m.get(k).copied().unwrap_or(0);

    let memory = MemoryStat {
        anon: get(&mem, "anon"),
        file: get(&mem, "file"),
        kernel_stack: get(&mem, "kernel_stack"),
        slab: get(&mem, "slab"),
        sock: get(&mem, "sock"),
        shmem: get(&mem, "shmem"),
        file_mapped: get(&mem, "file_mapped"),
        file_dirty: get(&mem, "file_dirty"),
        file_writeback: get(&mem, "file_writeback"),
        anon_thp: get(&mem, "anon_thp"),
        inactive_anon: get(&mem, "inactive_anon"),
        active_anon: get(&mem, "active_anon"),
        inactive_file: get(&mem, "inactive_file"),
        active_file: get(&mem, "active_file"),
        unevictable: get(&mem, "unevictable"),
        slab_reclaimable: get(&mem, "slab_reclaimable"),
        slab_unreclaimable: get(&mem, "slab_unreclaimable"),
        pgfault: get(&mem, "pgfault"),
        pgmajfault: get(&mem, "pgmajfault"),
        workingset_refault: get(&mem, "workingset_refault_anon") + get(&mem, "workingset_refault_file"),
        workingset_activate: get(&mem, "workingset_activate_anon") + get(&mem, "workingset_activate_file"),
        workingset_nodereclaim: get(&mem, "workingset_nodereclaim"),
        pgrefill: get(&mem, "pgrefill"),
        pgscan: get(&mem, "pgscan"),
        pgsteal: get(&mem, "pgsteal"),
        pgactivate: get(&mem, "pgactivate"),
        pgdeactivate: get(&mem, "pgdeactivate"),
        pglazyfree: get(&mem, "pglazyfree"),
        pglazyfreed: get(&mem, "pglazyfreed"),
        thp_fault_alloc: get(&mem, "thp_fault_alloc"),
        thp_collapse_alloc: get(&mem, "thp_collapse_alloc"),
        usage: single(files.get("memory.current")),
        usage_limit: single(files.get("memory.max")),
        swap_usage: single(files.get("memory.swap.current")),
        swap_limit: single(files.get("memory.swap.max")),
        ..Default::default()
    };
    let io = IOStat {
        usage: files
            .get("io.stat")
            .map(|t| t.lines().filter_map(io_entry).collect())
            .unwrap_or_default(),
        ..Default::default()
    };
    Metrics {
        pids: MessageField::some(PidsStat {
            current: single(files.get("pids.current")),
            limit: single(files.get("pids.max")),
            ..Default::default()
        }),
        cpu: MessageField::some(CPUStat {
            usage_usec: get(&cpu, "usage_usec"),
            user_usec: get(&cpu, "user_usec"),
            system_usec: get(&cpu, "system_usec"),
            nr_periods: get(&cpu, "nr_periods"),
            nr_throttled: get(&cpu, "nr_throttled"),
            throttled_usec: get(&cpu, "throttled_usec"),
            ..Default::default()
        }),
        memory: MessageField::some(memory),
        io: MessageField::some(io),
        memory_events: MessageField::some(MemoryEvents {
            low: get(&events, "low"),
            high: get(&events, "high"),
            max: get(&events, "max"),
            oom: get(&events, "oom"),
            oom_kill: get(&events, "oom_kill"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.." as an IOEntry.
fn io_entry(line: &str) -> Option<IOEntry> {
    let mut parts = line.split_whitespace();
    let (major, minor) = parts.next()?.split_once(':')?;
    let mut e = IOEntry {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        ..Default::default()
    };
    for kv in parts {
        let (k, v) = kv.split_once('=')?;
        let v = v.parse().unwrap_or(0);
        match k {
            "rbytes" => e.rbytes = v,
            "wbytes" => e.wbytes = v,
            "rios" => e.rios = v,
            "wios" => e.wios = v,
            _ => {}
        }
    }
    Some(e)
}

pub fn to_any(metrics: &Metrics) -> Any {
    Any {
        type_url: TYPE_URL.into(),
        value: metrics.write_to_bytes().expect("metrics serialize"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guest_cgroup_files() {
        let files: HashMap<String, String> = [
            ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"),
            ("memory.stat", "anon 4096\nfile 8192\n"),
            ("memory.current", "12288\n"),
            ("memory.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            ("pids.current", "2\n"),
            ("io.stat", "254:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let m = from_files(&files);
        assert_eq!(m.cpu.usage_usec, 1500);
        assert_eq!(m.memory.anon, 4096);
        assert_eq!(m.memory.usage, 12288);
        assert_eq!(m.memory.usage_limit, u64::MAX);
        assert_eq!(m.memory_events.oom_kill, 1);
        assert_eq!(m.pids.current, 2);
        assert_eq!(m.io.usage[0].rbytes, 4096);
        assert_eq!(to_any(&m).type_url, TYPE_URL);
    }
}
