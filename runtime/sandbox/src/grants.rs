//! Capabilities an operator granted a plugin, and the gate that enforces the HTTP ones.
//!
//! Deny by default: a plugin with no grant reaches no host and has no key-value store. A
//! request to a host outside the grant fails inside the guest with `http-request-denied`,
//! which the plugin can handle; the denial is also recorded for the attempt report.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::StepLimitsOverride;
use crate::outcome::Denial;

/// What a plugin may do, as granted by an operator on approval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Hosts the plugin may reach over HTTP.
    #[serde(default)]
    pub http_hosts: Vec<HostPattern>,
    /// Whether the plugin may use the key-value store.
    #[serde(default)]
    pub kv: bool,
    /// Limits for steps of this plugin, over the daemon's defaults.
    #[serde(default)]
    pub limits: StepLimitsOverride,
}

impl Grants {
    /// Whether a request to `host` (and `port`) is allowed.
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        self.http_hosts.iter().any(|p| p.matches(host, port))
    }
}

/// A host an operator allows: `example.com`, `example.com:8080`, `*.example.com`, or an IP
/// address. Without a port the pattern allows every port of the host.
#[derive(Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lowercase host, without the `*.` of a wildcard.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

/// Why a string is not a host pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern {input:?}: {reason}")]
pub struct HostPatternError {
    input: String,
    reason: &'static str,
}

impl HostPattern {
    /// Whether the pattern allows `host` on `port`.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.wildcard {
            host.strip_suffix(&self.host)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
        } else {
            host == self.host
        }
    }
}

impl FromStr for HostPattern {
    type Err = HostPatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| HostPatternError {
            input: s.to_owned(),
            reason,
        };
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                let port = p.parse::<u16>().map_err(|_| err("port is not a number"))?;
                (h, Some(port))
            }
            _ => (s, None),
        };
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (host, false),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(err("host is empty"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':');
        if !host.chars().all(allowed) {
            return Err(err("host may hold only letters, digits, '-', '.' and ':'"));
        }
        Ok(HostPattern {
            host: host.to_ascii_lowercase(),
            wildcard,
            port,
        })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for HostPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The `wasi:http` hooks of one attempt: sends allowed requests, denies the rest.
pub struct HttpGate {
    grants: Arc<Grants>,
    denials: Arc<Mutex<Vec<Denial>>>,
}

impl HttpGate {
    /// A gate for `grants`, recording denials into `denials`.
    pub fn new(grants: Arc<Grants>, denials: Arc<Mutex<Vec<Denial>>>) -> HttpGate {
        HttpGate { grants, denials }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_owned();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !self.grants.allows_host(&host, port) {
            self.denials
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Denial {
                    capability: format!("http:{host}:{port}"),
                });
            tracing::debug!(%host, port, "outbound request denied");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> HostPattern {
        s.parse().unwrap()
    }

    #[test]
    fn exact_host_matches_every_port_unless_one_is_given() {
        assert!(pattern("api.example.com").matches("API.example.com", 443));
        assert!(pattern("api.example.com").matches("api.example.com", 8080));
        assert!(!pattern("api.example.com:8080").matches("api.example.com", 80));
        assert!(!pattern("api.example.com").matches("example.com", 80));
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let p = pattern("*.example.com");
        assert!(p.matches("a.example.com", 80));
        assert!(p.matches("a.b.example.com", 80));
        assert!(!p.matches("example.com", 80));
        assert!(!p.matches("badexample.com", 80));
    }

    #[test]
    fn parses_addresses_and_rejects_junk() {
        assert!(pattern("127.0.0.1:9000").matches("127.0.0.1", 9000));
        assert!(pattern("[::1]:80").matches("::1", 80));
        for bad in ["", ":80", "a b", "host:port", "exa/mple"] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad} parsed");
        }
        assert_eq!(
            pattern("*.Example.com:8080").to_string(),
            "*.example.com:8080"
        );
    }

    #[test]
    fn no_grant_allows_nothing() {
        assert!(!Grants::default().allows_host("localhost", 80));
    }
}
