//! Turning an upstream's words into an error message that is safe to show and log.
//!
//! Upstream tools sometimes echo what they were given. Before any of their output reaches an
//! error message, it is cut to one short line and every word that looks like a secret, or is one
//! of the values we know to be secret, is replaced.

const MAX_SUMMARY: usize = 200;
/// Words at least this long made of token characters and containing a digit are treated as
/// secrets: API keys, JWTs, session tokens.
const SECRET_WORD_LEN: usize = 20;

/// One line summarising `output` (the last non-empty line, where tools put their verdict).
pub fn summarize(output: &[u8], known_secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(output);
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    let mut line = redact(line, known_secrets);
    if line.chars().count() > MAX_SUMMARY {
        line = line.chars().take(MAX_SUMMARY).collect::<String>() + "…";
    }
    line
}

/// Replaces known secrets and secret-looking words in `text`.
pub fn redact(text: &str, known_secrets: &[&str]) -> String {
    let mut text = text.to_string();
    for secret in known_secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, "[redacted]");
    }
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if is_token_char(c) {
            word.push(c);
        } else {
            flush_word(&mut out, &mut word);
            out.push(c);
        }
    }
    flush_word(&mut out, &mut word);
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '=')
}

/// Whether `word` is the rest of a `scheme://` URL whose scheme `out` ends with: a URL names
/// a place, not a secret. Only then: a base64 secret can hold `//` anywhere.
fn follows_scheme(out: &str, word: &str) -> bool {
    let Some(before) = out.strip_suffix(':') else {
        return false;
    };
    let scheme: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        .collect();
    word.starts_with("//")
        && scheme.len() >= 2
        && scheme
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphabetic())
}

/// One line of at most [`MAX_ERROR`] characters: how every error leaves the daemon (in
/// `status`, a reply, the log), whatever its source put in it.
pub fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > MAX_ERROR {
        line.chars().take(MAX_ERROR).collect::<String>() + "…"
    } else {
        line
    }
}

/// The longest error message the daemon hands out.
pub const MAX_ERROR: usize = 300;

/// A GUID (a tenant, an application, a request id) names something; it is not a secret.
fn is_guid(word: &str) -> bool {
    word.len() == 36
        && word.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn flush_word(out: &mut String, word: &mut String) {
    let looks_secret = word.len() >= SECRET_WORD_LEN
        && !is_guid(word)
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic())
        && !follows_scheme(out, word);
    if looks_secret {
        out.push_str("[redacted]");
    } else {
        out.push_str(word);
    }
    word.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_real_url_is_spared() {
        let token = "AQoDYXdzEJr//////////wEaoAK1wvxJY12r2IrDFT2IvAzTCn3zHoZ7YNtpiQLF0MqZye";
        let text = format!("denied for {token} at https://sts.example.com/path2026abcdefgh");
        let out = redact(&text, &[]);
        assert!(!out.contains(token), "{out}");
        assert!(
            out.contains("https://sts.example.com/path2026abcdefgh"),
            "{out}"
        );
        // `//` after something that is not a scheme is no URL.
        let out = redact(&format!("x ://{token}"), &[]);
        assert!(!out.contains("wEaoAK1wvxJY"), "{out}");
    }

    #[test]
    fn errors_leave_as_one_bounded_line() {
        assert_eq!(one_line("a\n  b\tc\n"), "a b c");
        let long = "word ".repeat(200);
        let line = one_line(&long);
        assert_eq!(line.chars().count(), MAX_ERROR + 1);
        assert!(line.ends_with('…'));
    }

    #[test]
    fn guids_stay_and_secret_looking_words_go() {
        let text = "AADSTS700016: app '3c1d2e4f-0000-4000-8000-0000000f0d12' key Q8~credd.client.secret-value_0123456789";
        let redacted = redact(text, &[]);
        assert!(
            redacted.contains("3c1d2e4f-0000-4000-8000-0000000f0d12"),
            "{redacted}"
        );
        assert!(!redacted.contains("secret-value_0123456789"), "{redacted}");
    }

    #[test]
    fn keeps_the_last_line_and_plain_words() {
        let s = summarize(b"starting\n\n[ERROR] item not found in vault\n\n", &[]);
        assert_eq!(s, "[ERROR] item not found in vault");
    }

    #[test]
    fn hides_known_and_secret_looking_values() {
        let s = summarize(
            b"bad key sk-ant-abc123def456ghi789jkl for hunter2hunter2",
            &["hunter2hunter2"],
        );
        assert_eq!(s, "bad key [redacted] for [redacted]");
    }

    #[test]
    fn leaves_urls_and_paths_readable() {
        let s = summarize(b"cannot reach https://vault.example.com/v1/auth", &[]);
        assert_eq!(s, "cannot reach https://vault.example.com/v1/auth");
    }

    #[test]
    fn long_output_is_cut() {
        let s = summarize("word ".repeat(100).as_bytes(), &[]);
        assert!(s.chars().count() <= MAX_SUMMARY + 1);
    }
}
