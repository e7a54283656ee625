use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use super::*;

const LIMITS: ClientLimits = ClientLimits { max_head_bytes: 1024, max_body_bytes: 64 };

fn head(raw: &[u8]) -> Result<Option<ResponseHead>, ClientError> {
    parse_response_head(raw, false, &LIMITS)
}

#[test]
fn heads_and_framing() {
    let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap().unwrap();
    assert_eq!((h.status, h.framing, h.keep_alive, h.head_len), (200, Framing::Length(5), true, 38));
    let h = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().unwrap();
    assert_eq!(h.framing, Framing::Chunked);
    let h = head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
    assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
    let h = head(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").unwrap().unwrap();
    assert!(!h.keep_alive, "HTTP/1.0 closes unless asked");
    let h = head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n").unwrap().unwrap();
    assert!(h.keep_alive);
    let h = head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n").unwrap().unwrap();
    assert!(!h.keep_alive);
    for no_body in [&b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"[..], b"HTTP/1.1 304 x\r\n\r\n"] {
        assert_eq!(head(no_body).unwrap().unwrap().framing, Framing::Empty);
    }
    let h = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true, &LIMITS);
    assert_eq!(h.unwrap().unwrap().framing, Framing::Empty, "no body for HEAD");
    assert_eq!(head(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
}

#[test]
fn bad_heads_are_the_partners_fault() {
    assert_eq!(
        head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Err(ClientError::BadFraming)
    );
    assert_eq!(
        head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        Err(ClientError::BadFraming)
    );
    assert_eq!(head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), Err(ClientError::BadFraming));
    assert_eq!(head(b"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n"), Err(ClientError::TooLarge));
    assert_eq!(head(b"garbage\r\n\r\n"), Err(ClientError::BadHead));
    let long = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 2000]].concat();
    assert_eq!(head(&long), Err(ClientError::BadHead), "a head past the limit, even incomplete");
}

/// Serves `answer` (in pieces, `gap` apart) to one connection after reading a request, then
/// keeps the connection open for `linger`.
async fn serve_once(l: TcpListener, answer: Vec<Vec<u8>>, gap: Duration, linger: Duration) {
    let (mut s, _) = l.accept().await.unwrap();
    let (r, _) = s.read(Vec::with_capacity(4096)).await;
    r.unwrap();
    for part in answer {
        let (r, _) = s.write_all(part).await;
        r.unwrap();
        monoio::time::sleep(gap).await;
    }
    monoio::time::sleep(linger).await;
}

fn run(answer: &[&[u8]], gap_ms: u64, linger_ms: u64, deadline_ms: u64) -> Result<Decoded, ClientError> {
    let answer: Vec<Vec<u8>> = answer.iter().map(|p| p.to_vec()).collect();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
    rt.block_on(async move {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = monoio::spawn(serve_once(
            l,
            answer,
            Duration::from_millis(gap_ms),
            Duration::from_millis(linger_ms),
        ));
        let mut s = TcpStream::connect_addr(addr).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(deadline_ms);
        let req = b"GET / HTTP/1.1\r\nHost: p\r\n\r\n".to_vec();
        let res = exchange(&mut s, req, false, deadline, &LIMITS).await;
        drop(s);
        server.await;
        res
    })
}

#[test]
fn exchange_reads_each_framing() {
    let r = run(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", b"lo"], 5, 0, 1000).unwrap();
    assert_eq!((r.status, &r.body[..], r.reusable), (200, &b"hello"[..], true));
    let r = run(
        &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", b"0\r\n\r\n"],
        5,
        0,
        1000,
    )
    .unwrap();
    assert_eq!((&r.body[..], r.reusable), (&b"abc"[..], true));
    let r = run(&[b"HTTP/1.1 200 OK\r\n\r\nuntil close"], 0, 0, 1000).unwrap();
    assert_eq!((&r.body[..], r.reusable), (&b"until close"[..], false));
    let r = run(&[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"], 0, 0, 1000).unwrap();
    assert_eq!((r.status, r.reusable), (204, true));
}

#[test]
fn dirty_or_failed_exchanges_are_not_reusable() {
    let r = run(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"], 0, 0, 1000).unwrap();
    assert!(!r.reusable, "bytes after the answer");
    let r =
        run(&[b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"], 0, 0, 1000).unwrap();
    assert!(!r.reusable, "Connection: close");
    let e = run(&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], 0, 0, 1000).unwrap_err();
    assert_eq!(e, ClientError::Closed, "closed mid-body");
    let e = run(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", b"llo"], 300, 0, 100).unwrap_err();
    assert_eq!(e, ClientError::Timeout, "a slow body misses the deadline");
    let e = run(&[b"HTTP/1.1 200 OK\r\n\r\n", &[b'x'; 100]], 0, 0, 1000).unwrap_err();
    assert_eq!(e, ClientError::TooLarge, "a close-delimited body past the cap");
    let big =
        [&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n"[..], &[b'y'; 80], b"\r\n0\r\n\r\n"]
            .concat();
    assert_eq!(run(&[&big], 0, 0, 1000).unwrap_err(), ClientError::TooLarge);
}

#[test]
fn the_decoder_resumes_byte_by_byte() {
    let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let mut dec = ResponseDecoder::new(false, LIMITS);
    for i in 0..answer.len() {
        assert!(dec.decode(&answer[..i], false).unwrap().is_none(), "complete at {i}");
    }
    let d = dec.decode(answer, false).unwrap().unwrap();
    assert_eq!((d.status, &d.body[..], d.reusable), (200, &b"abc"[..], true));
    let mut dec = ResponseDecoder::new(false, LIMITS);
    assert_eq!(
        dec.decode(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab", true).unwrap_err(),
        ClientError::Closed
    );
}
