//! The server side: TCP echo, UDP echo and HTTP, all on every address.

use crate::sockets::{self, canonical};
use crate::udp_pktinfo;
use anyhow::Context;
use membrane_testbed::report::ServeReady;
use std::net::SocketAddr;
use tokio::io::Interest;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

/// Binds every requested listener, prints [`ServeReady`], then serves until killed.
pub async fn run(tcp: Option<u16>, udp: Option<u16>, http: Option<u16>) -> anyhow::Result<()> {
    anyhow::ensure!(
        tcp.or(udp).or(http).is_some(),
        "give at least one of --tcp, --udp, --http"
    );
    let mut tasks = JoinSet::new();
    if let Some(port) = tcp {
        let listener = sockets::tcp_listener(port)
            .with_context(|| format!("cannot listen on TCP port {port}"))?;
        tasks.spawn(tcp_server(listener));
    }
    if let Some(port) = udp {
        let socket =
            sockets::udp_socket(port).with_context(|| format!("cannot bind UDP port {port}"))?;
        tasks.spawn(udp_server(socket));
    }
    if let Some(port) = http {
        let listener = sockets::tcp_listener(port)
            .with_context(|| format!("cannot listen on HTTP port {port}"))?;
        tasks.spawn(crate::http::serve(listener));
    }
    println!("{}", serde_json::to_string(&ServeReady { tcp, udp, http })?);
    match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(e).context("a server task failed"),
        None => Ok(()),
    }
}

async fn tcp_server(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await.context("accept failed")?;
        tokio::spawn(async move {
            if let Err(e) = tcp_connection(stream, canonical(peer)).await {
                eprintln!("tcp connection from {peer}: {e}");
            }
        });
    }
}

/// Serves one TCP connection line by line.
async fn tcp_connection(stream: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let local = canonical(stream.local_addr()?);
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        match line.trim_end() {
            "WHOAMI" => {
                writer
                    .write_all(format!("peer={peer}\n").as_bytes())
                    .await?
            }
            "WHOAREYOU" => {
                writer
                    .write_all(format!("server={local}\n").as_bytes())
                    .await?
            }
            "SINK" => {
                let received = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await?;
                writer
                    .write_all(format!("received={received}\n").as_bytes())
                    .await?;
                return writer.shutdown().await;
            }
            _ => writer.write_all(line.as_bytes()).await?,
        }
    }
}

async fn udp_server(socket: UdpSocket) -> anyhow::Result<()> {
    let bound = socket.local_addr()?;
    let ipv6 = bound.is_ipv6();
    udp_pktinfo::enable(&socket, ipv6).context("cannot ask for datagram destinations")?;
    let mut buffer = vec![0u8; 65536];
    loop {
        let received = socket
            .async_io(Interest::READABLE, || {
                udp_pktinfo::receive(&socket, &mut buffer)
            })
            .await
            .context("UDP receive failed")?;
        let datagram = &buffer[..received.len];
        let answer = if datagram == b"WHOAMI" {
            format!("peer={}", canonical(received.peer)).into_bytes()
        } else if datagram == b"WHOAREYOU" {
            let local = received.local.unwrap_or(bound.ip());
            format!("server={}", canonical(SocketAddr::new(local, bound.port()))).into_bytes()
        } else {
            datagram.to_vec()
        };
        let sent = socket
            .async_io(Interest::WRITABLE, || {
                udp_pktinfo::send(&socket, &answer, received.peer, received.local)
            })
            .await;
        if let Err(e) = sent {
            eprintln!("udp reply to {}: {e}", received.peer);
        }
    }
}
