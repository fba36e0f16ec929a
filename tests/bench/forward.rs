//! A forward's cost: `credd get` exec to exit on a cached source through the forward's socket
//! carried by `credd ssh` (a real OpenSSH server on 127.0.0.1), against the same `get` on the
//! main socket; and a proxied request (a new connection each, the whole streamed answer) on
//! the main proxy socket, the forward's, and the SSH-forwarded one. As root: the remote user is
//! the second account the test command creates.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credd_tests::World;
use credd_tests::model_api::ModelApi;
use credd_tests::sshd::{self, Sshd};

use crate::timing::{print_ratio, report, time_runs};

pub fn forward(runs: usize) {
    println!("\n## a forward over SSH: credd get and a proxied request ({runs} runs each)");
    if !credd_tests::running_as_root() {
        println!("  not measured: the SSH forward logs in as a second account, which needs root");
        return;
    }
    let api = ModelApi::start();
    let world = World::new().with_env("CREDD_LOG", "warn");
    let cmd = world.counting_command("gw", "tok-bench");
    world.write_config(&format!(
        "[sources.gw]\nkind = \"exec\"\ncommand = {}\nttl = \"12h\"\nproxy = {{ upstream = \"{}\" }}\n\n[forwards.dev]\nsources = [\"gw\"]\n",
        serde_json::to_string(&cmd).unwrap(),
        api.url()
    ));
    let _daemon = world.start_daemon();
    world.credd(&["get", "gw"]).ok();
    let sshd = Sshd::start(world.dir.path());
    let home = sshd::remote_workdir("bench");
    // A session that prints its socket and stays until its stdin closes.
    let mut args = vec!["ssh".to_string(), sshd.destination()];
    args.extend(sshd.options());
    args.extend(["--".into(), "echo \"$CREDD_SOCKET\"; read _".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut session = world
        .credd_command(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(session.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let remote_socket = line.trim().to_string();

    let local = time_runs(runs, || {
        world
            .credd_command(&["get", "gw"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
    let remote_credd = home.join("bin/credd");
    let forwarded = time_runs(runs, || {
        let mut cmd = world.credd_command(&["get", "gw"]);
        cmd.env("CREDD_SOCKET", &remote_socket)
            .env("CREDD_FORWARD", "dev@bench")
            .stdout(Stdio::null());
        // The remote's own copy of the client, as a remote runs it.
        let mut cmd = rebase(cmd, &remote_credd);
        cmd.status().unwrap().success()
    });
    report("credd get gw, main socket", &local, None);
    report("credd get gw, over SSH", &forwarded, None);
    print_ratio("over SSH / main socket", &forwarded, &local);

    let forward_dir = world.socket.parent().unwrap().join("forwards/dev");
    let sockets = [
        (
            "main socket",
            world.socket.with_file_name("credd.sock.proxy"),
        ),
        ("forward socket", forward_dir.join("credd.sock.proxy")),
        ("over SSH", format!("{remote_socket}.proxy").into()),
    ];
    let mut times = Vec::new();
    for (what, socket) in &sockets {
        let t = time_runs(runs, || proxied(socket));
        report(&format!("proxied, {what}"), &t, None);
        times.push(t);
    }
    print_ratio(
        "proxied, over SSH / main proxy socket",
        &times[2],
        &times[0],
    );

    drop(session.stdin.take());
    let ended = Instant::now();
    let _ = session.wait();
    println!(
        "  the session ended and cleaned up in {:.0} ms",
        ended.elapsed().as_secs_f64() * 1000.0
    );
    let _ = std::fs::remove_dir_all(&home);
}

/// `cmd` with another program, keeping its arguments and environment.
fn rebase(cmd: Command, program: &Path) -> Command {
    let mut new = Command::new(program);
    new.args(cmd.get_args()).env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            new.env(k, v);
        }
    }
    new.stdout(Stdio::null());
    new
}

/// One request to the gateway route on `socket`, on a new connection, read to its end.
fn proxied(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = "POST /v1/messages HTTP/1.1\r\nHost: gw.credd.localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 200")
}
