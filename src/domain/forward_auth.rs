//! Forward-auth rules: which requests a reverse proxy may let through, and
//! what a credential must prove for them. First match wins; a request no
//! rule matches gets the default policy (`deny` unless set).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Let through without asking who it is.
    Bypass,
    /// Anyone signed in (who passes the rule's orgs and roles).
    OneFactor,
    /// Signed in with a second factor.
    TwoFactor,
    /// Never.
    Deny,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Bypass => "bypass",
            Policy::OneFactor => "one_factor",
            Policy::TwoFactor => "two_factor",
            Policy::Deny => "deny",
        }
    }
}

/// `[[forward_auth.rules]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Exact host names, or `*.example.net` for any subdomain of it.
    pub hosts: Vec<String>,
    /// Path prefixes; empty: every path.
    #[serde(default)]
    pub paths: Vec<String>,
    pub policy: Policy,
    /// Org slugs (or ids) the person must be an active member of; empty: any.
    #[serde(default)]
    pub orgs: Vec<String>,
    /// Roles the person must hold in one of those orgs; empty: any.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Rule {
    pub fn matches(&self, host: &str, path: &str) -> bool {
        let host = normalise_host(host);
        self.names_host(&host)
            && (self.paths.is_empty() || self.paths.iter().any(|prefix| path.starts_with(prefix)))
    }

    /// Whether `host` (normalised) is one of this rule's hosts.
    pub fn names_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(parent) => host.ends_with(&format!(".{parent}")),
                None => pattern == host,
            }
        })
    }
}

/// The host without its port, lower-case.
pub fn normalise_host(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if host.starts_with('[') {
        // An IPv6 literal: keep the brackets, drop a port after them.
        return host
            .split_once(']')
            .map(|(inside, _)| format!("{inside}]"))
            .unwrap_or(host);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(name, _)| name.to_owned())
        .unwrap_or(host)
}

/// The policy for a request and the rule that gave it (none: the default).
pub fn decide<'a>(
    rules: &'a [Rule],
    default: Policy,
    host: &str,
    path: &str,
) -> (Policy, Option<&'a Rule>) {
    match rules.iter().find(|rule| rule.matches(host, path)) {
        Some(rule) => (rule.policy, Some(rule)),
        None => (default, None),
    }
}

/// Whether a URL is one the sign-in page may send the browser back to: an
/// http(s) URL whose host a rule names (never an open redirect).
pub fn return_url_allowed(rules: &[Rule], url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.username().is_empty() {
        return false;
    }
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let host = normalise_host(host);
    rules.iter().any(|rule| rule.names_host(&host))
}

/// The first bad rule (its index) and why.
pub fn check_rules(rules: &[Rule]) -> Result<(), (usize, String)> {
    for (index, rule) in rules.iter().enumerate() {
        if rule.hosts.is_empty() {
            return Err((index, "hosts must name at least one host".into()));
        }
        for host in &rule.hosts {
            let name = host.strip_prefix("*.").unwrap_or(host);
            let valid = !name.is_empty()
                && !name.contains('*')
                && name.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                });
            if !valid {
                return Err((
                    index,
                    format!("host {host:?} is not a host name or *.domain"),
                ));
            }
        }
        if let Some(path) = rule.paths.iter().find(|p| !p.starts_with('/')) {
            return Err((index, format!("path {path:?} must start with /")));
        }
        if rule.policy == Policy::Bypass && !(rule.orgs.is_empty() && rule.roles.is_empty()) {
            return Err((index, "a bypass rule cannot ask for orgs or roles".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(hosts: &[&str], paths: &[&str], policy: Policy) -> Rule {
        Rule {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            policy,
            orgs: vec![],
            roles: vec![],
        }
    }

    #[test]
    fn the_first_matching_rule_wins_else_the_default() {
        let rules = vec![
            rule(&["app.home.example"], &["/public"], Policy::Bypass),
            rule(&["*.home.example"], &[], Policy::TwoFactor),
        ];
        assert_eq!(
            decide(&rules, Policy::Deny, "app.home.example", "/public/x").0,
            Policy::Bypass
        );
        assert_eq!(
            decide(&rules, Policy::Deny, "APP.home.example:443", "/").0,
            Policy::TwoFactor
        );
        assert_eq!(
            decide(&rules, Policy::Deny, "home.example", "/").0,
            Policy::Deny
        );
        assert_eq!(
            decide(&rules, Policy::Deny, "evilhome.example", "/").0,
            Policy::Deny
        );
    }

    #[test]
    fn return_urls_go_only_to_hosts_a_rule_names() {
        let rules = vec![rule(&["*.home.example"], &[], Policy::OneFactor)];
        assert!(return_url_allowed(
            &rules,
            "https://grafana.home.example/d/1?x=y"
        ));
        assert!(!return_url_allowed(&rules, "https://evil.example/"));
        assert!(!return_url_allowed(
            &rules,
            "https://home.example.evil.net/"
        ));
        assert!(!return_url_allowed(&rules, "javascript:alert(1)"));
        assert!(!return_url_allowed(
            &rules,
            "https://user@grafana.home.example/"
        ));
        assert!(!return_url_allowed(&rules, "//grafana.home.example/"));
    }

    #[test]
    fn bad_rules_are_named() {
        assert!(check_rules(&[rule(&[], &[], Policy::Deny)]).is_err());
        assert_eq!(
            check_rules(&[
                rule(&["a.example"], &[], Policy::Deny),
                rule(&["b.example"], &["api"], Policy::Deny)
            ])
            .map_err(|(i, _)| i),
            Err(1)
        );
        assert!(check_rules(&[rule(&["*.*.example"], &[], Policy::Deny)]).is_err());
    }
}
