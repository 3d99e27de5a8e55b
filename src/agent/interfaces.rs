//! This host's own addresses, from its interface list: where HEP sent to a listener bound to
//! an unspecified address arrives (so that HEP on a mirror port bound for another collector
//! on the same port is told apart from ours).

use std::net::SocketAddr;

/// The addresses HEP sent to a listener on `listen` arrives at: that one, or for an
/// unspecified address every address of this host's interfaces.
pub fn listener_addresses(listen: SocketAddr) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let mut out: Vec<SocketAddr> = nix::ifaddrs::getifaddrs()
        .map(|list| {
            list.filter_map(|ifa| {
                let a = ifa.address?;
                if let Some(v4) = a.as_sockaddr_in() {
                    Some(SocketAddr::new(v4.ip().into(), listen.port()))
                } else {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::new(v6.ip().into(), listen.port()))
                }
            })
            .collect()
        })
        .unwrap_or_default();
    if out.is_empty() {
        // no interface list: any destination on the listener's port
        out.push(listen);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_on_every_address_is_each_address_of_this_host() {
        let any = listener_addresses("0.0.0.0:9060".parse().unwrap());
        assert!(any.contains(&"127.0.0.1:9060".parse().unwrap()), "{any:?}");
        assert!(
            any.iter()
                .all(|a| a.port() == 9060 && !a.ip().is_unspecified())
        );
        let one: SocketAddr = "10.1.2.3:9060".parse().unwrap();
        assert_eq!(listener_addresses(one), vec![one]);
    }
}
