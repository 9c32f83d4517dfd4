//! Network namespace cookies: how the socket hooks tell which pod a socket belongs to.

/// The cookie the kernel gives the network namespace at `path` (what the socket hooks'
/// `bpf_get_netns_cookie` returns for sockets of that namespace), read with
/// `SO_NETNS_COOKIE` from a socket opened inside it on a thread of its own (`setns`
/// moves only the calling thread).
pub fn netns_cookie(path: &str) -> std::io::Result<u64> {
    let path = path.to_string();
    std::thread::spawn(move || -> std::io::Result<u64> {
        let namespace = std::fs::File::open(&path)?;
        nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        let socket = std::net::UdpSocket::bind("0.0.0.0:0")
            .or_else(|_| std::net::UdpSocket::bind("[::]:0"))?;
        let mut cookie: u64 = 0;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        // SAFETY: the socket is open for the call; cookie and len are valid out-pointers
        // of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::SOL_SOCKET,
                libc::SO_NETNS_COOKIE,
                (&raw mut cookie).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(cookie)
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
}
