//! Broker logins: random device passwords (shown once, stored as SHA-256) and broker URLs.
//!
//! A device logs in with its id as both MQTT client id and username. A password is 192 random
//! bits, so a plain SHA-256 of it cannot be brute-forced and needs no slow hash (the bearer
//! tokens of [`crate::users`] are kept the same way).

use crate::keys::KeyError;
use sha2::{Digest as _, Sha256};
use std::fmt;

/// The controller's own broker username (and client id) on the embedded broker. No device may
/// be enrolled under it.
pub const CONTROLLER_USER: &str = "airlock-controller";

/// A new random broker password: 48 hex digits.
pub fn new_password() -> Result<String, KeyError> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(hex::encode(b))
}

/// SHA-256 of a password, hex: what the database keeps.
pub fn hash(password: &str) -> String {
    hex::encode(Sha256::digest(password.as_bytes()))
}

/// Whether `password` hashes to `stored` (hex), compared in constant time.
pub fn matches(password: &str, stored: &str) -> bool {
    constant_time_eq(hash(password).as_bytes(), stored.as_bytes())
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An external broker: `mqtt://[user[:password]@]host[:port]` (port 1883 by default).
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Username, percent-decoded.
    pub username: Option<String>,
    /// Password, percent-decoded.
    pub password: Option<String>,
}

/// Why a broker URL is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("MQTT URL {url:?}: {problem}")]
pub struct UrlError {
    /// The URL, without its password.
    pub url: String,
    /// What is wrong.
    pub problem: &'static str,
}

impl BrokerUrl {
    /// Parses `mqtt://[user[:password]@]host[:port]`.
    pub fn parse(url: &str) -> Result<BrokerUrl, UrlError> {
        let fail = |problem| UrlError { url: redact(url), problem };
        if url.starts_with("mqtts://") || url.starts_with("ssl://") {
            return Err(fail("TLS brokers need a build of rumqttc with TLS; this one speaks plain mqtt://"));
        }
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| fail("use mqtt://host:port"))?;
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') {
            return Err(fail("no path or query: mqtt://[user[:password]@]host[:port]"));
        }
        let (login, hostport) = match rest.rsplit_once('@') {
            Some((l, h)) => (Some(l), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| fail("unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(fail("no host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| fail("port must be 1-65535"))?,
            None => 1883,
        };
        let (username, password) = match login {
            None => (None, None),
            Some(l) => {
                let (u, p) = match l.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (l, None),
                };
                let u = percent_decode(u).ok_or_else(|| fail("bad %-escape in the username"))?;
                let p = p.map(|p| percent_decode(p).ok_or_else(|| fail("bad %-escape in the password"))).transpose()?;
                (Some(u), p)
            }
        };
        Ok(BrokerUrl { host: host.to_string(), port, username, password })
    }
}

/// The URL as it can be shown: never the password.
impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mqtt://")?;
        if let Some(u) = &self.username {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

/// A URL with the password part of its login replaced, for error messages.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((login, host)) => match login.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => url.to_string(),
            },
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_only_its_own_hash() {
        let p = new_password().unwrap();
        assert_eq!(p.len(), 48);
        assert!(matches(&p, &hash(&p)));
        assert!(!matches(&new_password().unwrap(), &hash(&p)));
        assert!(!matches(&p, ""));
    }

    #[test]
    fn broker_urls_parse_with_and_without_a_login() {
        let u = BrokerUrl::parse("mqtt://127.0.0.1:1883").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.username, u.password), ("127.0.0.1", 1883, None, None));
        let u = BrokerUrl::parse("mqtt://airlock-controller:p%40ss@broker.example:8883/").unwrap();
        assert_eq!(u.username.as_deref(), Some("airlock-controller"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!((u.host.as_str(), u.port), ("broker.example", 8883));
        assert_eq!(u.to_string(), "mqtt://airlock-controller@broker.example:8883");
        let u = BrokerUrl::parse("mqtt://[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1883));
        assert_eq!(u.to_string(), "mqtt://[::1]:1883");
    }

    #[test]
    fn bad_broker_urls_name_the_problem_and_never_show_the_password() {
        let e = BrokerUrl::parse("mqtts://u:secret@h:8883").unwrap_err();
        assert!(e.problem.contains("TLS"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert_eq!(BrokerUrl::parse("http://h").unwrap_err().problem, "use mqtt://host:port");
        assert_eq!(BrokerUrl::parse("mqtt://h:0").unwrap_err().problem, "port must be 1-65535");
        assert_eq!(
            BrokerUrl::parse("mqtt://h:1883/topic").unwrap_err().problem,
            "no path or query: mqtt://[user[:password]@]host[:port]"
        );
        assert_eq!(BrokerUrl::parse("mqtt://:1883").unwrap_err().problem, "no host");
    }
}
