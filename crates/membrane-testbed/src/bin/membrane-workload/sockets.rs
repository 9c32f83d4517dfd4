//! Listening sockets on every address: one dual-stack IPv6 socket where IPv6 works,
//! IPv4 only where it does not.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

fn bound(
    domain: Domain,
    kind: Type,
    protocol: Protocol,
    address: SocketAddr,
) -> std::io::Result<Socket> {
    let socket = Socket::new(domain, kind, Some(protocol))?;
    if domain == Domain::IPV6 {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket)
}

fn any_address(kind: Type, protocol: Protocol, port: u16) -> std::io::Result<Socket> {
    bound(
        Domain::IPV6,
        kind,
        protocol,
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
    )
    .or_else(|_| {
        bound(
            Domain::IPV4,
            kind,
            protocol,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        )
    })
}

/// A TCP listener on `[::]:port` accepting IPv4 too (or `0.0.0.0:port`).
pub fn tcp_listener(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = any_address(Type::STREAM, Protocol::TCP, port)?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// A UDP socket on `[::]:port` receiving IPv4 too (or `0.0.0.0:port`).
pub fn udp_socket(port: u16) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = any_address(Type::DGRAM, Protocol::UDP, port)?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// `address` with an IPv4-mapped IPv6 address turned back into IPv4, as the peer
/// really is.
pub fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}
