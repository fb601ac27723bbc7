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

/// Follows a growing console log, handing out complete new lines.
pub struct Follower {
    path: std::path::PathBuf,
    pos: u64,
    partial: Vec<u8>,
}

impl Follower {
    pub fn new(path: &Path) -> Self {
        Follower {
            path: path.to_path_buf(),
            pos: 0,
            partial: Vec::new(),
        }
    }

    /// Lines written since the last call; `flush` also returns an
    /// unterminated last line.
    pub fn drain(&mut self, flush: bool) -> Vec<String> {
        let mut lines = Vec::new();
        if let Ok(mut file) = std::fs::File::open(&self.path) {
            if file.seek(SeekFrom::Start(self.pos)).is_ok() {
                let mut buf = Vec::new();
                if let Ok(n) = file.read_to_end(&mut buf) {
                    self.pos += n as u64;
                    self.partial.extend_from_slice(&buf);
                }
            }
        }
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            lines.push(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        if flush && !self.partial.is_empty() {
            lines.push(
                String::from_utf8_lossy(&std::mem::take(&mut self.partial))
                    .trim_end()
                    .to_string(),
            );
        }
        lines.retain(|l| !l.is_empty());
        lines
    }
}

#[cfg(test)]
mod follower_tests {
    use super::Follower;
    use std::io::Write;

    #[test]
    fn hands_out_each_line_once() {
        let path = std::env::temp_dir().join(format!("voidbox-follow-{}", std::process::id()));
        let mut f = std::fs::File::create(&path).unwrap();
        let mut follow = Follower::new(&path);
        assert!(follow.drain(false).is_empty());
        write!(f, "one\ntw").unwrap();
        assert_eq!(follow.drain(false), ["one"]);
        write!(f, "o\nthree").unwrap();
        assert_eq!(follow.drain(false), ["two"]);
        assert_eq!(follow.drain(true), ["three"]);
        std::fs::remove_file(path).unwrap();
    }
}
