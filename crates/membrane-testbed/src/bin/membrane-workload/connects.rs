//! New-connection cost: COUNT short TCP connections one after another, spread over a
//! block of consecutive Service (or backend) addresses, each exchanging one line.

use anyhow::{Context, bail};
use membrane_testbed::report::{ConnectsReport, Latency};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout as within;

/// Step between the addresses of consecutive connections: a prime, so that any spread
/// it does not divide is walked through completely and not in address order.
const STRIDE: u64 = 7919;

/// The address `offset` places after `first`, or `None` past the end of the family.
pub fn nth_address(first: IpAddr, offset: u64) -> Option<IpAddr> {
    match first {
        IpAddr::V4(v4) => u32::from(v4)
            .checked_add(u32::try_from(offset).ok()?)
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpAddr::V6(v6) => u128::from(v6)
            .checked_add(u128::from(offset))
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

/// Which of `spread` addresses connection `i` goes to.
fn offset(i: u64, spread: u64) -> u64 {
    if spread.is_multiple_of(STRIDE) {
        i % spread
    } else {
        (i * STRIDE) % spread
    }
}

async fn one(target: SocketAddr, i: u64) -> anyhow::Result<()> {
    let stream = TcpStream::connect(target)
        .await
        .with_context(|| format!("connect {target}"))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream);
    let line = format!("c {i}\n");
    reader.get_mut().write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    reader.read_line(&mut answer).await.context("receive")?;
    if answer != line {
        bail!("{target}: sent {line:?}, got {answer:?}");
    }
    Ok(())
}

/// `count` connections to `first`'s port on `spread` consecutive addresses from
/// `first`'s, each within `limit`.
pub async fn run(first: SocketAddr, spread: u64, count: u64, limit: Duration) -> ConnectsReport {
    let mut report = ConnectsReport {
        first: first.to_string(),
        spread,
        ok: 0,
        failed: 0,
        latency: None,
        elapsed_us: 0,
        first_error: None,
    };
    let mut samples = Vec::with_capacity(count as usize);
    let started = Instant::now();
    for i in 0..count {
        let Some(addr) = nth_address(first.ip(), offset(i, spread)) else {
            report.failed += 1;
            report
                .first_error
                .get_or_insert_with(|| format!("{spread} addresses from {first} overflow"));
            continue;
        };
        let target = SocketAddr::new(addr, first.port());
        let began = Instant::now();
        match within(limit, one(target, i)).await {
            Ok(Ok(())) => {
                report.ok += 1;
                samples.push(began.elapsed());
            }
            Ok(Err(e)) => {
                report.failed += 1;
                report.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(_) => {
                report.failed += 1;
                report
                    .first_error
                    .get_or_insert_with(|| format!("{target}: no answer within {limit:?}"));
            }
        }
    }
    report.elapsed_us = started.elapsed().as_micros() as u64;
    report.latency = Latency::from_samples(&samples);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_of_the_spread_is_visited_once_per_round() {
        let mut seen: Vec<u64> = (0..1000).map(|i| offset(i, 1000)).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn addresses_count_up_across_octets() {
        let first: IpAddr = "10.96.0.250".parse().unwrap();
        assert_eq!(nth_address(first, 10), Some("10.96.1.4".parse().unwrap()));
        assert_eq!(nth_address("255.255.255.255".parse().unwrap(), 1), None);
    }
}
