//! The PROXY protocol (HAProxy's, version 1 text or version 2 binary,
//! parsed by `ppp`): a TCP load balancer that passes TLS through names the
//! client in a header before the connection's own bytes. It is read only from
//! `--trusted-proxies` peers, and only with `--proxy-protocol`; then every
//! connection from them must begin with one. Guessing whether a header is
//! there would let a client behind a proxy that sends none write its own (the
//! protocol's specification forbids guessing).

use bytes::Bytes;
use ppp::v1;
use ppp::v2;
use ppp::HeaderResult;
use ppp::PartialResult;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Larger headers are refused: a version 1 header is at most 107 bytes, and
/// load balancers' version 2 headers (addresses and a few TLVs) are far
/// below this.
const MAX_HEADER_BYTES: usize = 4096;

/// Reads the PROXY header at the start of `stream` and returns the client's
/// address, with the bytes read past the header (they belong to the
/// connection). A proxy's own connection (version 2 `LOCAL`, a health check)
/// or an address family other than TCP over IP names no client: `peer` is
/// the client then. `Err` names why the connection is refused.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
) -> Result<(SocketAddr, Bytes), &'static str> {
    let mut buf = Vec::with_capacity(256);
    loop {
        let read = stream
            .read_buf(&mut buf)
            .await
            .map_err(|_| "read failed before a PROXY header")?;
        if read == 0 {
            return Err("closed before a complete PROXY header");
        }
        let (client, length) = match HeaderResult::parse(&buf) {
            header if header.is_incomplete() => {
                if buf.len() >= MAX_HEADER_BYTES {
                    return Err("PROXY header too long");
                }
                continue;
            }
            HeaderResult::V1(Ok(header)) => (v1_client(&header.addresses), header.header.len()),
            HeaderResult::V2(Ok(header)) => (v2_client(&header), header.len()),
            HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => {
                return Err("no valid PROXY header")
            }
        };
        let client = client.unwrap_or(peer);
        return Ok((client, Bytes::from(buf).split_off(length)));
    }
}

fn v1_client(addresses: &v1::Addresses) -> Option<SocketAddr> {
    match addresses {
        v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
        v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
        v1::Addresses::Unknown => None,
    }
}

fn v2_client(header: &v2::Header) -> Option<SocketAddr> {
    if header.command != v2::Command::Proxy || header.protocol != v2::Protocol::Stream {
        return None;
    }
    match &header.addresses {
        v2::Addresses::IPv4(a) => Some((a.source_address, a.source_port).into()),
        v2::Addresses::IPv6(a) => Some((a.source_address, a.source_port).into()),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "10.0.0.2:40000".parse().unwrap()
    }

    async fn read(input: &[u8]) -> Result<(SocketAddr, Bytes), &'static str> {
        let mut stream = input;
        read_header(&mut stream, peer()).await
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend((addresses.len() as u16).to_be_bytes());
        h.extend(addresses);
        h
    }

    #[tokio::test]
    async fn version_1_names_the_client_and_keeps_what_follows() {
        let (client, rest) = read(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n\x16\x03\x01")
            .await
            .unwrap();
        assert_eq!(client, "203.0.113.7:51000".parse().unwrap());
        assert_eq!(&rest[..], b"\x16\x03\x01");
        let (client, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n")
            .await
            .unwrap();
        assert_eq!(client, "[2001:db8::7]:51000".parse().unwrap());
        let (client, _) = read(b"PROXY UNKNOWN\r\n").await.unwrap();
        assert_eq!(client, peer());
    }

    #[tokio::test]
    async fn version_2_names_the_client_unless_local() {
        // PROXY, TCP over IPv4: 203.0.113.7:51000 -> 10.0.0.1:443.
        let addresses = [203, 0, 113, 7, 10, 0, 0, 1, 0xC7, 0x38, 0x01, 0xBB];
        let mut input = v2(0x1, 0x11, &addresses);
        input.extend(b"GET");
        let (client, rest) = read(&input).await.unwrap();
        assert_eq!(client, "203.0.113.7:51000".parse().unwrap());
        assert_eq!(&rest[..], b"GET");
        // LOCAL: the proxy's own connection.
        let (client, _) = read(&v2(0x0, 0x11, &addresses)).await.unwrap();
        assert_eq!(client, peer());
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        assert!(read(b"GET / HTTP/1.1\r\n\r\n").await.is_err());
        assert!(read(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            .await
            .is_err());
        assert!(read(b"PROXY TCP4 203.0.113.7").await.is_err(), "cut short");
        assert!(read(b"PROXY TCP4 nonsense 10.0.0.1 1 2\r\n").await.is_err());
        assert!(read(&[b'P'; 200]).await.is_err());
    }
}
