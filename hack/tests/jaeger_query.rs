//! `voidbox-trace show --jaeger URL` against a stand-in for Jaeger's query
//! service: a small HTTP server in the test that answers `/api/traces` with
//! a fixture in the query API's JSON (`data[].spans`, `data[].processes`,
//! parents as `CHILD_OF` references, times in microseconds). The fixture is
//! the recorded Create trace, written in that format; no real Jaeger ran
//! here (none is installable on the build machines).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;

use common::*;

const ANSWER: &str = "tests/fixtures/jaeger-traces.json";

/// Serves one request with `body` (or 404 for another path), and sends the
/// request line it got.
fn stub_jaeger(body: String) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut request = String::new();
        reader.read_line(&mut request).unwrap();
        // The headers, up to the blank line; a GET has no body.
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let (status, body) = if request.starts_with("GET /api/traces?") {
            ("200 OK", body)
        } else {
            ("404 Not Found", "404 page not found\n".to_string())
        };
        let mut conn = conn;
        write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        tx.send(request.trim_end().to_string()).unwrap();
    });
    (url, rx)
}

#[test]
fn the_latest_trace_from_jaeger_shows_as_the_waterfall_of_its_golden_file() {
    let (url, request) = stub_jaeger(std::fs::read_to_string(fixture(ANSWER)).unwrap());
    let out = voidbox_trace(&["show", "--jaeger", &url, "--waterfall"]);
    let text = stdout_ok(&out, "show --jaeger");
    assert_eq!(
        request.recv().unwrap(),
        "GET /api/traces?service=voidbox&limit=1&lookback=1h HTTP/1.1"
    );
    golden("jaeger.waterfall.txt", &text);
    // The tree comes from the CHILD_OF references: containerd's request at
    // the top, the shim's Create under it, the guest's spans deeper.
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("containerd.services.tasks.v1.Tasks/Create"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("      ") && l.contains(" vm ")),
        "{text}"
    );
}

#[test]
fn the_service_asked_for_is_the_one_queried() {
    let (url, request) = stub_jaeger(std::fs::read_to_string(fixture(ANSWER)).unwrap());
    let out = voidbox_trace(&[
        "show",
        "--jaeger",
        &format!("{url}/"),
        "--service",
        "containerd",
        "--mermaid",
    ]);
    let text = stdout_ok(&out, "show --jaeger --service");
    assert_eq!(
        request.recv().unwrap(),
        "GET /api/traces?service=containerd&limit=1&lookback=1h HTTP/1.1"
    );
    assert!(text.starts_with("```mermaid\ngantt\n"), "{text}");
}

#[test]
fn jaeger_without_a_trace_is_a_clear_error() {
    let (url, _request) = stub_jaeger(r#"{"data":[],"total":0,"limit":0,"offset":0,"errors":null}"#.into());
    let out = voidbox_trace(&["show", "--jaeger", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "voidbox-trace: Jaeger returned no trace\n"
    );
}

#[test]
fn a_missing_jaeger_is_a_clear_error() {
    // A port just closed: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = voidbox_trace(&["show", "--jaeger", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is Jaeger running? `make jaeger-start`"), "{err}");
}
