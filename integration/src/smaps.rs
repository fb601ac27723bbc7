//! Where a process's PSS goes, from `/proc/PID/smaps`: every mapping falls
//! in one [`Kind`], so the kinds add up to the process's whole PSS. The
//! bench's memory suite prints it; the tests read a VMM's translation cache.

/// What a mapping holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Anonymous and executable: a JIT's code, QEMU's TCG translation cache.
    TranslationCache,
    /// A memfd: the guest's RAM (QEMU's memory backend, which virtiofsd and
    /// the vsock device map too, so PSS splits it among them).
    GuestMemory,
    /// Backed by a file: binaries, libraries, the kernel image QEMU maps.
    Files,
    /// The rest: heaps, stacks, anonymous data (QEMU's TLBs and tables).
    OtherAnonymous,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::TranslationCache,
        Kind::GuestMemory,
        Kind::Files,
        Kind::OtherAnonymous,
    ];

    /// Its place in [`Kind::ALL`], and in [`pss_by_kind`]'s result.
    fn slot(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).expect("every kind is in ALL")
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::TranslationCache => "translation cache (anonymous, executable)",
            Kind::GuestMemory => "guest memory (memfd)",
            Kind::Files => "files (binaries, libraries, kernel image)",
            Kind::OtherAnonymous => "heaps, stacks, other anonymous",
        }
    }
}

/// One mapping's kind, from its smaps header line: `start-end perms offset
/// dev inode [name]`.
fn kind(header: &str) -> Kind {
    let fields: Vec<&str> = header.split_whitespace().collect();
    let perms = fields.get(1).copied().unwrap_or("");
    let name = fields.get(5..).map(|f| f.join(" ")).unwrap_or_default();
    if name.starts_with("/memfd:") {
        Kind::GuestMemory
    } else if name.starts_with('/') {
        Kind::Files
    } else if name.is_empty() && perms.contains('x') {
        Kind::TranslationCache
    } else {
        Kind::OtherAnonymous
    }
}

/// PSS in KiB by kind, in [`Kind::ALL`]'s order.
pub fn pss_by_kind(smaps: &str) -> [u64; 4] {
    let mut out = [0; 4];
    let mut current = Kind::OtherAnonymous;
    for line in smaps.lines() {
        if let Some(v) = line.strip_prefix("Pss:") {
            let kib: u64 = v.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
            out[current.slot()] += kib;
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            current = kind(line);
        }
    }
    out
}

/// [`pss_by_kind`] of a live process; zeros if it is gone.
pub fn of_pid(pid: u32) -> [u64; 4] {
    pss_by_kind(&std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default())
}

/// The PSS of `kind` in process `pid`, MiB.
pub fn mib_of(pid: u32, kind: Kind) -> f64 {
    of_pid(pid)[kind.slot()] as f64 / 1024.0
}

/// The whole PSS of process `pid`, MiB.
pub fn total_mib(pid: u32) -> f64 {
    of_pid(pid).iter().sum::<u64>() as f64 / 1024.0
}

/// A reading in MiB (`read`), taken every 200 ms until `done` holds or
/// `within` passes; the last one.
pub async fn poll_mib(within: std::time::Duration, read: impl Fn() -> f64, done: impl Fn(f64) -> bool) -> f64 {
    let start = std::time::Instant::now();
    loop {
        let mib = read();
        if done(mib) || start.elapsed() > within {
            return mib;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapping_counts_once_under_its_kind() {
        let smaps = "\
55d0c0000000-55d0c1000000 r-xp 00000000 fe:01 123 /usr/bin/qemu-system-x86_64
Size:              16384 kB
Pss:                1000 kB
Pss_Dirty:             0 kB
7f0000000000-7f0040000000 rwxp 00000000 00:00 0 
Pss:               40000 kB
7f1000000000-7f1020000000 rw-s 00000000 00:01 9 /memfd:memory-backend-memfd (deleted)
Pss:               30000 kB
7f2000000000-7f2000500000 rw-p 00000000 00:00 0 
Pss:                5000 kB
55d0c2000000-55d0c2600000 rw-p 00000000 00:00 0                          [heap]
Pss:                3000 kB
VmFlags: rd wr mr mw me ac sd
";
        let by = pss_by_kind(smaps);
        assert_eq!(by, [40000, 30000, 1000, 8000]);
        assert_eq!(by.iter().sum::<u64>(), 79000, "the kinds add up to the whole");
    }
}
