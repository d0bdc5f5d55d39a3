//! Reading the daemon's `/metrics` the way Prometheus does.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::TcpStream,
};

use serde_json::Value;

use crate::daemon::Daemon;

/// The address a daemon started with `--metrics-addr 127.0.0.1:0 --log-format json` serves on.
pub fn metrics_addr(d: &Daemon) -> String {
    let addr = d
        .log_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "serving /metrics")
        .and_then(|v| v["fields"]["addr"].as_str().map(str::to_owned))
        .expect("guard logs the metrics address");
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    addr
}

/// `GET /metrics` over HTTP: (content type, body).
pub fn scrape(addr: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap();
    (ctype, body.to_owned())
}

/// Series → value, for the samples of the scrape.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            l.rsplit_once(' ')
                .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        })
        .collect()
}
