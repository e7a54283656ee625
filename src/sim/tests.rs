//! In-process tests: the text forms, delay sampling, and [`spawn`]/drop over real sockets.
//! The binary's behaviour, mode by mode, is tested in `tests/partner_sim.rs`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rand::SeedableRng;

use super::*;

#[test]
fn modes_round_trip_through_text() {
    for s in [
        "ok",
        "empty",
        "notfound",
        "status:503",
        "reset",
        "hang",
        "slow-body:2",
        "garbage",
        "oversize",
        "close-after:2",
        "wrong-shape",
    ] {
        let m: Mode = s.parse().unwrap();
        assert_eq!(m.to_string(), s);
        assert_eq!(MODE_NAMES[m.index()], m.name());
    }
    for bad in ["", "OK", "status", "status:99", "status:600", "slow-body:-1", "close-after:0", "hang:1"] {
        assert!(bad.parse::<Mode>().is_err(), "{bad}");
    }
}

#[test]
fn delays_parse_and_stay_in_range() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let ms = Duration::from_millis;
    assert_eq!("fixed".parse::<Delay>().unwrap(), Delay::NONE);
    assert_eq!("fixed:2.5".parse::<Delay>().unwrap().sample(&mut rng), Duration::from_micros(2500));
    let u: Delay = "uniform:1:3".parse().unwrap();
    let l: Delay = "lognormal:5:0.5".parse().unwrap();
    let p: Delay = "pareto:2:1.5".parse().unwrap();
    let mut logs = Vec::new();
    for _ in 0..2000 {
        let d = u.sample(&mut rng);
        assert!((ms(1)..=ms(3)).contains(&d), "{d:?}");
        assert!(p.sample(&mut rng) >= ms(2));
        logs.push(l.sample(&mut rng));
    }
    logs.sort();
    let median = logs[logs.len() / 2];
    assert!((ms(4)..=ms(6)).contains(&median), "{median:?}");
    // A heavy tail is capped.
    let heavy: Delay = "pareto:1000:0.01".parse().unwrap();
    assert!((0..100).all(|_| heavy.sample(&mut rng) <= MAX_DELAY));
    for bad in ["uniform:3:1", "lognormal:5", "pareto:1:0", "gamma:1:2", "fixed:x", "uniform:1:20000"] {
        assert!(bad.parse::<Delay>().is_err(), "{bad}");
    }
}

/// One request on a fresh connection; the whole answer (the simulator closes after it).
fn exchange(sim: &SimHandle, raw: &str) -> String {
    let mut s = TcpStream::connect(sim.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn spawned_simulator_answers_and_counts() {
    let sim =
        spawn(SimOptions { threads: 2, driver: Driver::Auto, ttl_s: Some(60), ..SimOptions::default() })
            .unwrap();
    assert_eq!(sim.threads(), 2);
    let want = segments_for(b"u1", &SimOptions::default().segments, 2);
    let body = String::from_utf8(answer::segments_body(&want, Some(60))).unwrap();
    let got = exchange(&sim, "GET /s?uid=u1 HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n") && got.ends_with(&body), "{got}");
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.connections), (1, 1));
    assert_eq!(sim.requests().len(), 1);
    assert!(sim.url("/x").starts_with("http://127.0.0.1:"));
    sim.reset();
    assert_eq!(sim.stats().requests, 0);
}

#[test]
fn drop_closes_hanging_connections() {
    let sim = spawn(SimOptions { mode: Mode::Hang, driver: Driver::Auto, ..SimOptions::default() }).unwrap();
    let mut s = TcpStream::connect(sim.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /s HTTP/1.1\r\nHost: p\r\n\r\n").unwrap();
    // The request was read (and counted) before the simulator stops.
    let t = Instant::now();
    while sim.stats().requests == 0 {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::yield_now();
    }
    let t = Instant::now();
    drop(sim);
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn bad_options_are_refused() {
    assert!(spawn(SimOptions { threads: 0, ..SimOptions::default() }).is_err());
    assert!(spawn(SimOptions { fail_rate: 1.5, ..SimOptions::default() }).is_err());
}
