//! The local services the examples talk to: one loopback HTTP/1.1 server that stands in for
//! an inventory, a CMDB, monitoring, DNS, a load balancer, a hypervisor, patching and power
//! control.
//!
//! The first path segment names the service (`/inventory/devices/sw-ams-17`). Every request
//! is logged on stderr and answered with JSON that echoes it; a health check
//! (`GET .../health`) answers `{"healthy": true}`. A path containing `fail` is refused with
//! 409, so that the examples can show a step that fails. It uses threads and `std::net`
//! only: xtask stays free of an async runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use anyhow::{Context, Result};

/// Largest request body read, in bytes; the examples send a few hundred.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Starts the services on a free loopback port; returns their base URL
/// (`http://127.0.0.1:PORT`). They run until the process exits.
pub fn start() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the mock services")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                if let Err(e) = serve(stream) {
                    eprintln!("services: {e:#}");
                }
            });
        }
    });
    Ok(format!("http://{addr}"))
}

/// One request as read from the socket.
struct Request {
    method: String,
    path: String,
    ticket: Option<String>,
    body: String,
}

fn read_request(stream: &TcpStream) -> Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().context("empty request")?.to_owned();
    let path = parts.next().context("request without a path")?.to_owned();
    let mut length = 0;
    let mut ticket = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "x-ticket" => ticket = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length.min(MAX_BODY_BYTES)];
    reader.read_exact(&mut body)?;
    Ok(Request {
        method,
        path,
        ticket,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn serve(mut stream: TcpStream) -> Result<()> {
    let request = read_request(&stream)?;
    let service = request
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let ticket = request
        .ticket
        .as_deref()
        .map(|t| format!(" (ticket {t})"))
        .unwrap_or_default();
    let (status, reason, body) = if request.path.contains("fail") {
        (
            409,
            "Conflict",
            format!(
                r#"{{"service":{},"error":"refused: {} is locked"}}"#,
                quote(&service),
                escape(&request.path)
            ),
        )
    } else if request.method == "GET" && request.path.ends_with("/health") {
        (
            200,
            "OK",
            format!(r#"{{"service":{},"healthy":true}}"#, quote(&service)),
        )
    } else {
        // The examples send JSON bodies; anything else is echoed as a string.
        let body = request.body.trim();
        let received = if body.is_empty() {
            "null".to_owned()
        } else if body.starts_with('{') || body.starts_with('[') {
            body.to_owned()
        } else {
            quote(body)
        };
        (
            200,
            "OK",
            format!(
                r#"{{"service":{},"method":{},"path":{},"received":{received},"ok":true}}"#,
                quote(&service),
                quote(&request.method),
                quote(&request.path)
            ),
        )
    };
    eprintln!(
        "services: {} {}{ticket} -> {status}",
        request.method, request.path
    );
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

/// `text` as a JSON string literal.
fn quote(text: &str) -> String {
    format!("\"{}\"", escape(text))
}

/// `text` escaped for a JSON string.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}
