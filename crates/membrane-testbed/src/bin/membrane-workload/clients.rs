//! TCP and UDP clients: one-shot exchanges, latency, a long-lived stream, throughput.

use anyhow::{Context, bail};
use membrane_testbed::report::{
    CountReport, Latency, ServersReport, StreamReport, ThroughputReport, WhoamiReport,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{MissedTickBehavior, timeout as within};

/// Size of one throughput write.
const CHUNK: usize = 64 * 1024;

/// Size of one request/response message, newline included.
const RR_MESSAGE: usize = 64;

/// Runs `op` within `limit`, folding a timeout into the error.
async fn bounded<T>(
    limit: Duration,
    op: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    within(limit, op)
        .await
        .unwrap_or_else(|_| bail!("no answer within {limit:?}"))
}

/// Counts `count` runs of `op`, timing the successful ones.
async fn count_ops<F, Fut>(
    mode: &str,
    target: String,
    count: u64,
    limit: Duration,
    mut op: F,
) -> CountReport
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut report = CountReport {
        mode: mode.into(),
        target,
        ok: 0,
        failed: 0,
        latency: None,
        first_error: None,
    };
    let mut samples = Vec::new();
    for i in 0..count {
        let started = Instant::now();
        match bounded(limit, op(i)).await {
            Ok(()) => {
                report.ok += 1;
                samples.push(started.elapsed());
            }
            Err(e) => {
                report.failed += 1;
                report.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    report.latency = Latency::from_samples(&samples);
    report
}

async fn connect(target: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(target)
        .await
        .with_context(|| format!("connect {target}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `line` (ending in a newline) and reads one line back.
async fn exchange(reader: &mut BufReader<TcpStream>, line: &str) -> anyhow::Result<String> {
    reader
        .get_mut()
        .write_all(line.as_bytes())
        .await
        .context("send")?;
    let mut answer = String::new();
    if reader.read_line(&mut answer).await.context("receive")? == 0 {
        bail!("connection closed by the server");
    }
    Ok(answer)
}

/// `count` connections, each echoing one line.
pub async fn tcp(target: SocketAddr, count: u64, limit: Duration) -> CountReport {
    count_ops("tcp", target.to_string(), count, limit, |i| async move {
        let mut reader = BufReader::new(connect(target).await?);
        let line = format!("ping {i}\n");
        let answer = exchange(&mut reader, &line).await?;
        if answer != line {
            bail!("echo mismatch: sent {line:?}, got {answer:?}");
        }
        Ok(())
    })
    .await
}

async fn udp_socket_for(target: SocketAddr) -> anyhow::Result<UdpSocket> {
    let local: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.context("bind")?;
    socket
        .connect(target)
        .await
        .with_context(|| format!("connect {target}"))?;
    Ok(socket)
}

async fn udp_exchange(target: SocketAddr, message: &[u8]) -> anyhow::Result<Vec<u8>> {
    let socket = udp_socket_for(target).await?;
    socket.send(message).await.context("send")?;
    let mut buffer = vec![0u8; 65536];
    let n = socket.recv(&mut buffer).await.context("receive")?;
    buffer.truncate(n);
    Ok(buffer)
}

/// `count` datagrams, each from a new socket, each echoed.
pub async fn udp(target: SocketAddr, count: u64, limit: Duration) -> CountReport {
    count_ops("udp", target.to_string(), count, limit, |i| async move {
        let message = format!("ping {i}");
        let answer = udp_exchange(target, message.as_bytes()).await?;
        if answer != message.as_bytes() {
            bail!(
                "echo mismatch: sent {message:?}, got {:?}",
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(())
    })
    .await
}

/// `count` exchanges of a fixed-size message on one connection.
pub async fn rr(target: SocketAddr, count: u64, limit: Duration) -> CountReport {
    let reader = bounded(limit, async { Ok(BufReader::new(connect(target).await?)) }).await;
    let mut reader = match reader {
        Ok(reader) => Some(reader),
        Err(e) => {
            return CountReport {
                mode: "rr".into(),
                target: target.to_string(),
                ok: 0,
                failed: count,
                latency: None,
                first_error: Some(format!("{e:#}")),
            };
        }
    };
    let message = format!("{}\n", "r".repeat(RR_MESSAGE - 1));
    let mut report = CountReport {
        mode: "rr".into(),
        target: target.to_string(),
        ok: 0,
        failed: 0,
        latency: None,
        first_error: None,
    };
    let mut samples = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let Some(stream) = reader.as_mut() else {
            report.failed += 1;
            continue;
        };
        let started = Instant::now();
        match bounded(limit, exchange(stream, &message)).await {
            Ok(answer) if answer == message => {
                report.ok += 1;
                samples.push(started.elapsed());
            }
            Ok(answer) => {
                report.failed += 1;
                report
                    .first_error
                    .get_or_insert_with(|| format!("echo mismatch: {answer:?}"));
            }
            Err(e) => {
                // The connection's state is unknown after a failure: count the rest as failed.
                report.failed += 1;
                report.first_error.get_or_insert_with(|| format!("{e:#}"));
                reader = None;
            }
        }
    }
    report.latency = Latency::from_samples(&samples);
    report
}

fn parse_peer(answer: &[u8]) -> anyhow::Result<WhoamiReport> {
    let text = String::from_utf8_lossy(answer);
    let peer = text
        .trim()
        .strip_prefix("peer=")
        .with_context(|| format!("unexpected answer {text:?}"))?
        .parse()
        .with_context(|| format!("bad address in {text:?}"))?;
    Ok(WhoamiReport { peer })
}

/// The source address the TCP server sees.
pub async fn whoami_tcp(target: SocketAddr, limit: Duration) -> anyhow::Result<WhoamiReport> {
    bounded(limit, async {
        let mut reader = BufReader::new(connect(target).await?);
        parse_peer(exchange(&mut reader, "WHOAMI\n").await?.as_bytes())
    })
    .await
}

/// The source address the UDP server sees.
pub async fn whoami_udp(target: SocketAddr, limit: Duration) -> anyhow::Result<WhoamiReport> {
    bounded(limit, async {
        parse_peer(&udp_exchange(target, b"WHOAMI").await?)
    })
    .await
}

fn parse_server(answer: &[u8]) -> anyhow::Result<SocketAddr> {
    let text = String::from_utf8_lossy(answer);
    text.trim()
        .strip_prefix("server=")
        .with_context(|| format!("unexpected answer {text:?}"))?
        .parse()
        .with_context(|| format!("bad address in {text:?}"))
}

/// `count` new connections (TCP) or datagrams from new sockets (UDP), each asking the
/// server for its own address.
pub async fn servers(udp: bool, target: SocketAddr, count: u64, limit: Duration) -> ServersReport {
    let mut report = ServersReport {
        target: target.to_string(),
        servers: BTreeMap::new(),
        failed: 0,
        first_error: None,
    };
    for _ in 0..count {
        let asked = bounded(limit, async {
            if udp {
                parse_server(&udp_exchange(target, b"WHOAREYOU").await?)
            } else {
                let mut reader = BufReader::new(connect(target).await?);
                parse_server(exchange(&mut reader, "WHOAREYOU\n").await?.as_bytes())
            }
        })
        .await;
        match asked {
            Ok(server) => *report.servers.entry(server).or_default() += 1,
            Err(e) => {
                report.failed += 1;
                report.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    report
}

/// One connection exchanging `seq N` lines every `interval` for `duration`. Any failure
/// marks the stream broken and the next tick reconnects.
pub async fn stream(
    target: SocketAddr,
    duration: Duration,
    interval: Duration,
    limit: Duration,
) -> StreamReport {
    let mut report = StreamReport {
        target: target.to_string(),
        sent: 0,
        received: 0,
        errors: 0,
        broke: false,
        reconnects: 0,
        latency: None,
        first_error: None,
    };
    let mut samples = Vec::new();
    let mut connection: Option<BufReader<TcpStream>> = None;
    let mut connected_once = false;
    let end = Instant::now() + duration;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while Instant::now() < end {
        ticks.tick().await;
        if connection.is_none() {
            match bounded(limit, async { Ok(BufReader::new(connect(target).await?)) }).await {
                Ok(fresh) => {
                    if connected_once {
                        report.reconnects += 1;
                    }
                    connected_once = true;
                    connection = Some(fresh);
                }
                Err(e) => {
                    report.errors += 1;
                    report.broke = true;
                    report.first_error.get_or_insert_with(|| format!("{e:#}"));
                    continue;
                }
            }
        }
        let stream = connection.as_mut().expect("connected above");
        let line = format!("seq {}\n", report.sent);
        report.sent += 1;
        let started = Instant::now();
        let outcome = match bounded(limit, exchange(stream, &line)).await {
            Ok(answer) if answer == line => Ok(()),
            Ok(answer) => Err(format!("echo mismatch: sent {line:?}, got {answer:?}")),
            Err(e) => Err(format!("{e:#}")),
        };
        match outcome {
            Ok(()) => {
                report.received += 1;
                samples.push(started.elapsed());
            }
            Err(e) => {
                report.errors += 1;
                report.broke = true;
                report.first_error.get_or_insert(e);
                connection = None;
            }
        }
    }
    report.latency = Latency::from_samples(&samples);
    report
}

/// Sends for `duration` after a `SINK` line; the server answers how much it received.
pub async fn throughput(
    target: SocketAddr,
    duration: Duration,
    limit: Duration,
) -> anyhow::Result<ThroughputReport> {
    let stream = bounded(limit, connect(target)).await?;
    let (reader, mut writer) = stream.into_split();
    writer.write_all(b"SINK\n").await.context("send")?;
    let chunk = vec![b'x'; CHUNK];
    let started = Instant::now();
    while started.elapsed() < duration {
        bounded(limit, async { Ok(writer.write_all(&chunk).await?) })
            .await
            .context("send")?;
    }
    writer.shutdown().await.context("shutdown")?;
    let seconds = started.elapsed().as_secs_f64();
    let mut answer = String::new();
    bounded(limit, async {
        Ok(BufReader::new(reader).read_line(&mut answer).await?)
    })
    .await
    .context("waiting for the server's count")?;
    let bytes: u64 = answer
        .trim()
        .strip_prefix("received=")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected answer {answer:?}"))?;
    Ok(ThroughputReport {
        target: target.to_string(),
        bytes,
        seconds,
        bits_per_second: bytes as f64 * 8.0 / seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whoami_answer_is_read_as_a_socket_address() {
        assert_eq!(
            parse_peer(b"peer=10.99.1.1:4000\n").unwrap().peer,
            "10.99.1.1:4000".parse().unwrap()
        );
        assert_eq!(
            parse_peer(b"peer=[fd00::1]:5\n").unwrap().peer,
            "[fd00::1]:5".parse().unwrap()
        );
        assert!(parse_peer(b"hello").is_err());
    }

    #[test]
    fn the_server_answer_is_read_as_a_socket_address() {
        assert_eq!(
            parse_server(b"server=10.200.1.5:7000\n").unwrap(),
            "10.200.1.5:7000".parse().unwrap()
        );
        assert!(parse_server(b"peer=10.0.0.1:1").is_err());
    }
}
