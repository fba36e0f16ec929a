//! Turning an upstream's words into an error message that is safe to show and log.
//!
//! Upstream tools sometimes echo what they were given. Before any of their output reaches an
//! error message, it is cut to one short line and every word that looks like a secret, or is one
//! of the values we know to be secret, or is the value of a secret-named key (`password=...`),
//! is replaced.

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

/// What stands in for anything redacted.
const REDACTED: &str = "[redacted]";

/// Replaces known secrets, the values of secret-named keys and secret-looking words in `text`.
pub fn redact(text: &str, known_secrets: &[&str]) -> String {
    let mut text = text.to_string();
    for secret in known_secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, REDACTED);
    }
    let text = redact_assignments(&text);
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

/// `text` with the value of every `key=value`, `key: value` and `"key": "value"` whose key names
/// a secret ([`is_secret_key`]) replaced, however short: `password=hunter2` is a secret that no
/// word-length rule catches. The key stays, so the message still says what was wrong; a secret
/// word that is not followed by `=` or `:` ("the token expired") is prose and stays too.
fn redact_assignments(text: &str) -> String {
    // Every byte that decides anything here is ASCII, so every cut is on a char boundary.
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_key_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let key_end = i + bytes[i..].iter().take_while(|b| is_key_byte(**b)).count();
        match secret_value(bytes, i..key_end) {
            Some(value) => {
                out.push_str(&text[copied..value.start]);
                out.push_str(REDACTED);
                copied = value.end;
                i = value.end;
            }
            None => i = key_end,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Characters of a key: `api_key`, `x-api-key`, `aws.secret_key`, `clientSecret`.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Where the value assigned to the key at `key` in `text` lies, when the key names a secret and
/// is followed by `=` or `:` and a value. A quoted value (`"k": "v"`, `k='v'`) is the text
/// between its quotes, spaces and all; a bare one runs to the next blank (after a quoted key,
/// to the next `,`, `}` or `]` too: JSON's `"token": null,`). A bare value that stopped at a
/// character of the secret would show the rest of it, so it ends late rather than early.
fn secret_value(text: &[u8], key: std::ops::Range<usize>) -> Option<std::ops::Range<usize>> {
    if !is_secret_key(&String::from_utf8_lossy(&text[key.clone()])) {
        return None;
    }
    // A key in quotes (`"client_secret":`) is JSON's, or a dict's.
    let json_key = key
        .start
        .checked_sub(1)
        .map(|i| text[i])
        .is_some_and(|q| matches!(q, b'"' | b'\'') && text.get(key.end) == Some(&q));
    let i = skip_blanks(text, key.end + usize::from(json_key));
    match *text.get(i)? {
        // `token::Error` is a path, not an assignment.
        b':' if text.get(i + 1) == Some(&b':') => return None,
        b'=' | b':' => {}
        _ => return None,
    }
    let start = skip_blanks(text, i + 1);
    let value = match *text.get(start)? {
        q @ (b'"' | b'\'') => start + 1..closing_quote(text, start + 1, q),
        _ => {
            let len = text[start..]
                .iter()
                .take_while(|&&b| {
                    !(b.is_ascii_whitespace() || (json_key && matches!(b, b',' | b'}' | b']')))
                })
                .count();
            start..start + len
        }
    };
    (!value.is_empty()).then_some(value)
}

/// The first index at or after `from` that is not a space or a tab (a value never starts on
/// the next line).
fn skip_blanks(text: &[u8], from: usize) -> usize {
    from + text
        .get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&b| matches!(b, b' ' | b'\t'))
        .count()
}

/// The index of the first `quote` at or after `from` that no backslash escapes, or the end of
/// `text` when the value is never closed (then all of it is the value).
fn closing_quote(text: &[u8], from: usize, quote: u8) -> usize {
    let mut i = from;
    while i < text.len() && text[i] != quote {
        i += if text[i] == b'\\' { 2 } else { 1 };
    }
    i.min(text.len())
}

/// Whether `key` names a secret: its last word ([`key_words`], so `client_secret`, `x-api-key`
/// and `accessToken` all count) is `key` or `pwd`, or ends in `password`, `secret`, `token` or
/// the like. Only the last word: `token_type` and `key_id` name no secret, and `monkey` is no
/// key. `expired_token` and `InvalidToken` name an error (OAuth's, AWS's), whose description
/// follows the colon; that stays readable.
fn is_secret_key(key: &str) -> bool {
    const EXACT: [&str; 2] = ["key", "pwd"];
    const ENDINGS: [&str; 8] = [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "secretkey",
        "privatekey",
    ];
    let words = key_words(key);
    let Some((last, before)) = words.split_last() else {
        return false;
    };
    let names_secret = EXACT.contains(&last.as_str()) || ENDINGS.iter().any(|e| last.ends_with(e));
    let names_error = before
        .last()
        .is_some_and(|w| matches!(w.as_str(), "invalid" | "expired"));
    names_secret && !names_error
}

/// The words of a key, lower-cased: split at `_`, `-` and `.`, and where lower case (or a
/// digit) turns to upper case (`SecretAccessKey` -> `secret`, `access`, `key`; `APIKey` is one).
fn key_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in key.split(['_', '-', '.']) {
        let mut start = 0;
        for (i, pair) in part.as_bytes().windows(2).enumerate() {
            if pair[1].is_ascii_uppercase() && !pair[0].is_ascii_uppercase() {
                words.push(part[start..=i].to_ascii_lowercase());
                start = i + 1;
            }
        }
        words.push(part[start..].to_ascii_lowercase());
    }
    words
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
        out.push_str(REDACTED);
    } else {
        out.push_str(word);
    }
    word.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `text` redacts to `want`, printing neither: a failure must not show the
    /// secret. `form` says which case failed.
    #[track_caller]
    fn assert_redacts_to(text: &str, want: &str, form: &str) {
        assert!(
            redact(text, &[]) == want,
            "{form}: not redacted to the expected text"
        );
    }

    #[test]
    fn a_short_value_after_a_secret_key_and_equals_goes() {
        assert_redacts_to(
            "login failed: password=hunter2",
            "login failed: password=[redacted]",
            "k=v",
        );
        assert_redacts_to("PASSWORD=x", "PASSWORD=[redacted]", "upper-case k=v");
        assert_redacts_to(
            "--client-secret=s3 given",
            "--client-secret=[redacted] given",
            "flag k=v",
        );
        assert_redacts_to(
            "api_key = k1 refused",
            "api_key = [redacted] refused",
            "k = v",
        );
        assert_redacts_to(
            "AWS_SECRET_ACCESS_KEY='a b' refused",
            "AWS_SECRET_ACCESS_KEY='[redacted]' refused",
            "quoted k=v",
        );
        assert_redacts_to(
            "GET https://api.example.com/v1?key=abc1&alt=json",
            "GET https://api.example.com/v1?key=[redacted]",
            "k=v in a URL query",
        );
    }

    #[test]
    fn a_short_value_after_a_secret_key_and_colon_goes() {
        assert_redacts_to(
            "vault: token: s.abc refused",
            "vault: token: [redacted] refused",
            "k: v",
        );
        assert_redacts_to("refresh_token:abc", "refresh_token:[redacted]", "k:v");
        assert_redacts_to(
            "accessToken: xyz",
            "accessToken: [redacted]",
            "camelCase k: v",
        );
    }

    #[test]
    fn a_short_json_value_after_a_secret_key_goes() {
        assert_redacts_to(
            r#"{"client_secret": "s3 cr3t", "token_type": "Bearer", "access_token":"abc"}"#,
            r#"{"client_secret": "[redacted]", "token_type": "Bearer", "access_token":"[redacted]"}"#,
            "JSON string",
        );
        assert_redacts_to(
            r#"{"refresh_token":null,"error":"invalid_grant"}"#,
            r#"{"refresh_token":[redacted],"error":"invalid_grant"}"#,
            "JSON non-string",
        );
        assert_redacts_to(
            r#"{"Password": "a\"b"}"#,
            r#"{"Password": "[redacted]"}"#,
            "JSON string with an escaped quote",
        );
    }

    #[test]
    fn prose_and_names_near_secret_keys_stay() {
        let text = "the token expired; key_id=AKIA1 token_type=Bearer monkey=banana \
                    token::refresh expired_token: The device code expired; password=pw1";
        let want = "the token expired; key_id=AKIA1 token_type=Bearer monkey=banana \
                    token::refresh expired_token: The device code expired; password=[redacted]";
        assert_redacts_to(text, want, "prose");
        assert_redacts_to(
            "ExpiredToken: The security token included in the request is expired; token: t",
            "ExpiredToken: The security token included in the request is expired; token: [redacted]",
            "AWS error code",
        );
    }

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
