//! Slow and greedy clients: connections that send nothing (plain or after
//! the TLS handshake), a head and then a trickle of body, or bodies no one
//! has authenticated. None of them may lock other clients out or make the
//! gateway hold memory without bound. The listener does not depend on the
//! database backend, so these run on SQLite only.

use super::raw::{answer, tcp, tls, tls_speaking, Stream, BOUND};
use super::{poll, TestGateway};
use partner_gateway::config::Limits;
use partner_gateway::store::Backend;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A head signed with a known access key (the signature itself is wrong:
/// only the body, never sent in full, could have told).
fn signed_head(gw: &TestGateway, access_key: &str, content_length: usize) -> String {
    let _ = gw;
    let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    format!(
        "POST /v2/partners/sub-customers/query HTTP/1.1\r\nhost: localhost\r\n\
         x-sdk-date: {date}\r\ncontent-type: application/json\r\n\
         authorization: SDK-HMAC-SHA256 Access={access_key}, SignedHeaders=host;x-sdk-date, Signature={}\r\n\
         content-length: {content_length}\r\n\r\n",
        "0".repeat(64)
    )
}

async fn a_seventh_client_is_served(gw: &TestGateway) -> u16 {
    let call = gw.call(
        "op-dist-admin",
        "POST",
        "/v2/partners/sub-customers/query",
        Some(serde_json::json!({"limit": 1})),
    );
    tokio::time::timeout(BOUND, call)
        .await
        .expect("the seventh client is served")
        .status
        .as_u16()
}

/// Six held connections (plain and TLS with nothing sent, a half-sent
/// head, a signed head with one byte of a 1 MiB body) at a limit of six:
/// a seventh client is still served, and the slow body is cut (408).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_do_not_lock_out_others() {
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.limits = Limits {
            max_connections: 6,
            body_timeout: Duration::from_secs(2),
            ..Limits::default()
        }
    })
    .await;
    let ak = gw.credentials("op-dist-admin").access_key;
    let mut slow_body = tls(&gw).await;
    slow_body
        .write_all(signed_head(&gw, &ak, 1024 * 1024).as_bytes())
        .await
        .unwrap();
    slow_body.write_all(b"{").await.unwrap();
    let mut held: Vec<Box<dyn Stream>> = vec![
        Box::new(tcp(&gw).await),
        Box::new(tcp(&gw).await),
        tls(&gw).await,
        tls(&gw).await,
    ];
    let mut half_head = tls(&gw).await;
    half_head
        .write_all(b"POST /v2/partners/sub-customers/query HTTP/1.1\r\nhost: loc")
        .await
        .unwrap();
    held.push(half_head);

    assert_eq!(a_seventh_client_is_served(&gw).await, 200);
    assert_eq!(a_seventh_client_is_served(&gw).await, 200);
    // The slow body did not hold its connection beyond the body deadline.
    assert_eq!(answer(&mut slow_body).await, Some(408));
    drop(held);
    gw.running.stop().await;
}

/// A connection must bring a complete request head within the header
/// timeout of its accept, TLS handshake included; it is closed otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed() {
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.limits = Limits {
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        }
    })
    .await;
    let mut plain = tcp(&gw).await;
    let mut handshaken = tls(&gw).await;
    let mut half_head = tls(&gw).await;
    half_head
        .write_all(b"GET /v2/orders/customer-orders HTTP/1.1\r\n")
        .await
        .unwrap();
    assert_eq!(answer(&mut plain).await, None);
    assert_eq!(answer(&mut handshaken).await, None);
    // hyper answers a head cut short by its timer with 408, or just closes.
    assert_ne!(answer(&mut half_head).await, Some(200));
    gw.running.stop().await;
}

/// Past `max_connections_per_ip`, a new connection from the same address is
/// closed at once; one closing makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_limited() {
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.limits = Limits {
            max_connections_per_ip: 2,
            ..Limits::default()
        }
    })
    .await;
    let first = tcp(&gw).await;
    let _second = tcp(&gw).await;
    let mut third = tcp(&gw).await;
    assert_eq!(answer(&mut third).await, None, "closed without an answer");
    drop(first);
    let served = poll("room after a connection closed", BOUND, || async {
        // The gateway may not have seen the close yet: a refused connection
        // is retried, not a failure.
        let call = gw.try_call(
            "op-dist-admin",
            "POST",
            "/v2/partners/sub-customers/query",
            Some(serde_json::json!({"limit": 1})),
        );
        let status = tokio::time::timeout(BOUND, call).await.ok()?.ok()?.status;
        (status.as_u16() == 200).then_some(())
    });
    served.await;
    gw.running.stop().await;
}

