//! Pool and breaker behaviour against real sockets on loopback (a tiny partner in the test).

use std::net::SocketAddr;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpListener;

use super::*;
use crate::config::taxonomy::Realtime;
use crate::metrics::PartnerRegistry;

fn spec(addr: SocketAddr, max_conns: u32, failures: u32) -> Arc<PartnerSpec> {
    let json = format!(
        r#"{{"url":"http://{addr}/s?u=${{UUID}}","timeout_ms":200,"max_conns_per_core":{max_conns},"idle_timeout_ms":1000,"breaker":{{"failures":{failures},"open_ms":100}}}}"#
    );
    let mut b = json.into_bytes();
    let rt: Realtime = simd_json::serde::from_slice(&mut b).unwrap();
    Arc::new(PartnerSpec::compile(7, &rt, |_, _| Some(addr)).unwrap())
}

/// A partner that answers every request on a connection with `answer`, keeping it alive.
async fn partner(l: TcpListener, answer: &'static [u8]) {
    loop {
        let Ok((mut s, _)) = l.accept().await else { return };
        monoio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            loop {
                let (r, b) = s.read(buf).await;
                buf = b;
                if !matches!(r, Ok(n) if n > 0) {
                    return;
                }
                buf.clear();
                let (r, _) = s.write_all(answer.to_vec()).await;
                if r.is_err() {
                    return;
                }
            }
        });
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap().block_on(f)
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 28\r\n\r\n{\"segments\":[\"a\",\"b\"],\"x\":1}";

#[test]
fn connections_are_reused_lifo_and_capped() {
    block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        monoio::spawn(partner(l, OK));
        let reg = PartnerRegistry::default();
        let pool = Pool::new(spec(addr, 2, 5), reg.register(7));
        let now = Instant::now();
        let (a, b) = (pool.try_lease(now).unwrap(), pool.try_lease(now).unwrap());
        assert_eq!(pool.try_lease(now).err(), Some(Outcome::PoolExhausted), "a full pool skips");
        let ra = a.call(b"GET /s HTTP/1.1\r\nHost: p\r\n\r\n".to_vec(), Instant::now()).await;
        assert_eq!(ra.outcome, Outcome::Ok);
        assert_eq!(ra.answer.unwrap().segments, ["a", "b"]);
        drop(b); // never called: its slot comes back
        assert_eq!(pool.open(), 1, "one connection open, idle");
        let c = pool.try_lease(Instant::now()).unwrap();
        assert!(c.stream.is_some(), "the idle connection is reused");
        let rc = c.call(b"GET /s HTTP/1.1\r\nHost: p\r\n\r\n".to_vec(), Instant::now()).await;
        assert_eq!(rc.outcome, Outcome::Ok);
        assert_eq!(pool.open(), 1);
        pool.sweep(Instant::now() + Duration::from_secs(2));
        assert_eq!(pool.open(), 0, "idle past idle_timeout_ms is closed");
    });
}

#[test]
fn failures_open_the_circuit_and_a_probe_closes_it() {
    block_on(async {
        // Nothing listens here: every call fails at connect.
        let dead: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let reg = PartnerRegistry::default();
        let pool = Pool::new(spec(dead, 4, 2), reg.register(7));
        for _ in 0..2 {
            let r = pool.try_lease(Instant::now()).unwrap().call(b"x".to_vec(), Instant::now()).await;
            assert_eq!(r.outcome, Outcome::Error);
        }
        assert_eq!(pool.try_lease(Instant::now()).err(), Some(Outcome::CircuitOpen));
        let later = Instant::now() + Duration::from_millis(150);
        let probe = pool.try_lease(later).unwrap();
        assert_eq!(pool.try_lease(later).err(), Some(Outcome::CircuitOpen), "one probe at a time");
        let r = probe.call(b"x".to_vec(), Instant::now()).await;
        assert_eq!(r.outcome, Outcome::Error);
        assert_eq!(
            pool.try_lease(Instant::now()).err(),
            Some(Outcome::CircuitOpen),
            "a failed probe re-opens"
        );
        // Now a partner listens on a new address: the probe succeeds and closes the circuit.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        monoio::spawn(partner(l, OK));
        pool.update(spec(addr, 4, 2));
        let later = Instant::now() + Duration::from_millis(150);
        let r = pool
            .try_lease(later)
            .unwrap()
            .call(b"GET / HTTP/1.1\r\nHost: p\r\n\r\n".to_vec(), Instant::now())
            .await;
        assert_eq!(r.outcome, Outcome::Ok);
        assert!(pool.try_lease(Instant::now()).is_ok(), "closed again");
    });
}

#[test]
fn a_timed_out_connection_is_closed_not_reused() {
    block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // Reads the request and never answers.
        monoio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let (_r, _b) = s.read(Vec::with_capacity(1024)).await;
            monoio::time::sleep(Duration::from_secs(5)).await;
        });
        let reg = PartnerRegistry::default();
        let pool = Pool::new(spec(addr, 4, 5), reg.register(7));
        let r = pool
            .try_lease(Instant::now())
            .unwrap()
            .call(b"GET / HTTP/1.1\r\nHost: p\r\n\r\n".to_vec(), Instant::now())
            .await;
        assert_eq!(r.outcome, Outcome::Timeout);
        assert_eq!(pool.open(), 0, "the timed-out connection was dropped");
    });
}

#[test]
fn a_well_framed_failure_closes_its_connection() {
    block_on(async {
        const BAD: [&[u8]; 2] = [
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
            b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"segments\":5}",
        ];
        for answer in BAD {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            monoio::spawn(partner(l, answer));
            let reg = PartnerRegistry::default();
            let pool = Pool::new(spec(addr, 4, 5), reg.register(7));
            let r = pool
                .try_lease(Instant::now())
                .unwrap()
                .call(b"GET / HTTP/1.1\r\nHost: p\r\n\r\n".to_vec(), Instant::now())
                .await;
            assert_eq!(r.outcome, Outcome::Error);
            assert_eq!(pool.open(), 0, "kept alive by the partner, closed by the client");
        }
    });
}
