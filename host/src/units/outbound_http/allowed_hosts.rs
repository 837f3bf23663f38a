//! A component's `allowed_outbound_hosts`, read and matched as Spin 4 reads and matches it.
//!
//! An entry is `<scheme>://<host>[:<port>]`, optionally with one trailing `/`:
//! - scheme: a word (`http`, `https`, …) or `*` for any;
//! - host: a name or IP address, `*` for any, `*.example.com` for every subdomain (at any depth, not
//!   `example.com` itself), or a CIDR block (`127.0.0.0/8`, which then needs an explicit port);
//! - port: a number, a range `a..b` (end excluded), or `*`; without one, the scheme's well-known port
//!   (`http` 80, `https` 443, …), and a scheme without one needs a port.
//!
//! An entry may be a template over the application's variables (`"{{ inference_url }}"`): Spin resolves it
//! against the top-level `[variables]`, not the component's own table, and so does this host (once, at
//! start-up: its variables do not change while it runs). A request is allowed when one entry matches its
//! scheme, host and port; an empty list allows nothing.

use std::collections::HashMap;
use std::ops::Range;

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use url::Host;

use crate::app::template::Template;

/// The parsed list of one component.
#[derive(Debug, Default, Clone)]
pub struct AllowedHosts(Vec<AllowedHost>);

/// One entry: which schemes, hosts and ports it lets through.
#[derive(Debug, Clone, PartialEq)]
struct AllowedHost {
    /// `None` for `*`.
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    /// `*.example.com`, kept as `.example.com`.
    Subdomains(String),
    Exact(Host),
    Network(IpNet),
}

#[derive(Debug, Clone, PartialEq)]
enum PortPattern {
    Any,
    /// Ranges are half-open, as in Spin (`4444..5555` leaves out 5555); one port is `p..p+1`.
    Ports(Range<u32>),
}

impl AllowedHosts {
    /// Parses a component's entries, rendering templates with `app_variables` (the application's resolved
    /// `[variables]`). An error names the entry and what is wrong with it.
    pub fn parse(entries: &[String], app_variables: &HashMap<&str, String>) -> Result<Self> {
        if let [only] = entries {
            if only.trim() == "insecure:allow-all" {
                bail!("allowed_outbound_hosts entry `insecure:allow-all` is not allowed: use `*://*:*` to allow every destination");
            }
        }
        let parsed = entries
            .iter()
            .map(|entry| {
                let template = Template::parse(entry)
                    .with_context(|| format!("allowed_outbound_hosts entry `{entry}`"))?;
                let text = template.render(app_variables).with_context(|| {
                    format!("allowed_outbound_hosts entry `{entry}` refers to a variable without a value")
                })?;
                let context = if text == *entry {
                    format!("allowed_outbound_hosts entry `{entry}`")
                } else {
                    format!("allowed_outbound_hosts entry `{entry}` (`{text}`)")
                };
                AllowedHost::parse(&text).context(context)
            })
            .collect::<Result<_>>()?;
        Ok(Self(parsed))
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a request to `scheme://host[:port]` may go out. `host` is as in a URI (`[::1]` for IPv6);
    /// without `port`, the scheme's well-known one is meant.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Ok(host) = Host::parse(host) else {
            return false;
        };
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return false;
        };
        self.0
            .iter()
            .any(|allowed| allowed.allows(scheme, &host, port))
    }
}

impl AllowedHost {
    fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            bail!("`{text}` has no scheme: write <scheme>://<host>[:<port>], e.g. `https://example.com` (`*` is a wildcard for each part)");
        };
        // The port follows the last `:`, so `http://[::1]` without a port is refused, as by Spin.
        let (host, rest) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match rest.split_once('/') {
            Some((_, path)) if !path.is_empty() => {
                bail!("`{text}` has a path; only a trailing `/` may follow the host")
            }
            Some((port, _)) => port,
            None => rest,
        };
        let port = PortPattern::parse(port, scheme).with_context(|| format!("port `{port}`"))?;
        let host = HostPattern::parse(host).with_context(|| format!("host `{host}`"))?;
        let scheme = match scheme {
            "*" => None,
            word if !word.is_empty() && word.chars().all(char::is_alphabetic) => {
                Some(word.to_owned())
            }
            other => bail!("scheme `{other}`: only letters, or `*` for any scheme"),
        };
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &Host, port: u16) -> bool {
        self.scheme
            .as_deref()
            .is_none_or(|allowed| allowed == scheme)
            && self.host.allows(host)
            && self.port.allows(port)
    }
}

