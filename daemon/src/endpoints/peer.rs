//! Who is on the other end of a loopback TCP connection. An endpoint whose protocol carries no
//! secret (the GCE metadata server's) must not serve another local user, and TCP does not say
//! who connected; on Linux the kernel lists every socket with its owner's uid in
//! `/proc/net/tcp` and `/proc/net/tcp6`, and the client's socket is the one whose local address
//! is the peer address we see and whose remote address is ours. Where that cannot be told, the
//! answer is "unknown", and callers refuse.

use std::net::{IpAddr, SocketAddr};

/// The uid that owns the client end of the connection `peer` -> `local`.
pub fn owner_uid(peer: SocketAddr, local: SocketAddr) -> Result<u32, String> {
    if !cfg!(target_os = "linux") {
        return Err("the peer's user cannot be told on this system".into());
    }
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        if let Some(uid) = find_owner(&text, peer, local) {
            return Ok(uid);
        }
    }
    Err(format!(
        "no socket from {peer} to {local} is listed in /proc/net/tcp"
    ))
}

/// Looks `peer` -> `local` up in the text of one `/proc/net/tcp*` table.
fn find_owner(table: &str, peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (from, to, uid) = (fields.get(1)?, fields.get(2)?, fields.get(7)?);
        (parse_addr(from)? == canonical(peer) && parse_addr(to)? == canonical(local))
            .then(|| uid.parse().ok())
            .flatten()
    })
}

/// An address as the kernel prints it: the IP as 32-bit words in host byte order, in hex, then
/// `:` and the port in hex.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip_hex, port_hex) = text.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for chunk in ip_hex.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(canonical(SocketAddr::new(ip, port)))
}

/// IPv4-mapped IPv6 addresses compare as the IPv4 address they carry.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_v4(addr: SocketAddr) -> String {
        let IpAddr::V4(ip) = addr.ip() else {
            unreachable!()
        };
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(ip.octets()),
            addr.port()
        )
    }

    #[test]
    fn finds_the_client_socket_and_its_owner() {
        let peer: SocketAddr = "127.0.0.1:51000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:47123".parse().unwrap();
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: {} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
             1: {} {} 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
             2: {} {} 01 00000000:00000000 00:00000000 00000000  1000        0 3 1\n",
            hex_v4(local),
            hex_v4(local),
            hex_v4(peer),
            hex_v4(peer),
            hex_v4(local),
        );
        assert_eq!(find_owner(&table, peer, local), Some(1000));
        let other: SocketAddr = "127.0.0.1:51001".parse().unwrap();
        assert_eq!(find_owner(&table, other, local), None);
    }

    #[test]
    fn reads_the_tcp6_form_of_mapped_addresses() {
        let word = |b: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(b));
        let text = format!(
            "{}{}{}{}:C350",
            word([0, 0, 0, 0]),
            word([0, 0, 0, 0]),
            word([0, 0, 0xff, 0xff]),
            word([127, 0, 0, 1])
        );
        assert_eq!(parse_addr(&text), Some("127.0.0.1:50000".parse().unwrap()));
    }

    #[test]
    fn our_own_connection_is_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        assert_eq!(owner_uid(peer, listener.local_addr().unwrap()), Ok(me));
    }
}
