//! Socket options of another process's connections, read from outside: each socket of the
//! process is duplicated into the test with `pidfd_getfd(2)` (the tests run as root) and asked
//! with `getsockopt`. This checks what a server really does to the sockets it accepts, not what
//! its code meant to do.

use std::io;

/// TCP_NODELAY of every accepted (non-listening) TCP socket of process `pid` whose local port is
/// `port`, one entry per socket.
pub fn accepted_nodelay(pid: u32, port: u16) -> io::Result<Vec<bool>> {
    // SAFETY: plain syscalls on integers; every fd we get is closed below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    let pidfd = pidfd as libc::c_int;
    let mut out = Vec::new();
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd"));
    let result = entries.map(|entries| {
        for entry in entries.flatten() {
            let is_socket = std::fs::read_link(entry.path())
                .map(|t| t.to_string_lossy().starts_with("socket:"))
                .unwrap_or(false);
            let Some(target_fd) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<libc::c_int>().ok())
            else {
                continue;
            };
            if !is_socket {
                continue;
            }
            // SAFETY: see above.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target_fd, 0) };
            if fd < 0 {
                continue;
            }
            let fd = fd as libc::c_int;
            if let Some(nodelay) = inspect(fd, port) {
                out.push(nodelay);
            }
            // SAFETY: `fd` is ours.
            unsafe { libc::close(fd) };
        }
    });
    // SAFETY: `pidfd` is ours.
    unsafe { libc::close(pidfd) };
    result.map(|()| out)
}

/// `Some(TCP_NODELAY)` when `fd` is an accepted TCP/IPv4 or IPv6 socket on local `port`.
fn inspect(fd: libc::c_int, port: u16) -> Option<bool> {
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` is large enough for any address and `len` says so.
    let rc = unsafe { libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) };
    if rc != 0 {
        return None;
    }
    let local_port = match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let a = unsafe { &*(&addr as *const _ as *const libc::sockaddr_in) };
            u16::from_be(a.sin_port)
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let a = unsafe { &*(&addr as *const _ as *const libc::sockaddr_in6) };
            u16::from_be(a.sin6_port)
        }
        _ => return None,
    };
    if local_port != port || int_opt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? != 0 {
        return None;
    }
    if int_opt(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)? != libc::IPPROTO_TCP {
        return None;
    }
    Some(int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0)
}

fn int_opt(fd: libc::c_int, level: libc::c_int, name: libc::c_int) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` is an int and `len` says so.
    let rc = unsafe { libc::getsockopt(fd, level, name, &mut v as *mut _ as *mut _, &mut len) };
    (rc == 0).then_some(v)
}