impl HostPattern {
    fn parse(host: &str) -> Result<Self> {
        let host = host.trim();
        match host {
            "*" => return Ok(Self::Any),
            "self" | "self.alt" => bail!(
                "requests to the application itself are not supported by sbert-host (name the host and port it listens on instead)"
            ),
            _ => {}
        }
        if host.starts_with('{') {
            bail!("host lists are not supported (write one entry per host)");
        }
        if let Ok(network) = host.parse::<IpNet>() {
            return Ok(Self::Network(network.trunc()));
        }
        let host = host.trim_end_matches('/');
        if host.contains('/') {
            bail!("a host must not include a path");
        }
        if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                bail!("`*` may only stand for a whole host or a prefix of subdomains (`*.example.com`)");
            }
            if domain == SERVICE_CHAINING_DOMAIN {
                bail!(SERVICE_CHAINING_UNSUPPORTED);
            }
            return Ok(Self::Subdomains(format!(
                ".{}",
                domain.to_ascii_lowercase()
            )));
        }
        if host.contains('*') {
            bail!(
                "`*` may only stand for a whole host or a prefix of subdomains (`*.example.com`)"
            );
        }
        let parsed = Host::parse(host)?;
        if let Host::Domain(domain) = &parsed {
            if domain == SERVICE_CHAINING_DOMAIN || domain.ends_with(SERVICE_CHAINING_SUFFIX) {
                bail!(SERVICE_CHAINING_UNSUPPORTED);
            }
        }
        Ok(Self::Exact(parsed))
    }

    fn allows(&self, host: &Host) -> bool {
        match (self, host) {
            (Self::Any, _) => true,
            (Self::Subdomains(suffix), Host::Domain(domain)) => domain.ends_with(suffix.as_str()),
            (Self::Exact(allowed), host) => allowed == host,
            (Self::Network(network), Host::Ipv4(ip)) => {
                network.contains(&std::net::IpAddr::V4(*ip))
            }
            (Self::Network(network), Host::Ipv6(ip)) => {
                network.contains(&std::net::IpAddr::V6(*ip))
            }
            (Self::Subdomains(_), _) | (Self::Network(_), Host::Domain(_)) => false,
        }
    }
}

/// Spin runs requests to `<component>.spin.internal` in-process; sbert-host does not.
const SERVICE_CHAINING_DOMAIN: &str = "spin.internal";
const SERVICE_CHAINING_SUFFIX: &str = ".spin.internal";
const SERVICE_CHAINING_UNSUPPORTED: &str =
    "Spin's service chaining (`*.spin.internal`) is not supported by sbert-host";

impl PortPattern {
    fn parse(port: &str, scheme: &str) -> Result<Self> {
        if port.is_empty() {
            let port = well_known_port(scheme).with_context(|| {
                format!("no port is given, and scheme `{scheme}` has no well-known one")
            })?;
            return Ok(Self::Ports(u32::from(port)..u32::from(port) + 1));
        }
        if port == "*" {
            return Ok(Self::Any);
        }
        if port.starts_with('{') {
            bail!("port lists are not supported (write one entry per port, or a range `a..b`)");
        }
        let number = |text: &str| {
            text.parse::<u16>()
                .with_context(|| format!("`{text}` is not a port number"))
        };
        Ok(match port.split_once("..") {
            Some((start, end)) => Self::Ports(u32::from(number(start)?)..u32::from(number(end)?)),
            None => {
                let port = u32::from(number(port)?);
                Self::Ports(port..port + 1)
            }
        })
    }

    fn allows(&self, port: u16) -> bool {
        match self {
            Self::Any => true,
            Self::Ports(range) => range.contains(&u32::from(port)),
        }
    }
}

