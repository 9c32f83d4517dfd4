//! UDP replies sent from the address the request was sent to.
//!
//! A wildcard-bound UDP socket lets the kernel pick the source of a reply by routing,
//! which on a multi-homed host (the outside namespace: world addresses on its loopback,
//! gateways on its veths) is not the address the client sent to, so a connected client
//! would drop the reply. The request's destination is read from `IPV6_PKTINFO` /
//! `IP_PKTINFO` and used as the reply's source.

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage,
    recvmsg, sendmsg, setsockopt, sockopt,
};
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

/// Asks the kernel to report each datagram's destination address.
pub fn enable(socket: &impl AsFd, ipv6: bool) -> nix::Result<()> {
    if ipv6 {
        setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true)
    } else {
        setsockopt(socket, sockopt::Ipv4PacketInfo, &true)
    }
}

/// A received datagram's length, sender and destination address.
pub struct Received {
    /// Bytes received into the buffer.
    pub len: usize,
    /// The sender.
    pub peer: SocketAddr,
    /// The address the datagram was sent to, if the kernel reported it.
    pub local: Option<IpAddr>,
}

/// Receives one datagram (non-blocking, for tokio's `try_io`).
pub fn receive(socket: &impl AsRawFd, buffer: &mut [u8]) -> std::io::Result<Received> {
    let mut iov = [IoSliceMut::new(buffer)];
    let mut space = nix::cmsg_space!(libc::in6_pktinfo, libc::in_pktinfo);
    let message = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )?;
    let mut local = None;
    for cmsg in message.cmsgs()? {
        match cmsg {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                local = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)))
            }
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                local = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))))
            }
            _ => {}
        }
    }
    let peer = message
        .address
        .and_then(|address| {
            address
                .as_sockaddr_in6()
                .map(|a| SocketAddr::new(IpAddr::V6(a.ip()), a.port()))
                .or_else(|| {
                    address
                        .as_sockaddr_in()
                        .map(|a| SocketAddr::new(IpAddr::V4(a.ip()), a.port()))
                })
        })
        .ok_or_else(|| std::io::Error::other("datagram without a sender address"))?;
    Ok(Received {
        len: message.bytes,
        peer,
        local,
    })
}

/// Sends `data` to `peer` from `local` (non-blocking, for tokio's `try_io`).
pub fn send(
    socket: &impl AsRawFd,
    data: &[u8],
    peer: SocketAddr,
    local: Option<IpAddr>,
) -> std::io::Result<usize> {
    let iov = [IoSlice::new(data)];
    let fd = socket.as_raw_fd();
    let sent = match peer {
        SocketAddr::V6(peer) => {
            let source = match local {
                Some(IpAddr::V6(ip)) => Some(ip),
                Some(IpAddr::V4(ip)) => Some(ip.to_ipv6_mapped()),
                None => None,
            };
            let info = source.map(|ip| libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                ipi6_ifindex: 0,
            });
            let cmsgs: Vec<ControlMessage> =
                info.iter().map(ControlMessage::Ipv6PacketInfo).collect();
            sendmsg(
                fd,
                &iov,
                &cmsgs,
                MsgFlags::empty(),
                Some(&SockaddrIn6::from(peer)),
            )
        }
        SocketAddr::V4(peer) => {
            let info = match local {
                Some(IpAddr::V4(ip)) => Some(libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(ip).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                }),
                _ => None,
            };
            let cmsgs: Vec<ControlMessage> =
                info.iter().map(ControlMessage::Ipv4PacketInfo).collect();
            sendmsg(
                fd,
                &iov,
                &cmsgs,
                MsgFlags::empty(),
                Some(&SockaddrIn::from(peer)),
            )
        }
    };
    Ok(sent?)
}
