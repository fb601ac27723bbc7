//! Choosing a VMM backend: libkrun where hardware KVM exists, QEMU elsewhere,
//! unless told otherwise.

use std::str::FromStr;

use super::libkrun::{Libkrun, VOIDBOX_KRUN};
use super::qemu::{Accel, Qemu};
use super::{kvm, Backend};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackendChoice {
    #[default]
    Auto,
    Qemu,
    Libkrun,
}

impl FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "qemu" => Ok(BackendChoice::Qemu),
            "libkrun" => Ok(BackendChoice::Libkrun),
            other => Err(format!("unknown VMM backend {other:?}: use auto, qemu or libkrun")),
        }
    }
}

/// The backend for `choice`, and why it was picked (for the one log line).
/// An explicit libkrun is returned even without hardware KVM: its preflight
/// then fails at once, naming the reason.
pub fn choose(choice: BackendChoice, accel: Option<Accel>) -> (Box<dyn Backend>, String) {
    match choice {
        BackendChoice::Qemu => (Box::new(Qemu::choosing(accel)), "qemu was asked for".into()),
        BackendChoice::Libkrun => (Box::new(Libkrun), "libkrun was asked for".into()),
        BackendChoice::Auto => match kvm::hardware_kvm() {
            Ok(()) => match VOIDBOX_KRUN.locate() {
                Ok(_) => (Box::new(Libkrun), "auto: hardware KVM is available".into()),
                Err(e) => (
                    Box::new(Qemu::choosing(accel)),
                    format!("auto: hardware KVM is available but {e}; using QEMU with KVM"),
                ),
            },
            Err(why) => (
                Box::new(Qemu::choosing(accel)),
                format!("auto: {why}; using QEMU (TCG)"),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_explicit_ones_are_kept() {
        assert_eq!("libkrun".parse(), Ok(BackendChoice::Libkrun));
        assert!("firecracker"
            .parse::<BackendChoice>()
            .unwrap_err()
            .contains("use auto, qemu or libkrun"));
        assert_eq!(choose(BackendChoice::Libkrun, None).0.name(), "libkrun");
        assert_eq!(choose(BackendChoice::Qemu, None).0.name(), "qemu");
        let (auto, why) = choose(BackendChoice::Auto, None);
        // Whatever this host has, auto explains itself.
        assert!(why.starts_with("auto: "), "{why}");
        if kvm::hardware_kvm().is_err() {
            assert_eq!(auto.name(), "qemu", "no hardware KVM: QEMU");
        }
    }
}
