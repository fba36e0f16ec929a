//! What failing over to another region costs: the time a Bedrock request through the proxy
//! takes when its first region answers 529 overloaded and the proxy sends it again, signed for
//! the next, against the same request straight to a region that answers. Both model APIs are
//! the tests' stand-in on 127.0.0.1 (it checks each signature), so the difference is the
//! refused round trip and the second signature, not a network.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use credd_tests::World;
use credd_tests::model_api::ModelApi;

use crate::timing::{ms, pct, print_spread};

/// A world whose `bedrock` source signs with a session moto issues for long-term keys, in
/// us-east-1, its proxy sending to `api` with us-west-2 to fail over to.
fn world(api: &ModelApi, moto: &credd_tests::peers::Moto) -> World {
    let world = World::new().with_env("CREDD_LOG", "warn").with_aws(
        "[profile bench]\nregion = us-east-1\n",
        "[bench]\naws_access_key_id = AKIACREDDBENCHFAIL01\naws_secret_access_key = bench-secret\n",
        &moto.url(),
    );
    world.write_config(&format!(
        "[sources.bedrock]\nkind = \"aws\"\nprofile = \"bench\"\nproxy = {{ upstream = \"{}\", failover = [\"us-east-1\", \"us-west-2\"] }}\n",
        api.url()
    ));
    world
}

/// The time of each of `runs` requests on the proxy socket of `world`'s `bedrock` route, each
/// on its own connection; sorted.
fn times(world: &World, runs: usize) -> Vec<Duration> {
    let status = world.source_status("bedrock");
    let socket = status["endpoints"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["kind"] == "proxy"))
        .expect("the proxy route")
        .clone();
    let path = socket["socket"].as_str().unwrap().to_string();
    let host = socket["url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let request = format!(
        "POST /model/anthropic.claude/invoke HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs + 5 {
        let started = Instant::now();
        let mut stream = UnixStream::connect(&path).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        times.push(started.elapsed());
    }
    // The first few warm the cache and the connections.
    times.drain(..5);
    times.sort();
    times
}

pub fn failover(runs: usize) {
    println!("\n## region failover (a Bedrock route, 529 in the first region, to 127.0.0.1)");
    let moto = credd_tests::peers::Moto::start();
    let answering = ModelApi::aws("bedrock", &["us-east-1", "us-west-2"]);
    let direct = world(&answering, &moto);
    let _direct_daemon = direct.start_daemon();
    let plain = times(&direct, runs);

    let overloaded = ModelApi::aws("bedrock", &["us-east-1", "us-west-2"]);
    overloaded.overload("us-east-1");
    let failing = world(&overloaded, &moto);
    let _failing_daemon = failing.start_daemon();
    let failed_over = times(&failing, runs);
    let regions = overloaded.regions_of_messages();
    assert!(
        regions.iter().filter(|(_, r)| r == "us-west-2").count() >= runs,
        "the requests did not fail over: {regions:?}"
    );

    print_spread("whole request, first region answers  ", &plain);
    print_spread("whole request, after a 529 failover  ", &failed_over);
    println!(
        "  failover adds {:.3} ms at the median",
        ms(pct(&failed_over, 0.5)) - ms(pct(&plain, 0.5))
    );
}
