//! The Unix signals the gateway acts on besides shutdown: SIGHUP reloads the
//! policies (`policy_tools::reload`), SIGUSR1 reopens the decision log (`audit`).
//! Elsewhere, or when a handler cannot be installed, the signal never comes.

/// One signal being listened for.
pub struct Listener(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

#[cfg(unix)]
fn listen(kind: tokio::signal::unix::SignalKind, name: &str) -> Listener {
    match tokio::signal::unix::signal(kind) {
        Ok(s) => Listener(Some(s)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for {name}");
            Listener(None)
        }
    }
}

/// SIGHUP.
pub fn hangup() -> Listener {
    #[cfg(unix)]
    return listen(tokio::signal::unix::SignalKind::hangup(), "SIGHUP");
    #[cfg(not(unix))]
    Listener()
}

/// SIGUSR1.
pub fn user1() -> Listener {
    #[cfg(unix)]
    return listen(tokio::signal::unix::SignalKind::user_defined1(), "SIGUSR1");
    #[cfg(not(unix))]
    Listener()
}

impl Listener {
    /// The next delivery; pending forever without a handler.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.0 {
            if s.recv().await.is_some() {
                return;
            }
        }
        std::future::pending().await
    }
}
