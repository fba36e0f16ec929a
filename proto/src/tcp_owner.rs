//! Which user owns a loopback TCP socket. TCP does not say who is on the other end, but on
//! Linux the kernel answers one exact question through `NETLINK_SOCK_DIAG`: given a socket's
//! addresses (its own first), the uid that created it. That is one hash lookup in the kernel,
//! however many sockets the machine has, so an endpoint can ask it for every connection.
//!
//! Both sides use it: the daemon to refuse another user's connection to an endpoint before it
//! reads a byte of it, and `credd doctor` to learn who listens on an endpoint's port before it
//! sends the header from a secret file there. Elsewhere the answer is an error, and callers
//! decide what an unknown owner means.

use std::io;
use std::net::SocketAddr;

/// The uid that created the TCP socket whose own address is `local` and whose peer is
/// `remote`. For a listener, `remote` is the unspecified address with port 0 (or any peer: the
/// kernel falls back to the listener on `local` when no connected socket matches).
pub fn owner_uid(local: SocketAddr, remote: SocketAddr) -> io::Result<u32> {
    imp::owner(local, remote).map(|(uid, _)| uid)
}

/// The uid of a connected client's socket (`peer` -> `local`), only if the kernel's answer is
/// that very socket: not the listener it falls back to when none matches, and not a `TIME_WAIT`
/// or half-open entry (reported as root's). A client that has sent its request and shut its
/// side (`FIN_WAIT`) is still its owner's.
pub fn client_uid(peer: SocketAddr, local: SocketAddr) -> io::Result<u32> {
    // linux/tcp_states.h: the states of entries that are not a connected socket of their own.
    const SYN_RECV: u8 = 3;
    const TIME_WAIT: u8 = 6;
    const LISTEN: u8 = 10;
    const NEW_SYN_RECV: u8 = 12;
    match imp::owner(peer, local)? {
        (_, state @ (SYN_RECV | TIME_WAIT | LISTEN | NEW_SYN_RECV)) => Err(io::Error::other(
            format!("the kernel lists no connected socket from {peer} (TCP state {state})"),
        )),
        (uid, _) => Ok(uid),
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::net::{IpAddr, SocketAddr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLMSG_ERROR: u16 = 2;
    /// Skips the kernel's socket-cookie comparison.
    const NO_COOKIE: [u32; 2] = [!0, !0];

    /// `struct inet_diag_sockid` (linux/inet_diag.h); ports and addresses in network order.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct SockId {
        sport: u16,
        dport: u16,
        src: [u8; 16],
        dst: [u8; 16],
        interface: u32,
        cookie: [u32; 2],
    }

    /// `struct nlmsghdr` followed by `struct inet_diag_req_v2`.
    #[repr(C)]
    struct Request {
        len: u32,
        kind: u16,
        flags: u16,
        seq: u32,
        pid: u32,
        family: u8,
        protocol: u8,
        ext: u8,
        pad: u8,
        states: u32,
        id: SockId,
    }

    /// The offset of `idiag_uid` in a reply: `nlmsghdr` (16) + family, state, timer, retrans
    /// (4) + `inet_diag_sockid` (48) + expires, rqueue, wqueue (12).
    const UID_OFFSET: usize = 16 + 4 + 48 + 12;

    /// The uid and TCP state of the socket the kernel answers for.
    pub fn owner(local: SocketAddr, remote: SocketAddr) -> io::Result<(u32, u8)> {
        let (family, src, dst) = match (local.ip(), remote.ip()) {
            (IpAddr::V4(l), IpAddr::V4(r)) => (libc::AF_INET, pad(&l.octets()), pad(&r.octets())),
            (IpAddr::V6(l), IpAddr::V6(r)) => (libc::AF_INET6, l.octets(), r.octets()),
            _ => {
                return Err(io::Error::other(
                    "the two addresses are of different families",
                ));
            }
        };
        let request = Request {
            len: std::mem::size_of::<Request>() as u32,
            kind: SOCK_DIAG_BY_FAMILY,
            flags: libc::NLM_F_REQUEST as u16,
            seq: 1,
            pid: 0,
            family: family as u8,
            protocol: libc::IPPROTO_TCP as u8,
            ext: 0,
            pad: 0,
            states: !0,
            id: SockId {
                sport: local.port().to_be(),
                dport: remote.port().to_be(),
                src,
                dst,
                interface: 0,
                cookie: NO_COOKIE,
            },
        };
        // SAFETY: plain socket creation; the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: the option value is a valid timeval of the size passed.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        // SAFETY: zeroed sockaddr_nl is valid; the kernel is the destination (pid 0).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `request` is a repr(C) value of the length given; `kernel` is a valid address.
        let sent = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                (&raw const request).cast(),
                std::mem::size_of::<Request>(),
                0,
                (&raw const kernel).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut reply = [0u8; 1024];
        // SAFETY: the buffer is writable for its whole length.
        let got = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                reply.as_mut_ptr().cast(),
                reply.len(),
                0,
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        parse_reply(&reply[..got as usize])
    }

    fn pad(v4: &[u8; 4]) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(v4);
        out
    }

    /// The offset of `idiag_state` in a reply, after `nlmsghdr` and `idiag_family`.
    const STATE_OFFSET: usize = 16 + 1;

    /// The uid and state in a `SOCK_DIAG_BY_FAMILY` reply, or the error the kernel answered with.
    fn parse_reply(reply: &[u8]) -> io::Result<(u32, u8)> {
        let word = |at: usize| -> io::Result<[u8; 4]> {
            reply
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| io::Error::other("short sock_diag reply"))
        };
        let kind = u16::from_ne_bytes(word(4)?[..2].try_into().expect("two bytes"));
        match kind {
            SOCK_DIAG_BY_FAMILY => Ok((
                u32::from_ne_bytes(word(UID_OFFSET)?),
                word(STATE_OFFSET)?[0],
            )),
            NLMSG_ERROR => {
                let errno = i32::from_ne_bytes(word(16)?);
                Err(io::Error::from_raw_os_error(errno.saturating_neg()))
            }
            other => Err(io::Error::other(format!(
                "unexpected sock_diag reply type {other}"
            ))),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::net::SocketAddr;

    pub fn owner(_local: SocketAddr, _remote: SocketAddr) -> io::Result<(u32, u8)> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the owner of a TCP socket cannot be told on this system",
        ))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_connection_and_a_listener_are_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(at).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        let me = crate::paths::effective_uid();
        // The client's socket, as the server sees it: its own address is the peer's.
        assert_eq!(owner_uid(peer, at).unwrap(), me);
        assert_eq!(client_uid(peer, at).unwrap(), me);
        assert_eq!(owner_uid(client.local_addr().unwrap(), at).unwrap(), me);
        // The listener, as a prober asks for it.
        let nobody: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert_eq!(owner_uid(at, nobody).unwrap(), me);
        // A client lookup that finds only the listener is no client.
        let gone: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(client_uid(at, gone).is_err());
    }

    #[test]
    fn no_socket_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        drop(listener);
        let nobody: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert!(owner_uid(at, nobody).is_err());
    }
}
