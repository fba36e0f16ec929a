//! Config edits take effect without a restart; an invalid edit is reported with file, line and
//! column, and the old config stays in force.

use std::time::Duration;

use credd_tests::World;

use crate::exec_config;

#[test]
fn an_edit_adds_a_source_without_a_restart() {
    let world = World::new();
    let a = world.counting_command("a", "tok-a");
    world.write_config(&exec_config("first", &a, ""));
    let _daemon = world.start_daemon();
    assert_eq!(world.credd(&["get", "first"]).ok(), "tok-a\n");

    let b = world.counting_command("b", "tok-b");
    world.write_config(&(exec_config("first", &a, "") + &exec_config("second", &b, "")));
    world.eventually(Duration::from_secs(10), "reload", || {
        world.credd(&["get", "second"]).code == 0
    });
    assert_eq!(world.credd(&["get", "second"]).ok(), "tok-b\n");
    // The unchanged source kept its cached credential.
    assert_eq!(world.credd(&["get", "first"]).ok(), "tok-a\n");
    assert_eq!(world.runs("a"), 1);
}

#[test]
fn an_invalid_edit_is_reported_and_the_old_config_stays() {
    let world = World::new();
    let a = world.counting_command("a", "tok-a");
    world.write_config(&exec_config("first", &a, ""));
    let _daemon = world.start_daemon();
    assert_eq!(world.credd(&["get", "first"]).ok(), "tok-a\n");

    world.write_config("[sources.first]\nkind = \"exec\"\ncommand = [\"unterminated\"\n");
    world.eventually(Duration::from_secs(10), "config error in status", || {
        world.status()["config_error"].is_string()
    });
    let error = world.status()["config_error"].as_str().unwrap().to_string();
    let expected_prefix = format!("{}:", world.config.display());
    assert!(error.starts_with(&expected_prefix), "{error}");
    let location: Vec<&str> = error[expected_prefix.len()..].splitn(3, ':').collect();
    assert!(
        location[0].parse::<usize>().unwrap() >= 3,
        "line in {error}"
    );
    assert!(location[1].parse::<usize>().is_ok(), "column in {error}");

    // The human status says so too, and the old source still serves.
    let human = world.credd(&["status"]);
    assert!(
        human.ok().contains("previous config stays in force"),
        "{}",
        human.stdout
    );
    assert_eq!(world.credd(&["get", "first"]).ok(), "tok-a\n");

    // Fixing the file clears the error.
    world.write_config(&exec_config("first", &a, ""));
    world.eventually(Duration::from_secs(10), "config error cleared", || {
        world.status()["config_error"].is_null()
    });
}

#[test]
fn an_invalid_file_at_start_is_reported_and_the_daemon_still_runs() {
    let world = World::new();
    world.write_config("[sources.g]\nkind = \"exec\"\ncommand = []\n");
    let _daemon = world.start_daemon();
    let status = world.status();
    assert!(
        status["config_error"]
            .as_str()
            .unwrap()
            .contains("`command` must name a program")
    );
    let out = world.credd(&["get", "g"]);
    assert_eq!(out.code, 4);
}
