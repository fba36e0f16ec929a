//! A source's name, as the config gives it (`[sources.NAME]`): checked once, where the config
//! is read, and then the one key for everything the name stands for: the registry's entry,
//! the slot and its login flow, the account in the OS secret store, the seed of the local
//! endpoints' default ports, and the proxy's route (`NAME.credd.localhost`) and secret file.
//! A name that reached any of those is one of letters, digits, `-`, `_` and `.`.

use std::borrow::Borrow;
use std::fmt;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct SourceName(String);

impl TryFrom<String> for SourceName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(SourceName(name))
        } else {
            Err(format!(
                "source name `{}` may use only letters, digits, `-`, `_` and `.`",
                crate::redact::one_line(&name)
            ))
        }
    }
}

impl TryFrom<&str> for SourceName {
    type Error = String;

    fn try_from(name: &str) -> Result<Self, String> {
        SourceName::try_from(name.to_string())
    }
}

/// Looked up by the name a request carries.
impl Borrow<str> for SourceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Read as the string it is, wherever a name is only shown or compared.
impl std::ops::Deref for SourceName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_pass() {
        for good in ["bedrock", "claude-bedrock", "a.b_c-1"] {
            assert_eq!(&*SourceName::try_from(good).unwrap(), good);
        }
        for bad in ["", "a b", "a/b", "ü", "a:0", "x\n"] {
            assert!(SourceName::try_from(bad).is_err(), "{bad:?}");
        }
    }
}