/// The ports Spin assumes when an entry or a request names none.
fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[&str]) -> Result<AllowedHosts> {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        AllowedHosts::parse(&entries, &HashMap::new())
    }

    fn allowed(entries: &[&str]) -> AllowedHosts {
        parse(entries).unwrap()
    }

    fn error(entry: &str) -> String {
        format!("{:#}", parse(&[entry]).unwrap_err())
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        let hosts = allowed(&["http://origin.internal:3000", "https://api.example.com"]);
        assert!(hosts.allows("http", "origin.internal", Some(3000)));
        assert!(hosts.allows("http", "ORIGIN.internal", Some(3000)));
        assert!(!hosts.allows("https", "origin.internal", Some(3000)));
        assert!(!hosts.allows("http", "origin.internal", Some(3001)));
        assert!(
            !hosts.allows("http", "origin.internal", None),
            "port 80 is not 3000"
        );
        assert!(hosts.allows("https", "api.example.com", None));
        assert!(hosts.allows("https", "api.example.com", Some(443)));
        assert!(!hosts.allows("https", "api.example.com", Some(8443)));
        assert!(!hosts.allows("https", "example.com", None));
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        assert!(!allowed(&[]).allows("http", "127.0.0.1", Some(80)));
    }

    #[test]
    fn wildcards_stand_for_a_whole_part() {
        let any = allowed(&["*://*:*"]);
        assert!(any.allows("http", "anything.at.all", Some(1)));
        assert!(any.allows("https", "[::1]", Some(8443)));
        let subdomains = allowed(&["http://*.example.com"]);
        assert!(subdomains.allows("http", "a.example.com", None));
        assert!(subdomains.allows("http", "a.b.example.com", None));
        assert!(!subdomains.allows("http", "example.com", None));
        assert!(!subdomains.allows("http", "myexample.com", None));
        assert!(!subdomains.allows("http", "127.0.0.1", None));
        let any_scheme = allowed(&["*://origin:7777"]);
        assert!(any_scheme.allows("https", "origin", Some(7777)));
        assert!(any_scheme.allows("http", "origin", Some(7777)));
    }

    #[test]
    fn port_ranges_leave_out_their_end() {
        let range = allowed(&["http://origin:4444..5555"]);
        assert!(range.allows("http", "origin", Some(4444)));
        assert!(range.allows("http", "origin", Some(5554)));
        assert!(!range.allows("http", "origin", Some(5555)));
    }

    #[test]
    fn addresses_and_networks() {
        let hosts = allowed(&[
            "http://127.0.0.1:3000",
            "http://[::1]:8001",
            "*://10.0.0.0/8:80",
        ]);
        assert!(hosts.allows("http", "127.0.0.1", Some(3000)));
        assert!(hosts.allows("http", "[::1]", Some(8001)));
        assert!(hosts.allows("https", "10.1.2.3", Some(80)));
        assert!(!hosts.allows("http", "11.0.0.1", Some(80)));
        assert!(
            !hosts.allows("http", "localhost", Some(3000)),
            "names are not addresses"
        );
        assert!(allowed(&["*://127.0.0.1/24:63551"]).allows("tcp", "127.0.0.9", Some(63551)));
    }

    #[test]
    fn a_trailing_slash_is_accepted_and_a_path_refused() {
        assert!(allowed(&["https://my.api.com/"]).allows("https", "my.api.com", None));
        assert!(allowed(&["http://origin:3000/"]).allows("http", "origin", Some(3000)));
        for entry in [
            "http://example.com/a",
            "http://example.com:6666/a/b",
            "http://*.example.com/a",
        ] {
            assert!(error(entry).contains("path"), "{entry}: {}", error(entry));
        }
    }

    #[test]
    fn malformed_entries_are_refused_naming_the_entry() {
        let missing = error("origin.internal:3000");
        assert!(
            missing.contains("`origin.internal:3000`") && missing.contains("no scheme"),
            "{missing}"
        );
        assert!(error("*").contains("no scheme"));
        assert!(error("http://[::1]").contains("allowed_outbound_hosts entry `http://[::1]`"));
        assert!(
            error("*://origin").contains("port ``"),
            "`*` has no well-known port"
        );
        assert!(
            error("*://127.0.0.0/24").contains("port"),
            "a network needs its port"
        );
        assert!(error("h2c+http://origin:80").contains("scheme"));
        assert!(error("http://origin:80a").contains("not a port number"));
        assert!(error("http://or*gin").contains("`*`"));
        assert!(error("http://self").contains("not supported"));
        assert!(error("http://*.spin.internal").contains("service chaining"));
        let allow_all = error("insecure:allow-all");
        assert!(allow_all.contains("*://*:*"), "{allow_all}");
    }

    #[test]
    fn templates_are_rendered_from_the_application_variables() {
        let entries = vec!["{{ inference_url }}".to_owned()];
        let variables = HashMap::from([("inference_url", "http://127.0.0.1:3001".to_owned())]);
        let hosts = AllowedHosts::parse(&entries, &variables).unwrap();
        assert!(hosts.allows("http", "127.0.0.1", Some(3001)));
        assert!(!hosts.allows("http", "127.0.0.1", Some(3002)));

        let unset = format!(
            "{:#}",
            AllowedHosts::parse(&entries, &HashMap::new()).unwrap_err()
        );
        assert!(unset.contains("`{{ inference_url }}`"), "{unset}");
        let invalid = HashMap::from([("inference_url", "origin:3001".to_owned())]);
        let invalid = format!("{:#}", AllowedHosts::parse(&entries, &invalid).unwrap_err());
        assert!(
            invalid.contains("`{{ inference_url }}` (`origin:3001`)")
                && invalid.contains("no scheme"),
            "{invalid}"
        );
    }
}
