//! Helpers for tests that start servers of their own (moto, sshd) on loopback.

/// A loopback port no server of this process was given before. The kernel may hand a
/// port just released to two tests starting at once; the second server would then
/// fail to bind while its test talked to the first (which goes when that test ends).
pub fn free_port() -> Option<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        if !given.contains(&port) {
            given.push(port);
            return Some(port);
        }
    }
}
