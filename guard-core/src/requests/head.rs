//! A request as the judge sees it: method, host, path, query keys, the AWS operation and, for
//! the few rules that need it, a bounded prefix of the body. Parsing here never fails: what
//! cannot be read is simply absent, so a rule that needs it does not match.

use std::borrow::Cow;

/// How much of a request body the decoder keeps for the judge (form-encoded AWS query calls,
/// small JSON bodies such as GitHub's `force` flag). Past it, the body is not read.
pub const BODY_PREFIX_CAP: usize = 4096;

/// One request head (and body prefix) as the protocol decoders hand it over. The raw query and
/// body are for the judge only: they never leave this crate's records ([`Self::query_keys`] is
/// what is reported).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiRequest {
    /// When the request's first byte was written.
    pub ts_ns: u64,
    pub method: String,
    /// `Host` or `:authority`, as sent (port included).
    pub host: Option<String>,
    /// The request target: path and query.
    pub target: String,
    /// `X-Amz-Target` (AWS JSON APIs: `DynamoDB_20120810.DeleteTable`).
    pub amz_target: Option<String>,
    /// `Content-Type`, lower case.
    pub content_type: Option<String>,
    /// The body's first bytes (at most [`BODY_PREFIX_CAP`]), as sent (no content decoding).
    pub body: Vec<u8>,
    /// `body` is the whole body.
    pub body_complete: bool,
}

/// Methods that only read: never judged (and never paused, when the kernel-side pause exists).
pub fn read_only(method: &str) -> bool {
    ["GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"].iter().any(|m| m.eq_ignore_ascii_case(method))
}

/// Whether the decoder should keep a body prefix for the judge.
pub(crate) fn wants_body(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded") || c.contains("json"))
}

impl ApiRequest {
    /// A body the rules may read has not arrived yet (it comes in a later write).
    pub fn body_pending(&self) -> bool {
        !self.body_complete && self.body.len() < BODY_PREFIX_CAP && wants_body(self.content_type.as_deref())
    }

    /// The host, lower case, without port, brackets or a trailing dot.
    pub fn host_name(&self) -> String {
        host_name(self.host.as_deref().unwrap_or(""))
    }

    /// The path without the query (and without a fragment, should one be sent).
    pub fn path(&self) -> &str {
        let end = self.target.find(['?', '#']).unwrap_or(self.target.len());
        &self.target[..end]
    }

    fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q.split('#').next().unwrap_or(""))
    }

    /// The path's segments, percent-decoded one by one (an encoded `/` stays inside its
    /// segment, as servers read GitLab's `group%2Fproject`); empty segments are dropped.
    pub fn segments(&self) -> Vec<String> {
        self.path().split('/').filter(|s| !s.is_empty()).map(|s| decode(s).into_owned()).collect()
    }

    /// The query's keys, decoded, in order; never the values.
    pub fn query_keys(&self) -> Vec<String> {
        pairs(self.query()).map(|(k, _)| k.into_owned()).collect()
    }

    /// The path as reported: the query's keys kept, its values removed (`?delete`, `?dryRun=`).
    pub fn redacted_path(&self) -> String {
        let path: String = self.path().chars().take(512).collect();
        let keys = self.query_keys();
        if keys.is_empty() {
            return path;
        }
        let q: Vec<String> = keys.iter().take(16).map(|k| k.chars().take(64).collect()).collect();
        format!("{path}?{}", q.join("&"))
    }

    /// The AWS operation: the part of `X-Amz-Target` after its last dot, else the `Action`
    /// parameter of the query, else of a form-encoded body.
    pub fn operation(&self) -> Option<String> {
        if let Some(t) = &self.amz_target {
            return t.rsplit('.').next().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        }
        let action = |q: &str| pairs(q).find(|(k, _)| k == "Action").map(|(_, v)| v.into_owned());
        action(self.query()).or_else(|| {
            let form = self.content_type.as_deref().is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
            if !form {
                return None;
            }
            // An incomplete body's last pair may be cut: only whole pairs count.
            let text = String::from_utf8_lossy(&self.body);
            let whole = if self.body_complete { &text[..] } else { text.rsplit_once('&').map_or("", |(w, _)| w) };
            action(whole)
        })
    }

    /// Whether the body is a JSON object whose top-level `key` is `true`. Only a complete
    /// body within the bound is read.
    pub fn body_flag(&self, key: &str) -> bool {
        if !self.body_complete || !self.content_type.as_deref().is_some_and(|c| c.contains("json")) {
            return false;
        }
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get(key).and_then(serde_json::Value::as_bool))
            .unwrap_or(false)
    }
}

