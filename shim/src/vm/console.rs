//! Reading the tail of a log file (the guest console, a helper's stderr).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The last `lines` lines of the file, read from at most its last 64 KiB.
pub fn tail(path: &Path, lines: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else {
        return format!("({} unreadable)", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    let text = all[all.len().saturating_sub(lines)..].join("\n");
    if text.trim().is_empty() {
        "(empty)".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_last_lines() {
        let dir = std::env::temp_dir().join(format!("voidbox-tail-{}", std::process::id()));
        std::fs::write(&dir, "a\nb\nc\nd\n").unwrap();
        assert_eq!(super::tail(&dir, 2), "c\nd");
        std::fs::write(&dir, "").unwrap();
        assert_eq!(super::tail(&dir, 2), "(empty)");
        std::fs::remove_file(&dir).unwrap();
    }
}
