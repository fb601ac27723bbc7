//! The stdio destinations containerd hands a shim, as its runc shim reads
//! them: a FIFO path (bare or `fifo://`), `file://PATH` (output appended to
//! PATH), or `binary://PATH?key=value...` (a logging program fed on fds 3
//! and 4).

use std::path::PathBuf;

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Fifo(PathBuf),
    File(PathBuf),
    Binary(LoggerCommand),
}

/// A logging binary and its arguments, from a `binary://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerCommand {
    pub path: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    #[error("stdio {uri:?}: {reason}")]
    Invalid { uri: String, reason: String },
    #[error("stdio {uri:?}: unknown scheme {scheme:?} (fifo, file and binary are supported)")]
    Scheme { uri: String, scheme: String },
    #[error("stdin {uri:?}: stdin can only be a FIFO")]
    Stdin { uri: String },
    #[error("stdout {stdout:?} and stderr {stderr:?}: a logging binary must take both streams")]
    SplitBinary { stdout: String, stderr: String },
}

/// Parses one stdout or stderr destination; `None` for an empty one.
pub fn output(uri: &str) -> Result<Option<Destination>, UriError> {
    if uri.is_empty() {
        return Ok(None);
    }
    if !uri.contains("://") {
        return Ok(Some(Destination::Fifo(uri.into())));
    }
    let invalid = |reason: String| UriError::Invalid {
        uri: uri.into(),
        reason,
    };
    let url = Url::parse(uri).map_err(|e| invalid(e.to_string()))?;
    // The path percent-decoded, as Go's url.Parse gives containerd's shim.
    let path = || -> Result<PathBuf, UriError> {
        match url.to_file_path() {
            Ok(path) if path.is_absolute() && url.path() != "/" => Ok(path),
            _ => Err(invalid("needs an absolute path, as in file:///var/log/c.log".into())),
        }
    };
    match url.scheme() {
        "fifo" => Ok(Some(Destination::Fifo(path()?))),
        "file" => Ok(Some(Destination::File(path()?))),
        "binary" => {
            // As containerd: each key, then its first value (even an empty one).
            let mut args: Vec<String> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (k, v) in url.query_pairs() {
                if seen.insert(k.to_string()) {
                    args.push(k.into_owned());
                    args.push(v.into_owned());
                }
            }
            Ok(Some(Destination::Binary(LoggerCommand { path: path()?, args })))
        }
        scheme => Err(UriError::Scheme {
            uri: uri.into(),
            scheme: scheme.into(),
        }),
    }
}

/// Parses stdin: a FIFO or nothing.
pub fn input(uri: &str) -> Result<Option<PathBuf>, UriError> {
    match output(uri) {
        Ok(Some(Destination::Fifo(p))) => Ok(Some(p)),
        Ok(None) => Ok(None),
        _ => Err(UriError::Stdin { uri: uri.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_files_and_binaries() {
        assert_eq!(output("").unwrap(), None);
        assert_eq!(
            output("/run/c/stdout").unwrap(),
            Some(Destination::Fifo("/run/c/stdout".into()))
        );
        assert_eq!(
            output("fifo:///run/c/stdout").unwrap(),
            Some(Destination::Fifo("/run/c/stdout".into()))
        );
        assert_eq!(
            output("file:///var/log/c%201.log").unwrap(),
            Some(Destination::File("/var/log/c 1.log".into()))
        );
        assert_eq!(
            output("binary:///usr/bin/nerdctl?_NERDCTL_INTERNAL_LOGGING=/var/lib/nerdctl/1935db59&debug").unwrap(),
            Some(Destination::Binary(LoggerCommand {
                path: "/usr/bin/nerdctl".into(),
                args: vec![
                    "_NERDCTL_INTERNAL_LOGGING".into(),
                    "/var/lib/nerdctl/1935db59".into(),
                    "debug".into(),
                    "".into()
                ],
            }))
        );
    }

    #[test]
    fn bad_destinations_are_named() {
        let e = output("syslog://localhost").unwrap_err();
        assert_eq!(
            e.to_string(),
            "stdio \"syslog://localhost\": unknown scheme \"syslog\" (fifo, file and binary are supported)"
        );
        assert!(output("file://relative/x")
            .unwrap_err()
            .to_string()
            .contains("absolute path"));
        assert!(output("binary://").unwrap_err().to_string().contains("absolute path"));
        assert!(matches!(input("file:///tmp/in"), Err(UriError::Stdin { .. })));
        assert_eq!(input("/run/c/stdin").unwrap(), Some("/run/c/stdin".into()));
    }
}
