//! ICMP and ICMPv6 echo through a raw socket connected to the target, so only the
//! target's packets are received (no iputils needed).

use membrane_testbed::report::{CountReport, Latency};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// Time between two echo requests.
const INTERVAL: Duration = Duration::from_millis(20);

/// Payload carried by every request, checked in the reply.
const PAYLOAD: &[u8; 16] = b"membrane-testbed";

/// The Internet checksum (RFC 1071) of `bytes`.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request. ICMPv6 checksums are filled in by the kernel (they cover a pseudo
/// header only it knows), ICMP ones here.
fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let kind = if v6 {
        ICMPV6_ECHO_REQUEST
    } else {
        ICMP_ECHO_REQUEST
    };
    let mut packet = vec![kind, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(PAYLOAD);
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// True if `packet` (with its IPv4 header for ICMP, without for ICMPv6) is the reply to
/// request (`id`, `seq`).
fn is_reply(v6: bool, packet: &[u8], id: u16, seq: u16) -> bool {
    let icmp = if v6 {
        packet
    } else {
        let header = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
        packet.get(header..).unwrap_or_default()
    };
    let kind = if v6 {
        ICMPV6_ECHO_REPLY
    } else {
        ICMP_ECHO_REPLY
    };
    icmp.len() >= 8 + PAYLOAD.len()
        && icmp[0] == kind
        && icmp[1] == 0
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
        && &icmp[8..8 + PAYLOAD.len()] == PAYLOAD
}

fn open(target: IpAddr) -> std::io::Result<Socket> {
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol))?;
    socket.connect(&SocketAddr::new(target, 0).into())?;
    Ok(socket)
}

/// Waits until the reply to (`id`, `seq`) arrives or `limit` passes.
fn await_reply(
    socket: &mut Socket,
    v6: bool,
    id: u16,
    seq: u16,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut buffer = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no echo reply within {limit:?}"));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match socket.read(&mut buffer) {
            Ok(n) if is_reply(v6, &buffer[..n], id, seq) => return Ok(()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no echo reply within {limit:?}"));
            }
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}

/// Sends `count` echo requests to `target`, each answered within `limit`.
pub fn run(target: IpAddr, count: u64, limit: Duration) -> CountReport {
    let mut report = CountReport {
        mode: "ping".into(),
        target: target.to_string(),
        ok: 0,
        failed: 0,
        latency: None,
        first_error: None,
    };
    let mut socket = match open(target) {
        Ok(socket) => socket,
        Err(e) => {
            report.failed = count;
            report.first_error = Some(format!("cannot open a raw ICMP socket: {e}"));
            return report;
        }
    };
    let v6 = target.is_ipv6();
    let id = (std::process::id() & 0xffff) as u16;
    let mut samples = Vec::new();
    for n in 0..count {
        if n > 0 {
            std::thread::sleep(INTERVAL);
        }
        let seq = (n & 0xffff) as u16;
        let started = Instant::now();
        let outcome = socket
            .send(&echo_request(v6, id, seq))
            .map_err(|e| format!("send: {e}"))
            .and_then(|_| await_reply(&mut socket, v6, id, seq, limit));
        match outcome {
            Ok(()) => {
                report.ok += 1;
                samples.push(started.elapsed());
            }
            Err(e) => {
                report.failed += 1;
                report.first_error.get_or_insert(e);
            }
        }
    }
    report.latency = Latency::from_samples(&samples);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_icmp_request_carries_a_valid_checksum() {
        let packet = echo_request(false, 0x1234, 7);
        assert_eq!(
            checksum(&packet),
            0,
            "a packet including its checksum sums to zero"
        );
        assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
    }

    #[test]
    fn the_checksum_matches_the_rfc_1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2, complement 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }

    #[test]
    fn a_reply_is_recognized_behind_its_ipv4_header_and_only_for_its_request() {
        let mut reply = echo_request(false, 9, 3);
        reply[0] = ICMP_ECHO_REPLY;
        let mut packet = vec![0x45; 1];
        packet.extend_from_slice(&[0u8; 19]);
        packet.extend_from_slice(&reply);
        assert!(is_reply(false, &packet, 9, 3));
        assert!(!is_reply(false, &packet, 9, 4));
        assert!(!is_reply(false, &packet, 8, 3));
    }

    #[test]
    fn an_icmpv6_reply_has_no_ip_header_in_front() {
        let mut reply = echo_request(true, 1, 1);
        reply[0] = ICMPV6_ECHO_REPLY;
        assert!(is_reply(true, &reply, 1, 1));
        let request = echo_request(true, 1, 1);
        assert!(
            !is_reply(true, &request, 1, 1),
            "our own request is not a reply"
        );
    }
}