/// An unknown access key (or no credentials) is refused from the head
/// alone: the 401 comes although the declared body never arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_comes_before_the_body() {
    let gw = TestGateway::start(Backend::Sqlite).await;
    let mut unknown_key = tls(&gw).await;
    unknown_key
        .write_all(signed_head(&gw, "AKUNKNOWNUNKNOWN", 1024 * 1024).as_bytes())
        .await
        .unwrap();
    assert_eq!(answer(&mut unknown_key).await, Some(401));
    let mut anonymous = tls(&gw).await;
    anonymous
        .write_all(
            b"POST /v2/partners/sub-customers/query HTTP/1.1\r\nhost: localhost\r\n\
              content-length: 1048576\r\n\r\n",
        )
        .await
        .unwrap();
    assert_eq!(answer(&mut anonymous).await, Some(401));
    gw.running.stop().await;
}

/// An answer written before its request ends (a head too large: 431;
/// credentials refused before the body: 401) reaches a client that goes on
/// sending the rest: the gateway shuts its side and drops what still
/// arrives for a moment (a lingering close), instead of resetting a client
/// that would never read the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_reaches_a_client_still_sending() {
    let gw = TestGateway::start(Backend::Sqlite).await;
    let padding = "a".repeat(4 * 1024 * 1024);
    let mut huge_head = tls(&gw).await;
    let head = format!(
        "POST /v2/partners/sub-customers/query HTTP/1.1\r\nhost: localhost\r\nx-pad: {padding}\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    huge_head
        .write_all(head.as_bytes())
        .await
        .expect("the head is read to its end");
    assert_eq!(answer(&mut huge_head).await, Some(431));
    let mut huge_body = tls(&gw).await;
    let length = 8 * 1024 * 1024;
    huge_body
        .write_all(
            format!(
                "POST /v2/partners/sub-customers/query HTTP/1.1\r\nhost: localhost\r\ncontent-length: {length}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    huge_body
        .write_all(&vec![b' '; length])
        .await
        .expect("the body is read to its end");
    assert_eq!(answer(&mut huge_body).await, Some(401));
    gw.running.stop().await;
}

/// Bodies of requests whose signature is not verified yet hold at most
/// `max_unauthenticated_body_bytes` together: past it, 503; once they are
/// answered, their bytes count no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_bytes_are_capped() {
    const BODY: usize = 30_000;
    const CAP: usize = 64 * 1024;
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.limits = Limits {
            max_body_bytes: 32 * 1024,
            max_unauthenticated_body_bytes: CAP,
            ..Limits::default()
        }
    })
    .await;
    let ak = gw.credentials("op-dist-admin").access_key;
    // Two requests hold 2 × 25 000 bytes of their 30 000, waiting for the rest.
    let mut holding = Vec::new();
    for _ in 0..2 {
        let mut s = tls(&gw).await;
        s.write_all(signed_head(&gw, &ak, BODY).as_bytes())
            .await
            .unwrap();
        s.write_all(&vec![b' '; 25_000]).await.unwrap();
        s.flush().await.unwrap();
        holding.push(s);
    }
    // Once the gateway holds their bytes (it reads each body as it comes,
    // on the request's own task)...
    let held = || CAP - gw.running.gateway.unauthenticated_bytes.available_permits();
    poll("the gateway to hold both bodies' bytes", BOUND, || async {
        (held() >= 2 * 25_000).then_some(())
    })
    .await;
    // ...a third full body does not fit beside them.
    let mut s = tls(&gw).await;
    s.write_all(signed_head(&gw, &ak, BODY).as_bytes())
        .await
        .unwrap();
    s.write_all(&vec![b' '; BODY]).await.unwrap();
    assert_eq!(answer(&mut s).await, Some(503), "held: {} bytes", held());
    for mut s in holding {
        s.write_all(&vec![b' '; BODY - 25_000]).await.unwrap();
        assert_eq!(answer(&mut s).await, Some(401), "the signature is wrong");
    }
    // Answered, they hold nothing: a full body fits again.
    let mut s = tls(&gw).await;
    s.write_all(signed_head(&gw, &ak, BODY).as_bytes())
        .await
        .unwrap();
    s.write_all(&vec![b' '; BODY]).await.unwrap();
    assert_eq!(answer(&mut s).await, Some(401));
    gw.running.stop().await;
}

