//! Socket-level load balancing through the real cgroup sock_addr programs: a process in
//! the cgroup connects to a Service frontend and reaches the backend; `getpeername` and
//! UDP replies show the frontend; a frontend without backends refuses at once.
//!
//! The client must run in the cgroup, so it is this same binary re-executed in child
//! mode (`MEMBRANE_SOCK_LB_CHILD`); the harness is our own (`harness = false`).

#[allow(dead_code)]
mod bed;

use bed::{Bed, with_bed};
use membrane_datapath::{BackendSpec, Frontend, ServiceSpec};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const CHILD: &str = "MEMBRANE_SOCK_LB_CHILD";

/// Child mode: `tcp|udp ADDR`, prints what the socket API shows.
fn child(spec: &str) {
    let (kind, addr) = spec.split_once(' ').expect("kind and address");
    let addr: SocketAddr = addr.parse().expect("socket address");
    match kind {
        "tcp" => match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(mut s) => {
                let mut greeting = String::new();
                s.read_to_string(&mut greeting).unwrap();
                println!("peer={} greeting={}", s.peer_addr().unwrap(), greeting);
            }
            Err(e) => println!("error={:?}", e.kind()),
        },
        "udp" => {
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse().unwrap()
            } else {
                "[::]:0".parse().unwrap()
            };
            let s = UdpSocket::bind(bind).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.send_to(b"ping", addr).unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = s.recv_from(&mut buf).unwrap();
            println!("from={from} reply={}", String::from_utf8_lossy(&buf[..n]));
        }
        other => panic!("unknown child kind {other}"),
    }
}

/// A cgroup v2 directory of its own, removed on drop.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new() -> Self {
        let path = PathBuf::from(format!(
            "/sys/fs/cgroup/unified/membrane-socklb-{:08x}",
            rand::random::<u32>()
        ));
        std::fs::create_dir(&path).expect("create a cgroup under /sys/fs/cgroup/unified");
        TestCgroup(path)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs this binary in child mode inside `cgroup` (and the caller's network namespace).
fn run_child(cgroup: &TestCgroup, spec: &str) -> String {
    let procs = std::ffi::CString::new(cgroup.0.join("cgroup.procs").to_str().unwrap()).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD, spec);
    // SAFETY: between fork and exec the closure only calls open, write and close, which
    // are async-signal-safe, on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::close(fd);
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = cmd.output().expect("run the child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn bring_up_loopback() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures::TryStreamExt;
        let (conn, handle, _) = rtnetlink::new_connection().unwrap();
        tokio::spawn(conn);
        let lo = handle
            .link()
            .get()
            .match_name("lo".to_string())
            .execute()
            .try_next()
            .await
            .unwrap()
            .unwrap();
        handle
            .link()
            .set(
                rtnetlink::LinkUnspec::new_with_index(lo.header.index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .unwrap();
    });
}

fn program(bed: &mut Bed, vip: IpAddr, proto: u8, backend: Option<SocketAddr>) {
    let frontend = Frontend {
        addr: vip,
        port: 80,
        proto,
        internal: false,
    };
    let mut active = Vec::new();
    if let Some(b) = backend {
        bed.dp
            .upsert_backend(
                1,
                &BackendSpec {
                    addr: b.ip(),
                    port: b.port(),
                    proto,
                    terminating: false,
                    local: true,
                },
            )
            .unwrap();
        active.push(1);
    }
    let spec = ServiceSpec {
        frontend,
        rev_nat_index: 9,
        flags: 0,
        affinity_timeout_s: 0,
        active,
        terminating: vec![],
    };
    bed.dp.upsert_service(&spec, &[]).unwrap();
}

fn tcp_connect_reaches_the_backend_and_getpeername_shows_the_frontend(v6: bool) {
    with_bed(move |bed| {
        bring_up_loopback();
        let cgroup = TestCgroup::new();
        bed.dp.attach_socket_lb(&cgroup.0).unwrap();
        let listener = TcpListener::bind(if v6 { "[::1]:0" } else { "127.0.0.1:0" }).unwrap();
        let backend = listener.local_addr().unwrap();
        let vip: IpAddr = if v6 {
            "fd00:96::10".parse().unwrap()
        } else {
            "10.96.0.10".parse().unwrap()
        };
        program(bed, vip, 6, Some(backend));
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"hello-from-backend").unwrap();
        });
        let out = run_child(&cgroup, &format!("tcp {}", SocketAddr::new(vip, 80)));
        server.join().unwrap();
        assert_eq!(
            out,
            format!(
                "peer={} greeting=hello-from-backend",
                SocketAddr::new(vip, 80)
            )
        );
        let translated: u64 = bed
            .dp
            .counters()
            .unwrap()
            .iter()
            .filter(|c| c.reason_name == "socket_lb_translated")
            .map(|c| c.packets)
            .sum();
        assert_eq!(translated, 1, "one connect, one translation");
    });
}

fn udp_replies_appear_to_come_from_the_frontend() {
    with_bed(|bed| {
        bring_up_loopback();
        let cgroup = TestCgroup::new();
        bed.dp.attach_socket_lb(&cgroup.0).unwrap();
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let backend = server.local_addr().unwrap();
        let vip: IpAddr = "10.96.0.10".parse().unwrap();
        program(bed, vip, 17, Some(backend));
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"ping");
            server.send_to(b"pong", from).unwrap();
        });
        let out = run_child(&cgroup, "udp 10.96.0.10:80");
        echo.join().unwrap();
        assert_eq!(out, "from=10.96.0.10:80 reply=pong");
    });
}

fn connect_to_a_frontend_without_backends_is_refused_at_once() {
    with_bed(|bed| {
        bring_up_loopback();
        let cgroup = TestCgroup::new();
        bed.dp.attach_socket_lb(&cgroup.0).unwrap();
        program(bed, "10.96.0.11".parse().unwrap(), 6, None);
        let started = std::time::Instant::now();
        let out = run_child(&cgroup, "tcp 10.96.0.11:80");
        assert_eq!(
            out, "error=ConnectionRefused",
            "connect() is refused by the hook, as by a closed port"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "refused at once, not after a time-out"
        );
    });
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    let tests: [(&str, fn()); 4] = [
        (
            "tcp_connect_reaches_the_backend_and_getpeername_shows_the_frontend_v4",
            || tcp_connect_reaches_the_backend_and_getpeername_shows_the_frontend(false),
        ),
        (
            "tcp_connect_reaches_the_backend_and_getpeername_shows_the_frontend_v6",
            || tcp_connect_reaches_the_backend_and_getpeername_shows_the_frontend(true),
        ),
        (
            "udp_replies_appear_to_come_from_the_frontend",
            udp_replies_appear_to_come_from_the_frontend,
        ),
        (
            "connect_to_a_frontend_without_backends_is_refused_at_once",
            connect_to_a_frontend_without_backends_is_refused_at_once,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        println!("test result: FAILED. {failed} failed");
        std::process::exit(1);
    }
    println!("test result: ok");
}
