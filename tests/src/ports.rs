//! Free loopback ports. The kernel picks them (bind to port 0); all the ports of one request are
//! held open together so one request never gets the same port twice, then released for the
//! process that will listen on them. Another process can still take a port in the short window
//! before the child binds it: the process module notices a child that failed to bind and the
//! cluster then retries with a fresh port.

use std::net::TcpListener;

/// `n` distinct free ports on 127.0.0.1.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("local address of a bound socket")
                .port()
        })
        .collect()
}

/// One free port on 127.0.0.1.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}