/// An HTTP/2 frame: length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

/// An HPACK string (no Huffman coding): a 7-bit prefix integer, then the bytes.
fn hpack_string(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend(s.as_bytes());
}

/// A request head as one HPACK block: `POST https://localhost{path}` and
/// `headers`, every field a literal never added to the table.
fn hpack_head(path: &str, headers: &[(&str, String)]) -> Vec<u8> {
    let mut block = vec![0x83, 0x87]; // :method POST, :scheme https (static table)
    block.push(0x04); // :path, a literal value
    hpack_string(&mut block, path);
    block.push(0x01); // :authority, a literal value
    hpack_string(&mut block, "localhost");
    for (name, value) in headers {
        block.push(0x00);
        hpack_string(&mut block, name);
        hpack_string(&mut block, value);
    }
    block
}

/// One HTTP/2 connection holds at most `http2_max_concurrent_streams`
/// requests: the gateway announces the limit, and the streams a client opens
/// past it (each a signed head waiting for its body) are refused
/// (`REFUSED_STREAM`), so they hold nothing. Frames are written by hand, since
/// a well-behaved client library never exceeds the announced limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_per_connection_are_limited() {
    use tokio::io::AsyncReadExt;
    const LIMIT: u32 = 4;
    const OPENED: u32 = 12;
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.limits = Limits {
            http2_max_concurrent_streams: LIMIT,
            ..Limits::default()
        }
    })
    .await;
    let ak = gw.credentials("op-dist-admin").access_key;
    let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let head = hpack_head(
        "/v2/partners/sub-customers/query",
        &[
            ("x-sdk-date", date),
            ("content-type", "application/json".into()),
            (
                "authorization",
                format!(
                    "SDK-HMAC-SHA256 Access={ak}, SignedHeaders=host;x-sdk-date, Signature={}",
                    "0".repeat(64)
                ),
            ),
            ("content-length", "30000".into()),
        ],
    );
    let mut conn = tls_speaking(&gw, b"h2").await;
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[])); // SETTINGS, none changed
    for i in 0..OPENED {
        out.extend(h2_frame(0x1, 0x4, 2 * i + 1, &head)); // HEADERS, END_HEADERS
    }
    conn.write_all(&out).await.unwrap();

    let (mut announced, mut refused) = (None, Vec::new());
    let mut buf = Vec::new();
    tokio::time::timeout(BOUND, async {
        while refused.len() < (OPENED - LIMIT) as usize {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the gateway closed the connection");
            buf.extend(&chunk[..n]);
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, flags) = (buf[3], buf[4]);
                let stream = u32::from_be_bytes(buf[5..9].try_into().unwrap()) & 0x7fff_ffff;
                let payload = buf[9..9 + len].to_vec();
                buf.drain(..9 + len);
                match kind {
                    0x4 if flags & 0x1 == 0 => {
                        for setting in payload.chunks(6) {
                            if setting[..2] == [0, 3] {
                                announced =
                                    Some(u32::from_be_bytes(setting[2..6].try_into().unwrap()));
                            }
                        }
                        conn.write_all(&h2_frame(0x4, 0x1, 0, &[])).await.unwrap();
                        // ACK
                    }
                    // RST_STREAM: REFUSED_STREAM (7) for a stream past the limit.
                    0x3 => {
                        let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                        assert_eq!(code, 7, "stream {stream} reset with {code}");
                        refused.push(stream);
                    }
                    0x7 => panic!("GOAWAY: the connection was ended, not the streams"),
                    0x1 => panic!("stream {stream} answered: it should still be waiting"),
                    _ => {}
                }
            }
        }
    })
    .await
    .expect("the streams past the limit are refused");
    assert_eq!(announced, Some(LIMIT));
    refused.sort();
    let expected: Vec<u32> = (LIMIT..OPENED).map(|i| 2 * i + 1).collect();
    assert_eq!(
        refused, expected,
        "the first {LIMIT} streams are held, the rest refused"
    );
    // Closed, the held streams end at once (rather than at the body timeout).
    drop(conn);
    gw.running.stop().await;
}
