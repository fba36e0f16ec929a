//! End-to-end tests: the built `credd` and `credd-daemon` against real peers. One file per
//! capability; the harness (`credd_tests`) gives each test its own isolated world.

mod aws_console;
mod aws_container;
mod aws_mfa;
mod aws_source;
mod aws_sso;
mod claude_code;
mod config_reload;
mod container;
mod daemon_hygiene;
mod docs;
mod doctor;
mod entra_endpoint;
mod entra_source;
mod exec_source;
mod forwards;
mod gcp_id_tokens;
mod gcp_metadata;
mod gcp_source;
mod helper_hooks;
mod hostile_upstream;
mod impostors;
mod init;
mod keyring;
mod layering;
mod lifecycle;
mod loopback_upstreams;
mod mcp;
mod network;
mod notifications;
mod oidc;
mod protocol;
mod providers;
mod proxy;
mod refresh;
mod remote;
mod second_user;
mod secrets;
mod service;
mod setup;
mod trace_secrets;
mod upgrade;

/// A world whose one source, `gateway`, runs a counted command (`gw`) that prints `token`.
pub fn gateway_world(token: &str) -> credd_tests::World {
    let world = credd_tests::World::new();
    let cmd = world.counting_command("gw", token);
    world.write_config(&exec_config("gateway", &cmd, ""));
    world
}

/// A config with one exec source named `name` running `command`.
pub fn exec_config(name: &str, command: &[String], extra: &str) -> String {
    format!(
        "[sources.{name}]\nkind = \"exec\"\ncommand = {}\n{extra}\n",
        serde_json::to_string(command).unwrap()
    )
}
