//! Just enough HTTP/1.1 for OTLP exporters: a request line, headers, a
//! Content-Length or chunked body, keep-alive.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Store;

/// Every well-formed export gets 200 and an empty protobuf response, but
/// for the faults played on traces: a trace request of the service `hold`
/// names waits until the hold ends, and one the store's faults refuse gets
/// 500.
pub async fn serve(conn: TcpStream, store: Arc<Mutex<Store>>, mut hold: watch::Receiver<Option<String>>) {
    let mut conn = BufReader::new(conn);
    while let Some(req) = read(&mut conn).await {
        let traces = req.path == "/v1/traces";
        let held = hold.borrow().clone();
        if let Some(service) = held.filter(|_| traces) {
            if super::faults::spans_by_service(&req.body)
                .iter()
                .any(|(s, _)| *s == service)
            {
                store.lock().unwrap().faults.held += 1;
                let _ = hold.wait_for(Option::is_none).await;
                store.lock().unwrap().faults.held -= 1;
            }
        }
        let refused = traces && store.lock().unwrap().faults.refuse(&req.body);
        let kept = !refused && req.method == "POST" && store.lock().unwrap().keep_http(&req.path, &req.body);
        let status = if refused {
            "500 Internal Server Error"
        } else if kept {
            "200 OK"
        } else {
            "400 Bad Request"
        };
        let reply = format!("HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n");
        if conn.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// The next request on the connection; None once the peer hangs up.
pub async fn read<R: AsyncRead + Unpin>(conn: &mut BufReader<R>) -> Option<Request> {
    let mut line = String::new();
    if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h).await.unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            conn.read_line(&mut size).await.ok()?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0u8; n + 2];
            conn.read_exact(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(length, 0);
        conn.read_exact(&mut body).await.ok()?;
    }
    Some(Request { method, path, body })
}
