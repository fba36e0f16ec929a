//! The AWS config and credentials files, parsed by the SDK, and credd's reading of a profile
//! from them (source_profile chains, SSO sessions, MFA roles).
#![no_main]

use std::collections::HashMap;

use aws_types::os_shim_internal::{Env, Fs};
use credd_daemon::sources::aws;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Half the input is the config file, half the credentials file.
    let split = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    let (config, credentials) = text.split_at(split);
    let fs = Fs::from_map(HashMap::from([
        (
            "/home/fuzz/.aws/config".to_string(),
            config.as_bytes().to_vec(),
        ),
        (
            "/home/fuzz/.aws/credentials".to_string(),
            credentials.as_bytes().to_vec(),
        ),
    ]));
    let env = Env::from_slice(&[("HOME", "/home/fuzz")]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    if let Ok(set) = runtime.block_on(aws::load_profiles_from(&fs, &env)) {
        let mut names: Vec<String> = set.profiles().map(str::to_string).collect();
        names.push("default".into());
        for name in names {
            let _ = aws::classify(&set, &name);
        }
    }
});
