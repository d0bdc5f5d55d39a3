//! A real OTLP receiver (`tests/otlp/receiver.py`: the official protobuf definitions from PyPI,
//! grpcio for gRPC) and readers of what it received.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

pub struct Receiver {
    child: Option<Child>,
    pub http: u16,
    pub grpc: u16,
    out: PathBuf,
}

impl Receiver {
    /// Starts the receiver on two free loopback ports; `delay_ms` holds every reply.
    pub fn start(name: &str, delay_ms: u64) -> Self {
        let out = crate::temp_path(&format!("{name}-otlp.jsonl"));
        let _ = std::fs::remove_file(&out);
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("otlp/receiver.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&out)
            .args(["--delay-ms", &delay_ms.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let ports: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("receiver printed {line:?}: {e}"));
        let port = |k: &str| ports[k].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap();
        Self { child: Some(child), http: port("http"), grpc: port("grpc"), out }
    }

    /// The base endpoint of one protocol (`http/protobuf` or `grpc`).
    pub fn endpoint(&self, protocol: &str) -> String {
        let port = if protocol == "grpc" { self.grpc } else { self.http };
        format!("http://127.0.0.1:{port}")
    }

    /// Every export request received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Polls until `done` holds for the requests received, or panics after `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let end = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if done(&r) {
                return r;
            }
            assert!(Instant::now() < end, "receiver: {what} not within {timeout:?}; last requests: {:#?}", r.last());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the receiver (a collector going away mid-run).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The attributes of a data point, resource or log record, as key → string value.
pub fn attrs(v: &Value) -> BTreeMap<String, String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            let val = &kv["value"];
            let s = val["stringValue"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| val["intValue"].as_str().map(str::to_owned))
                .or_else(|| val["boolValue"].as_bool().map(|b| b.to_string()))
                .or_else(|| val["doubleValue"].as_f64().map(|d| d.to_string()))?;
            Some((kv["key"].as_str()?.to_owned(), s))
        })
        .collect()
}

/// The metrics of the last metric export that carried `name` (cumulative: the totals).
pub fn last_metric(requests: &[Value], name: &str) -> Option<Value> {
    requests.iter().rev().filter(|r| r["signal"] == "metrics").find_map(|r| {
        r["request"]["resourceMetrics"]
            .as_array()?
            .iter()
            .flat_map(|rm| rm["scopeMetrics"].as_array().into_iter().flatten())
            .flat_map(|sm| sm["metrics"].as_array().into_iter().flatten())
            .find(|m| m["name"] == name)
            .cloned()
    })
}

/// The data points of a metric (sum, gauge or histogram).
pub fn points(metric: &Value) -> Vec<Value> {
    ["sum", "gauge", "histogram"]
        .iter()
        .find_map(|k| metric[k]["dataPoints"].as_array().cloned())
        .unwrap_or_default()
}

/// A number point's value (`asInt` comes as a string in protobuf JSON).
pub fn value(point: &Value) -> f64 {
    point["asInt"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| point["asDouble"].as_f64())
        .unwrap_or(f64::NAN)
}

/// Σ of a counter's points whose attributes include every pair of `filter`.
pub fn sum_where(requests: &[Value], name: &str, filter: &[(&str, &str)]) -> Option<f64> {
    let m = last_metric(requests, name)?;
    Some(
        points(&m)
            .iter()
            .filter(|p| {
                let a = attrs(&p["attributes"]);
                filter.iter().all(|(k, v)| a.get(*k).map(String::as_str) == Some(*v))
            })
            .map(value)
            .sum(),
    )
}

/// Every span received.
pub fn spans(requests: &[Value]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r["signal"] == "traces")
        .flat_map(|r| r["request"]["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Every log record received.
pub fn log_records(requests: &[Value]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r["signal"] == "logs")
        .flat_map(|r| r["request"]["resourceLogs"].as_array().cloned().unwrap_or_default())
        .flat_map(|rl| rl["scopeLogs"].as_array().cloned().unwrap_or_default())
        .flat_map(|sl| sl["logRecords"].as_array().cloned().unwrap_or_default())
        .collect()
}
