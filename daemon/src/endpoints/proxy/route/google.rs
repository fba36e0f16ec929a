//! Google's model APIs: Vertex AI's regional hosts, named by each request's location, and
//! what may stand in Claude on Google Cloud's workspace path.

/// Vertex AI's global host, and the health path's for Vertex routes.
pub(super) const VERTEX_GLOBAL: &str = "https://aiplatform.googleapis.com";

/// Claude on Google Cloud's host.
pub(super) const CLAUDE_GOOGLE_CLOUD: &str = "https://claude.googleapis.com";

/// Whether `project` is a Google Cloud project ID: 6 to 30 lowercase letters, digits and `-`,
/// from a letter to a letter or digit, behind a domain for a domain-scoped one
/// (`example.com:project`).
pub(super) fn is_project_id(project: &str) -> bool {
    let (domain, id) = project.rsplit_once(':').unwrap_or(("", project));
    let domain_ok = domain.is_empty()
        || domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    let bytes = id.as_bytes();
    domain_ok
        && (6..=30).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The location a Vertex AI request's path names (`.../locations/L/...`), if it names one
/// that can be part of a host.
pub(super) fn vertex_location(path: &str) -> Option<&str> {
    let location = path.split("/locations/").nth(1)?.split('/').next()?;
    crate::sources::gcp::spec::is_location_name(location).then_some(location)
}

/// Vertex AI's host for `location`.
pub(super) fn vertex_host(location: &str) -> String {
    if location == "global" {
        VERTEX_GLOBAL.to_string()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}
