//! Connection lifecycle and process lifecycle through the real binary: header and keep-alive
//! time-outs, drain on SIGTERM, `max_connections`, the admin listener, reload on SIGHUP, and
//! configuration errors (docs/configuration.md §1–§3).
//!
//! On both drivers (the two daemons side by side, [`common::for_each_driver`]): every test of
//! a connection's life — the 408s, the idle and fresh-connection time-outs, both drain tests,
//! `max_connections` and the admin listener. On one daemon: the process-level tests, where the
//! driver only carries a request or two and the behaviour lives on the main or snapshot thread
//! (SIGHUP reload, sd_notify, snapshots, table metrics, worker naming and pinning, which happen
//! before the worker's runtime is built) and the tests that never serve (configuration errors,
//! `--check`, a taken port).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // test clients may block

mod common;

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{connect, for_each_driver, temp_dir, Daemon, Reader};

#[test]
fn slow_client_gets_408_and_close_counted_from_the_first_byte() {
    for_each_driver(|driver| {
        let d = Daemon::start(driver, "[limits]\nheader_timeout_ms = 300\n");
        let mut r = Reader::new(connect(d.addr));
        let t0 = Instant::now();
        r.send(b"GET /event HTTP/1.1\r\nHost: a\r\n");
        // Still trickling, never finishing: a header line every 50 ms until the server closes.
        // Bytes arriving do not extend the time-out (a 408 at ~300 ms, not after the trickle).
        let done = AtomicBool::new(false);
        let mut w = r.stream.try_clone().unwrap();
        let took = std::thread::scope(|s| {
            s.spawn(|| {
                let end = Instant::now() + Duration::from_secs(3);
                while !done.load(Ordering::Relaxed) && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(50));
                    if w.write_all(b"X-Slow: 1\r\n").is_err() {
                        break;
                    }
                }
            });
            let resp = r.response(false).expect("408 before close");
            let took = t0.elapsed();
            done.store(true, Ordering::Relaxed);
            assert_eq!(resp.status, 408);
            assert!(resp.closes());
            took
        });
        let from_first_byte = took >= Duration::from_millis(280) && took < Duration::from_millis(2000);
        assert!(from_first_byte, "408 after {took:?}: the time-out runs from the first byte");
    });
}