fn pairs(q: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (decode_form(k), decode_form(v))
    })
}

fn decode_form(s: &str) -> Cow<'_, str> {
    if s.contains('+') { Cow::Owned(decode(&s.replace('+', " ")).into_owned()) } else { decode(s) }
}

/// Percent-decoding; a malformed escape is kept as it is.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// A `Host` or `:authority` without its port, lower case, without a trailing dot.
pub(crate) fn host_name(authority: &str) -> String {
    let h = authority.trim();
    let h = match h.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => h.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(h, |(n, _)| n),
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str) -> ApiRequest {
        ApiRequest { method: "POST".into(), host: Some("EC2.us-east-1.amazonaws.com:443".into()), target: target.into(), ..Default::default() }
    }

    #[test]
    fn host_path_and_query_are_read_and_redacted() {
        let r = req("/a/%6Eamespaces//b%2Fc?token=s3cret&dryRun=All&delete");
        assert_eq!(r.host_name(), "ec2.us-east-1.amazonaws.com");
        assert_eq!(r.segments(), ["a", "namespaces", "b/c"]);
        assert_eq!(r.query_keys(), ["token", "dryRun", "delete"]);
        assert_eq!(r.redacted_path(), "/a/%6Eamespaces//b%2Fc?token&dryRun&delete");
        let v6 = ApiRequest { host: Some("[::1]:6443".into()), ..req("/") };
        assert_eq!(v6.host_name(), "::1");
    }

    #[test]
    fn the_operation_comes_from_target_query_or_form() {
        assert_eq!(req("/?Action=TerminateInstances&Version=2016-11-15").operation().as_deref(), Some("TerminateInstances"));
        let json = ApiRequest { amz_target: Some("DynamoDB_20120810.DeleteTable".into()), ..req("/") };
        assert_eq!(json.operation().as_deref(), Some("DeleteTable"));
        let form = |body: &[u8], complete| ApiRequest {
            content_type: Some("application/x-www-form-urlencoded; charset=utf-8".into()),
            body: body.to_vec(),
            body_complete: complete,
            ..req("/")
        };
        assert_eq!(form(b"Version=2010-05-15&Action=DeleteStack&StackName=x", true).operation().as_deref(), Some("DeleteStack"));
        // Cut inside the pair: not read (it could be `DeleteStackSet`... or anything).
        assert_eq!(form(b"Version=2010-05-15&Action=Dele", false).operation(), None);
        assert_eq!(form(b"Action=DeleteStack&StackN", false).operation().as_deref(), Some("DeleteStack"));
    }

    #[test]
    fn a_body_flag_needs_a_whole_json_body() {
        let r = |body: &[u8], complete| ApiRequest {
            content_type: Some("application/json".into()),
            body: body.to_vec(),
            body_complete: complete,
            ..req("/")
        };
        assert!(r(br#"{"sha":"abc","force":true}"#, true).body_flag("force"));
        assert!(!r(br#"{"sha":"abc","force":false}"#, true).body_flag("force"));
        assert!(!r(br#"{"sha":"abc","force":true"#, false).body_flag("force"));
        assert!(!r(b"not json", true).body_flag("force"));
    }
}
