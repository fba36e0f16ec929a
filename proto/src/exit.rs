//! The exit codes of `credd`: one table, from which the codes the client exits with, its
//! `--help` and man page, and the README's table all come (a test holds the README to it).

/// Why `credd` exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Success = 0,
    Upstream = 1,
    Usage = 2,
    Unreachable = 3,
    UnknownSource = 4,
    NeedsLogin = 5,
    Version = 6,
    Refused = 7,
    Misconfigured = 8,
}

impl Exit {
    pub const ALL: [Exit; 9] = [
        Exit::Success,
        Exit::Upstream,
        Exit::Usage,
        Exit::Unreachable,
        Exit::UnknownSource,
        Exit::NeedsLogin,
        Exit::Version,
        Exit::Refused,
        Exit::Misconfigured,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// A few words, for `--help`.
    pub fn brief(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Upstream => "the upstream failed and nothing valid is cached",
            Exit::Usage => "usage error, or the credential cannot be printed in that format",
            Exit::Unreachable => "credd-daemon cannot be reached or started",
            Exit::UnknownSource => "no such source",
            Exit::NeedsLogin => "the source needs `credd login`",
            Exit::Version => "client and daemon speak different protocol versions",
            Exit::Refused => "the daemon refused the request or failed internally",
            Exit::Misconfigured => "the source's settings are missing or wrong",
        }
    }

    /// The whole meaning, for the README's table.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Upstream => {
                "the upstream failed and nothing valid is cached (the message carries its error)"
            }
            Exit::Usage => {
                "usage error, or the credential cannot be printed in the requested format"
            }
            Exit::Unreachable => {
                "the daemon could not be reached or started (`credd-daemon` exits 3 when another daemon already serves its socket)"
            }
            Exit::UnknownSource => "no source of that name in the config",
            Exit::NeedsLogin => "the source needs an interactive login (`credd login SOURCE`)",
            Exit::Version => {
                "the client and the daemon speak different protocol versions and the daemon was not replaced (see [Upgrades](#upgrades))"
            }
            Exit::Refused => {
                "the daemon refused the request (`--audience` for a source that mints no ID tokens, say) or failed internally"
            }
            Exit::Misconfigured => {
                "the source's settings are missing or wrong (a setting neither the config nor the environment gives, an AWS profile that does not exist, a command that is not there); credd retries by itself only every 15 minutes, at once after a config edit or `credd refresh`"
            }
        }
    }
}

/// The line `--help` and the man page end with.
pub fn help_text() -> String {
    let codes: Vec<String> = Exit::ALL
        .iter()
        .map(|e| format!("{} {}", e.code(), e.brief()))
        .collect();
    format!("Exit codes: {}.", codes.join("; "))
}

/// The README's table.
pub fn markdown_table() -> String {
    let mut table = String::from("| code | meaning |\n|---|---|\n");
    for e in Exit::ALL {
        table += &format!("| {} | {} |\n", e.code(), e.meaning());
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_their_place_in_the_table() {
        for (i, e) in Exit::ALL.iter().enumerate() {
            assert_eq!(usize::from(e.code()), i);
        }
    }
}
