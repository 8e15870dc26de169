//! The client's address behind a load balancer: from `X-Forwarded-For`, and
//! only when the connection comes from a listed proxy (`--trusted-proxies`);
//! from anyone else the header is ignored, so a client cannot choose the
//! address the policies and the decision record see.

use crate::config::TrustedProxies;
use http::header::HeaderName;
use http::HeaderMap;
use std::net::IpAddr;

pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address: `peer` itself, or, when `peer` is a trusted proxy,
/// the rightmost `X-Forwarded-For` address that is not one (the nearest
/// address no trusted proxy vouches for). A malformed list is not trusted.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.contains(ip);
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for hop in text.split(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                Err(_) => return peer,
            }
        }
    }
    let mut client = peer;
    for ip in hops.into_iter().rev() {
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_a_trusted_peer_names_the_client() {
        let trusted = TrustedProxies {
            nets: vec!["10.0.0.0/8".parse().unwrap()],
            proxy_protocol: false,
        };
        let lb: IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let h = headers(&["198.51.100.7"]);
        assert_eq!(
            client_ip(lb, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        // A client's own forged entry sits left of what the proxies add.
        let h = headers(&["1.2.3.4, 198.51.100.7", "10.0.0.9"]);
        assert_eq!(
            client_ip(lb, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(lb, &headers(&["junk"]), &trusted), lb);
        assert_eq!(client_ip(lb, &HeaderMap::new(), &trusted), lb);
        assert_eq!(client_ip(lb, &h, &TrustedProxies::default()), lb);
    }
}
