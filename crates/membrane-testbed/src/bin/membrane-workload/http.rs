//! HTTP/1.1: the server's two routes and the GET client.

use crate::sockets::canonical;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use membrane_testbed::report::{CountReport, Latency};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// Serves `GET /` (the peer address) and `GET /status` on `listener`.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let peer = canonical(peer);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, peer));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("http connection from {peer}: {e}");
            }
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => (StatusCode::OK, format!("peer={peer}\n")),
        (&Method::GET, "/status") => (StatusCode::OK, "{\"status\":\"ok\"}\n".to_string()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

/// `count` GETs of `url`, each on a new connection, each within `timeout`.
pub async fn get(url: &str, count: u64, timeout: Duration) -> CountReport {
    let mut report = CountReport {
        mode: "http".into(),
        target: url.into(),
        ok: 0,
        failed: 0,
        latency: None,
        first_error: None,
    };
    let mut samples = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(timeout, get_once(url)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
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

async fn get_once(url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("no host in {url}"))?
        .clone();
    let address = match authority.port_u16() {
        Some(_) => authority.to_string(),
        None => format!("{authority}:80"),
    };
    let stream = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("connect {address}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(hyper::header::HOST, authority.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    driver.abort();
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ))
    }
}
