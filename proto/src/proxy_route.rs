//! The names of the routes on credd's proxy socket, one definition for the daemon (which
//! routes by them) and the client (which writes them into settings and recognises them there).
//!
//! A route's base URL is `http://SOURCE.credd.localhost:0`. Over the socket the host only
//! fills `Host`, which names the source. Port 0 is there for whatever does not go through the
//! socket: Claude Code started without `ANTHROPIC_UNIX_SOCKET`, or another SDK that reads the
//! same variables. Nobody can listen on port 0, so such a client fails to connect and sends
//! nothing, wherever the name resolves.

/// What the host of every route ends with: `.localhost`, so the name is never a real host's,
/// and `credd`, so a glance at a settings file says where it goes.
pub const HOST_SUFFIX: &str = ".credd.localhost";

/// The base URL of `source`'s route (URL hosts are lower case).
pub fn base_url(source: &str) -> String {
    format!("http://{}{HOST_SUFFIX}:0", source.to_ascii_lowercase())
}

/// The source a `Host` names, when it names one of credd's routes: `SOURCE` of
/// `SOURCE.credd.localhost`, with or without a port of digits.
pub fn source_of_host(host: &str) -> Option<&str> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    let source = name
        .len()
        .checked_sub(HOST_SUFFIX.len())
        .filter(|&at| name.is_char_boundary(at) && name[at..].eq_ignore_ascii_case(HOST_SUFFIX))
        .map(|at| &name[..at])?;
    (!source.is_empty()).then_some(source)
}

/// The source an `http://` base URL routes to on the socket, if it is one of credd's routes.
pub fn source_of_url(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    source_of_host(rest.split('/').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_credds_own_hosts_name_a_source() {
        assert_eq!(source_of_host("dev.credd.localhost"), Some("dev"));
        assert_eq!(source_of_host("dev.credd.localhost:0"), Some("dev"));
        assert_eq!(source_of_host("DEV.Credd.Localhost"), Some("DEV"));
        assert_eq!(source_of_host("my.src.credd.localhost:80"), Some("my.src"));
        for other in [
            "credd.localhost",
            ".credd.localhost",
            "dev.credd.localhost.evil.example",
            "dev.credd.localhost:80@evil",
            "dev.credd.localhost:",
            "dev.credd.localhost:+0",
            "api.anthropic.com",
            "localhost",
            "",
        ] {
            assert_eq!(source_of_host(other), None, "{other}");
        }
    }

    #[test]
    fn a_base_url_names_its_source_on_a_port_nobody_can_hold() {
        assert_eq!(base_url("Dev"), "http://dev.credd.localhost:0");
        assert_eq!(source_of_url(&base_url("Dev")), Some("dev"));
        assert_eq!(
            source_of_url("http://dev.credd.localhost:0/v1"),
            Some("dev")
        );
        assert_eq!(source_of_url("https://dev.credd.localhost"), None);
        assert_eq!(source_of_url("http://127.0.0.1:47100"), None);
    }
}
