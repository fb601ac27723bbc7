//! How a VM ended.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest powered off after the host asked it to.
    Shutdown,
    /// The guest reset without being asked: vminitd died or rebooted.
    GuestReset { console: String },
    /// The guest kernel panicked; `message` is the panic line.
    Panicked { message: String, console: String },
    /// The VMM was killed by a signal (by the host, or by a crash).
    Killed { signal: i32 },
    /// The VMM exited with an error code.
    VmmFailed { code: i32, log: String },
    /// A helper the VM depends on (vsock or virtio-fs) ended, so the VM was stopped.
    HelperFailed {
        process: String,
        status: String,
        log: String,
    },
}

impl VmExit {
    /// Maps a VMM's wait status (and the guest console) onto an exit reason.
    /// Every backend ends its VMM with status 0 when the guest resets.
    pub fn classify(status: std::process::ExitStatus, requested: bool, console: &str, vmm_log: &str) -> Self {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return VmExit::Killed { signal };
        }
        match status.code() {
            Some(0) => {
                if let Some(line) = console.lines().find(|l| l.contains("Kernel panic")) {
                    VmExit::Panicked {
                        message: line.trim().to_string(),
                        console: console.to_string(),
                    }
                } else if requested {
                    VmExit::Shutdown
                } else {
                    VmExit::GuestReset {
                        console: console.to_string(),
                    }
                }
            }
            Some(code) => VmExit::VmmFailed {
                code,
                log: vmm_log.to_string(),
            },
            None => VmExit::VmmFailed {
                code: -1,
                log: vmm_log.to_string(),
            },
        }
    }

    /// True for a power-off the host asked for.
    pub fn is_clean(&self) -> bool {
        matches!(self, VmExit::Shutdown)
    }
}

impl fmt::Display for VmExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmExit::Shutdown => write!(f, "guest powered off on request"),
            VmExit::GuestReset { console } => {
                write!(f, "guest reset unexpectedly; last console lines:\n{console}")
            }
            VmExit::Panicked { message, console } => {
                write!(f, "guest kernel panic: {message}; last console lines:\n{console}")
            }
            VmExit::Killed { signal } => write!(f, "VMM killed by signal {signal}"),
            VmExit::VmmFailed { code, log } => write!(f, "VMM exited with code {code}: {log}"),
            VmExit::HelperFailed { process, status, log } => {
                write!(f, "{process} exited ({status}), so the VM was stopped: {log}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn classifies_exits() {
        let ok = std::process::ExitStatus::from_raw(0);
        assert_eq!(VmExit::classify(ok, true, "bye", ""), VmExit::Shutdown);
        assert!(matches!(
            VmExit::classify(ok, false, "x", ""),
            VmExit::GuestReset { .. }
        ));
        let panic = "[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n";
        match VmExit::classify(ok, true, panic, "") {
            VmExit::Panicked { message, .. } => assert!(message.starts_with("[ 1.0] Kernel panic")),
            other => panic!("{other:?}"),
        }
        let killed = std::process::ExitStatus::from_raw(9);
        assert_eq!(VmExit::classify(killed, false, "", ""), VmExit::Killed { signal: 9 });
        let failed = std::process::ExitStatus::from_raw(1 << 8);
        assert!(matches!(
            VmExit::classify(failed, false, "", "bad"),
            VmExit::VmmFailed { code: 1, .. }
        ));
    }
}
