//! Settings the host passes on the kernel command line (`voidbox.*=`).

use tracing::Level;

pub struct Cmdline {
    raw: String,
}

impl Cmdline {
    pub fn read() -> Self {
        let raw = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        Cmdline {
            raw: raw.trim().to_string(),
        }
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The value of `key=value`; the last occurrence wins, as in the kernel.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .next_back()
    }

    /// The host port vminitd dials for TTRPC.
    pub fn ttrpc_port(&self) -> u32 {
        self.get("voidbox.port")
            .and_then(|v| v.parse().ok())
            .unwrap_or(voidbox_api::TTRPC_PORT)
    }

    /// Whether the host exports the guest's spans (`voidbox.trace=1`).
    pub fn tracing(&self) -> bool {
        self.get("voidbox.trace") == Some("1")
    }

    /// The span buffer's capacity (`voidbox.trace_buffer=N`).
    pub fn trace_buffer(&self) -> Option<usize> {
        self.get("voidbox.trace_buffer").and_then(|v| v.parse().ok())
    }

    pub fn log_level(&self) -> Level {
        match self.get("voidbox.log") {
            Some("debug") => Level::DEBUG,
            Some("trace") => Level::TRACE,
            Some("warn") => Level::WARN,
            _ => Level::INFO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_value_wins_and_defaults_apply() {
        let c = Cmdline {
            raw: "console=ttyS0 voidbox.port=7 quiet voidbox.port=9".into(),
        };
        assert_eq!(c.ttrpc_port(), 9);
        assert_eq!(c.get("console"), Some("ttyS0"));
        assert_eq!(c.get("quiet"), None);
        let d = Cmdline { raw: String::new() };
        assert_eq!(d.ttrpc_port(), voidbox_api::TTRPC_PORT);
        assert_eq!(d.log_level(), Level::INFO);
    }
}