#[test]
fn slow_body_gets_408() {
    for_each_driver(|driver| {
        let d = Daemon::start(driver, "[limits]\nheader_timeout_ms = 300\n");
        let mut r = Reader::new(connect(d.addr));
        let t0 = Instant::now();
        r.send(b"POST /event HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
        let resp = r.response(false).unwrap();
        let took = t0.elapsed();
        assert_eq!((resp.status, resp.closes()), (408, true), "{resp:?}");
        assert!(r.closed());
        assert!(took >= Duration::from_millis(280) && took < Duration::from_secs(3), "{took:?}");
    });
}

#[test]
fn idle_keep_alive_and_silent_fresh_connections_are_closed() {
    for_each_driver(|driver| {
        let d = Daemon::start(driver, "[limits]\nheader_timeout_ms = 300\nkeepalive_timeout_ms = 1200\n");
        // After an answer: keepalive_timeout, silently.
        let mut r = Reader::new(connect(d.addr));
        r.send(b"GET /event HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r.response(false).unwrap().status, 200);
        let t0 = Instant::now();
        assert!(r.closed(), "idle connection must be closed by the server");
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(1150) && took < Duration::from_secs(4), "{took:?}");
        // A connection that never sends a byte: header_timeout, silently.
        let mut fresh = Reader::new(connect(d.addr));
        let t0 = Instant::now();
        assert!(fresh.closed(), "a silent connection is closed without an answer");
        let took = t0.elapsed();
        let header_timeout = took >= Duration::from_millis(250) && took < Duration::from_millis(1150);
        assert!(header_timeout, "closed after {took:?}: header_timeout, not keepalive_timeout");
    });
}

#[test]
fn drain_on_sigterm_completes_the_request_in_flight() {
    for_each_driver(|driver| {
        let mut d = Daemon::start(driver, "[server]\ndrain_ms = 3000\n");
        // An idle keep-alive connection: closed at once by the drain.
        let mut idle = Reader::new(connect(d.addr));
        idle.send(b"GET /event HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(idle.response(false).unwrap().status, 200);
        // A request in flight: its head parsed by the server (it answered 100 Continue), then
        // half the body.
        let mut r = Reader::new(connect(d.addr));
        r.send(b"POST /event HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
        assert_eq!(r.response(false).unwrap().status, 100);
        r.send(b"d_rtb");
        let t0 = Instant::now();
        d.signal("TERM");
        assert!(idle.closed(), "idle connection closes on drain");
        // At once: not when the process exits (drain_ms = 3000, and the request in flight keeps
        // the process alive until it is answered below).
        assert!(t0.elapsed() < Duration::from_secs(1), "idle closed {:?} after SIGTERM", t0.elapsed());
        // New connections are no longer accepted (refused or closed without an answer).
        let mut late = false;
        for _ in 0..50 {
            match std::net::TcpStream::connect(d.addr) {
                Err(_) => {
                    late = true;
                    break;
                }
                Ok(s) => {
                    let mut lr = Reader::new(s);
                    lr.send(b"GET /event HTTP/1.1\r\nHost: a\r\n\r\n");
                    if lr.response(false).is_none() {
                        late = true;
                        break;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(late, "listener still accepting after SIGTERM");
        r.send(b"d=json");
        let resp = r.response(false).expect("in-flight request answered");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert!(resp.closes(), "answered with Connection: close while draining");
        let status = d.wait_exit(Duration::from_secs(5));
        assert!(status.success(), "{status:?}");
        assert!(d.log().iter().any(|l| l.contains("draining")));
    });
}

#[test]
fn drain_gives_up_after_drain_ms() {
    for_each_driver(|driver| {
        let mut d = Daemon::start(driver, "[server]\ndrain_ms = 300\n");
        let mut r = Reader::new(connect(d.addr));
        r.send(b"POST /event HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
        assert_eq!(r.response(false).unwrap().status, 100, "head parsed: the request is in flight");
        let t0 = Instant::now();
        d.signal("TERM");
        assert!(d.wait_exit(Duration::from_secs(5)).success());
        // It waited for the request (drain_ms), then gave up instead of waiting for ever.
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(280) && took < Duration::from_secs(2), "{took:?}");
        assert!(d.log().iter().any(|l| l.contains("ran out")), "{:?}", d.log());
    });
}

#[test]
fn max_connections_closes_new_connections_at_once() {
    for_each_driver(|driver| {
        let d = Daemon::start(driver, "[limits]\nmax_connections = 1\n");
        let mut first = Reader::new(connect(d.addr));
        first.send(b"GET /event HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(first.response(false).unwrap().status, 200);
        let mut second = Reader::new(connect(d.addr));
        let t0 = Instant::now();
        second.send(b"GET /event HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(second.response(false).is_none(), "second connection must be closed unanswered");
        assert!(t0.elapsed() < Duration::from_secs(1), "closed at once, not timed out: {:?}", t0.elapsed());
        // The first connection is still served.
        first.send(b"GET /event HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(first.response(false).unwrap().status, 200);
        drop(first);
        // The slot is released when the first connection ends (the server sees the close a
        // moment later, so a connection or two may still be turned away).
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let mut again = Reader::new(connect(d.addr));
            again.send(b"GET /event HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
            if again.response(false).is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "slot never released");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(d.metric("dcsd_http_connections_rejected_total") >= 1);
    });
}

#[test]
fn admin_listener_serves_health_and_metrics_only() {
    for_each_driver(|driver| {
        let dir = temp_dir();
        let cfg = dir.0.join("dcsd.toml");
        std::fs::write(
            &cfg,
            "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin_listen = [\"127.0.0.1:0\"]\nthreads = 1\n",
        )
        .unwrap();
        let d = Daemon::spawn(&["--config", cfg.to_str().unwrap(), "--driver", driver]);
        let admin = d.admin.expect("admin address logged");
        let on = |at, path: &str| {
            let raw = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
            common::try_request(at, raw.as_bytes()).unwrap().status
        };
        assert_eq!([on(d.addr, "/event"), on(d.addr, "/metrics"), on(d.addr, "/healthz")], [200, 404, 404]);
        assert_eq!([on(admin, "/metrics"), on(admin, "/healthz"), on(admin, "/event")], [200, 200, 404]);
    });
}

#[test]
fn sighup_reloads_the_taxonomy_or_keeps_the_old_one() {
    let dir = temp_dir();
    let tax = dir.0.join("taxonomy.json");
    std::fs::write(&tax, r#"{"customers":[{"id":1,"hosts":["a"],"cts":true}]}"#).unwrap();
    let d =
        Daemon::spawn(&["--listen", "127.0.0.1:0", "--threads", "1", "--taxonomy", tax.to_str().unwrap()]);
    // `d_sid=5` realizes trait 5 only once a taxonomy that has it is in effect.
    let ask = |host: &str| {
        let raw = format!("GET /event?d_rtbd=json&d_cts=2&d_sid=5 HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let r = d.request(raw.as_bytes());
        let traits = r.body_str().contains("\"traits\":[5]");
        (r.header("x-error").map(str::to_owned), traits)
    };
    assert_eq!(ask("a"), (None, false));
    // A file with an error (and another host): rejected as a whole, the old taxonomy stays.
    std::fs::write(
        &tax,
        r#"{"customers":[{"id":1,"hosts":["b"],"cts":true}],"traits":[{"sid":5,"dpid":9,"rule":null}]}"#,
    )
    .unwrap();
    d.signal("HUP");
    d.wait_log("reload rejected", 1);
    assert!(d.log().iter().any(|l| l.contains("$.traits[0].dpid: unknown ID 9")), "{:?}", d.log());
    assert_eq!(ask("a"), (None, false), "host a still known, trait 5 still unknown");
    assert_eq!(ask("b").0.as_deref(), Some("1"), "host b never became known");
    // A good file: swapped in.
    std::fs::write(&tax, r#"{"customers":[{"id":1,"hosts":["a"],"cts":true}],"data_sources":[{"dpid":9,"owner":1}],"traits":[{"sid":5,"dpid":9,"rule":null}]}"#).unwrap();
    d.signal("HUP");
    d.wait_log("reloaded taxonomy: 1 traits", 1);
    assert_eq!(ask("a"), (None, true), "the new taxonomy is in effect");
}

fn dcsd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dcsd")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_summary_of_the_defaults() {
    let (code, out, _) = dcsd(&["--check"]);
    assert_eq!(code, 0);
    // The first line; a second says when RLIMIT_NOFILE lowers max_connections (tests/budgets.rs).
    assert_eq!(
        out.lines().next().unwrap_or(""),
        "ok: 3 hosts, 3 data sources, 5 traits, 3 segments, 2 destinations; listen 127.0.0.1:8080"
    );
    let (code, out, _) = dcsd(&["--check", "--listen", "127.0.0.1:9999", "--listen", "[::1]:9998"]);
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap_or("").ends_with("listen 127.0.0.1:9999,[::1]:9998"), "{out}");
}

#[test]
fn bad_config_exits_64_with_file_line_and_reason() {
    let dir = temp_dir();
    let cfg = dir.0.join("dcsd.toml");
    let path = cfg.to_str().unwrap();
    let cases = [
        ("[server]\nregion = 7\nthreadz = 2\n", ":3:1:", "unknown field `threadz`"),
        ("[limits]\nmax_body_bytes = -5\n", ":2:18:", ""),
        ("[server]\nlisten = [\"localhost\"]\n", ":2:11:", "socket address"),
        ("[server]\ndriver = \"turbo\"\n", ":2:10:", "turbo"),
        ("[eventlog]\nfsync = \"sometimes\"\n", ":2:9:", "sometimes"),
        ("[tls]\ncert = \"/etc/ssl/dcs.pem\"\n", ": ", "[tls]: cert and key must both be set"),
        ("[[tls.sni]]\ncert = \"\"\nkey = \"k.pem\"\n", ":2:8:", "a file path is required"),
        ("[server\n", ":1:", ""),
    ];
    for (text, place, reason) in cases {
        std::fs::write(&cfg, text).unwrap();
        let (code, _, err) = dcsd(&["--config", path, "--check"]);
        assert_eq!(code, 64, "{text:?}: {err}");
        assert!(err.starts_with(&format!("{path}{place}")), "{text:?}: {err}");
        assert!(err.contains(reason), "{text:?}: {err}");
    }
    let (code, _, err) = dcsd(&["--config", "/nonexistent/dcsd.toml"]);
    assert_eq!(code, 64);
    assert!(err.contains("/nonexistent/dcsd.toml: cannot read"), "{err}");
    let (code, _, _) = dcsd(&["--threads", "many"]);
    assert_eq!(code, 64);
    let (code, _, _) = dcsd(&["--driver", "turbo"]);
    assert_eq!(code, 64);
}

#[test]
fn bad_taxonomy_exits_64_with_json_path() {
    let dir = temp_dir();
    let tax = dir.0.join("t.json");
    std::fs::File::create(&tax)
        .unwrap()
        .write_all(
            br#"{"customers":[{"id":1,"hosts":["a"]}],"segments":[{"sid":1,"customer":2,"rule":"1T"}]}"#,
        )
        .unwrap();
    let (code, _, err) = dcsd(&["--check", "--taxonomy", tax.to_str().unwrap()]);
    assert_eq!(code, 64);
    assert!(err.contains("t.json: $.segments[0].customer: unknown ID 2"), "{err}");
    // A relative taxonomy path in dcsd.toml is relative to the file.
    let cfg = dir.0.join("dcsd.toml");
    std::fs::write(&cfg, "[server]\ntaxonomy = \"t.json\"\n").unwrap();
    let (code, _, err) = dcsd(&["--check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 64);
    assert!(err.contains("$.segments[0].customer"), "{err}");
}

#[test]
fn taken_port_fails_start_up_cleanly() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let (code, _, err) = dcsd(&["--listen", &addr, "--threads", "1"]);
    assert_eq!(code, 71, "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn systemd_is_notified_ready_and_stopping() {
    let dir = temp_dir();
    let sock_path = dir.0.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut d = Daemon::spawn_env(
        &["--listen", "127.0.0.1:0", "--threads", "2"],
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    d.signal("TERM");
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn snapshot_is_written_restored_and_a_corrupt_one_refused() {
    let dir = temp_dir();
    let snap = dir.0.join("profiles.snap");
    let cfg = dir.0.join("dcsd.toml");
    let toml = format!(
        "[store]\nsnapshot_path = \"{}\"\nsnapshot_interval_s = 1\nmax_profiles = 10000\n",
        snap.display()
    );
    std::fs::write(&cfg, toml).unwrap();
    let args = ["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0", "--threads", "1"];

    // No file yet: start empty; the snapshotter writes one within its interval.
    let mut d = Daemon::spawn(&args);
    assert!(d.log().iter().any(|l| l.contains("no snapshot at")), "{:?}", d.log());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !snap.exists() {
        assert!(Instant::now() < deadline, "periodic snapshot never written");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.metric("dcsd_profiles"), 0);
    // A profile with realized traits (demo taxonomy: 1234 and 5678 → segment 984263) and a
    // declared ID synced to it; a second profile opted out of the host's customer.
    let uuid = "00000000000000000000000000000000000777";
    let opted = "00000000000000000000000000000000000778";
    let raw = format!(
        "GET /event?d_rtbd=json&d_cts=2&d_cid=1%01crm-9&c_likes=famous+popstar&price=5 HTTP/1.1\r\nHost: localhost\r\nCookie: demdex={uuid}\r\n\r\n"
    );
    let r = d.request(raw.as_bytes());
    assert!(r.body_str().contains("\"traits\":[1234,5678],\"segments\":[984263]"), "{}", r.body_str());
    let raw = format!("GET /demoptout?d_uuid={opted} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(d.request(raw.as_bytes()).status, 200);
    assert_eq!(d.metric("dcsd_profiles"), 2);
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
    assert!(d.log().iter().any(|l| l.contains("snapshot written: 2 profiles")), "{:?}", d.log());

    // Restart: restored before serving. The synced ID still selects the profile, which still
    // holds its traits and segment (no signals in this request), and the opt-out holds.
    let mut d = Daemon::spawn(&args);
    assert!(d.log().iter().any(|l| l.contains("restored 2 profiles from")), "{:?}", d.log());
    assert_eq!(d.metric("dcsd_profiles"), 2);
    let r = d.request(b"GET /event?d_rtbd=json&d_cts=2&d_cid=1%01crm-9 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let want = format!("\"uuid\":\"{uuid}\",\"dcs_region\":7,");
    assert!(r.body_str().contains(&want), "{}", r.body_str());
    assert!(r.body_str().contains("\"traits\":[],\"segments\":[984263]"), "{}", r.body_str());
    let raw = format!("GET /event?d_rtbd=json&d_uuid={opted} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(d.request(raw.as_bytes()).header("x-error"), Some("171"));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success());

    // A torn file and a corrupted one are refused with one line; the daemon starts empty.
    let good = std::fs::read(&snap).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    for (what, bytes) in [("truncated", &good[..good.len() - 3]), ("corrupt", &flipped[..])] {
        std::fs::write(&snap, bytes).unwrap();
        let mut d = Daemon::spawn(&args);
        let refused: Vec<String> = d.log().into_iter().filter(|l| l.contains("refused")).collect();
        assert_eq!(refused.len(), 1, "{what}: {:?}", d.log());
        assert!(
            refused[0].contains(what) && refused[0].contains("starting with an empty profile table"),
            "{refused:?}"
        );
        assert_eq!(d.request(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").status, 200);
        d.signal("TERM");
        assert!(d.wait_exit(Duration::from_secs(10)).success());
    }
}

#[test]
fn workers_are_named_and_pinned_one_per_core() {
    let cpus = std::thread::available_parallelism().unwrap().get().min(4);
    let n = cpus.to_string();
    let d = Daemon::spawn(&["--listen", "127.0.0.1:0", "--threads", &n]);
    let mut workers = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", d.pid())).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap().trim().to_string();
        if let Some(i) = name.strip_prefix('w').and_then(|i| i.parse::<usize>().ok()) {
            let status = std::fs::read_to_string(dir.join("status")).unwrap();
            let allowed =
                status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string();
            workers.push((i, allowed));
        }
    }
    workers.sort();
    // One worker per requested core, w0..w{n-1}, each pinned to a single, different CPU.
    assert_eq!(workers.iter().map(|w| w.0).collect::<Vec<_>>(), (0..cpus).collect::<Vec<_>>(), "{workers:?}");
    let mut pinned: Vec<&str> = workers.iter().map(|w| w.1.as_str()).collect();
    assert!(pinned.iter().all(|c| c.parse::<usize>().is_ok()), "each worker pinned to one CPU: {workers:?}");
    pinned.sort_unstable();
    pinned.dedup();
    assert_eq!(pinned.len(), cpus, "{workers:?}");
}

/// The body of `/metrics`.
fn metrics_text(d: &Daemon) -> String {
    let r = d.request(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    r.body_str().to_owned()
}

#[test]
fn metrics_report_the_table_bound_evictions_and_snapshots() {
    let dir = temp_dir();
    let snap = dir.0.join("profiles.snap");
    let cfg = dir.0.join("dcsd.toml");
    // 64 shards of one profile each.
    let toml = format!(
        "[store]\nsnapshot_path = \"{}\"\nsnapshot_interval_s = 1\nmax_profiles = 64\n",
        snap.display()
    );
    std::fs::write(&cfg, toml).unwrap();
    let d = Daemon::spawn(&["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0", "--threads", "1"]);
    assert_eq!(d.metric("dcsd_profile_capacity"), 64);
    let text = metrics_text(&d);
    for line in ["dcsd_id_mappings{kind=\"declared\"} 0", "dcsd_id_mappings{kind=\"ecid\"} 0"] {
        assert!(text.lines().any(|l| l == line), "{line} missing from {text}");
    }

    // Every request without a cookie realizes a trait, so each is a new profile to store.
    let raw = b"GET /event?c_likes=famous+popstar HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for _ in 0..300 {
        assert_eq!(d.request(raw).status, 200);
    }
    let (kept, evicted) = (d.metric("dcsd_profiles"), d.metric("dcsd_profiles_evicted_total"));
    assert!(kept > 0 && kept <= 64, "{kept} profiles kept");
    assert_eq!(kept + evicted, 300, "each new profile past the bound evicts exactly one");

    // The periodic snapshot reports its time, size (that of the file) and duration.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let at = d.metric("dcsd_snapshot_last_success_timestamp_seconds");
        let bytes = d.metric("dcsd_snapshot_last_bytes");
        if at > 0 && std::fs::metadata(&snap).is_ok_and(|m| m.len() == bytes) {
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot reported: {}", metrics_text(&d));
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = metrics_text(&d);
    let took: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("dcsd_snapshot_last_duration_seconds "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {text}"));
    assert!(took > 0.0 && took < 5.0, "{took}");
    assert!(text.lines().any(|l| l == "dcsd_snapshot_failures_total 0"), "{text}");
}

#[test]
fn metrics_count_snapshot_failures() {
    let dir = temp_dir();
    let cfg = dir.0.join("dcsd.toml");
    let snap = dir.0.join("missing-dir").join("profiles.snap");
    std::fs::write(
        &cfg,
        format!("[store]\nsnapshot_path = \"{}\"\nsnapshot_interval_s = 1\n", snap.display()),
    )
    .unwrap();
    let d = Daemon::spawn(&["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0", "--threads", "1"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.metric("dcsd_snapshot_failures_total") == 0 {
        assert!(Instant::now() < deadline, "no failure counted: {}", metrics_text(&d));
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = metrics_text(&d);
    assert!(text.lines().any(|l| l == "dcsd_snapshot_last_success_timestamp_seconds 0"), "{text}");
    d.wait_log("missing-dir", 1);
}
