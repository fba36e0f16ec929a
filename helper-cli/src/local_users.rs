//! Who else can sign in to this machine. A TCP port is safe for credd only while nobody else
//! can take it, and on a host with other login users, any of them can while credd is down:
//! `setup --tcp` and `doctor` say so, naming them.

/// The other accounts of people on this machine: a uid from 1000 on (Debian's first for
/// people; not `nobody`), a shell one can sign in with, and not this user. Empty where the
/// system keeps no `/etc/passwd` of its people (macOS keeps them elsewhere).
pub fn others() -> Vec<String> {
    let me = credd_proto::paths::effective_uid();
    std::fs::read_to_string("/etc/passwd")
        .map(|passwd| people_besides(&passwd, me))
        .unwrap_or_default()
}

fn people_besides(passwd: &str, me: u32) -> Vec<String> {
    passwd
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, uid, _, _, _, shell] = fields.as_slice() else {
                return None;
            };
            let uid: u32 = uid.parse().ok()?;
            let signs_in = !shell.is_empty()
                && !["nologin", "false", "sync"]
                    .iter()
                    .any(|no| shell.ends_with(no));
            (uid >= 1000 && uid != 65534 && uid != me && signs_in).then(|| name.to_string())
        })
        .collect()
}

/// The warning for a TCP port of credd's on this machine, if other people can sign in to it.
pub fn port_warning(what: &str) -> Option<String> {
    let others = others();
    if others.is_empty() {
        return None;
    }
    let shown: Vec<&str> = others.iter().take(5).map(String::as_str).collect();
    let more = if others.len() > shown.len() {
        format!(" and {} more", others.len() - shown.len())
    } else {
        String::new()
    };
    Some(format!(
        "this machine has other login users ({}{more}): while credd is down, any of them can take {what} and receive what is sent there (Claude Code's prompts, with the caller secret); use the proxy's Unix socket instead",
        shown.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_people_who_can_sign_in_count() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      ada:x:1000:1000:Ada:/home/ada:/bin/bash\n\
                      bob:x:1001:1001:Bob:/home/bob:/usr/bin/zsh\n\
                      svc:x:1002:1002::/srv:/bin/false\n\
                      broken line\n";
        assert_eq!(people_besides(passwd, 1000), ["bob"]);
        assert_eq!(people_besides(passwd, 0), ["ada", "bob"]);
    }
}
