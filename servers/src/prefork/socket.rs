//! The listening socket the workers share, or one per worker with
//! `SO_REUSEPORT`.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use crate::cli;

/// Where a worker gets its listener.
pub(super) enum Listen {
    /// The parent's listener, inherited (this descriptor).
    Shared(libc::c_int),
    /// A listener of its own, bound with SO_REUSEPORT to this address.
    ReusePort(SocketAddr),
}

/// `--addr` as one socket address, or exit 1.
pub(super) fn resolve(addr: &str) -> SocketAddr {
    match addr.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) => cli::fail(format_args!("--addr {addr} resolves to nothing")),
        Err(err) => cli::fail(format_args!("cannot resolve --addr {addr}: {err}")),
    }
}

/// A non-blocking, close-on-exec TCP socket with SO_REUSEADDR and
/// SO_REUSEPORT, bound to `addr`; listening if `listen`.
pub(super) fn reuseport_socket(addr: SocketAddr, listen: bool) -> std::io::Result<TcpListener> {
    use std::os::fd::FromRawFd;
    let check = |ret: libc::c_int| {
        if ret == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    };
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket takes no pointers.
    let fd = check(unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: a new descriptor that nothing else owns.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: `one` is a live c_int and its size is passed.
        check(unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    // SAFETY: an all-zero sockaddr_storage is valid and large enough for
    // either address family.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is aligned and sized for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is aligned and sized for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `storage` holds a valid address of `len` bytes.
    check(unsafe {
        libc::bind(
            fd,
            (&storage as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    })?;
    if listen {
        // SAFETY: listen takes no pointers.
        check(unsafe { libc::listen(fd, 1024) })?;
    }
    Ok(TcpListener::from(socket))
}
