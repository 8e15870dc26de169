//! PostgreSQL's LISTEN, for the feeds that tell every gateway of a change
//! made through another (entity changes, policy publications): one
//! connection per channel, reconnected a second after it fails.

use std::time::Duration;

/// What a listening connection hears.
pub enum Heard<'a> {
    /// Listening (again): notifications sent before may have been missed.
    Listening,
    /// A notification's payload.
    Note(&'a str),
    /// The connection is lost; listening again once it is back.
    Lost,
}

/// Listens on `channel` and hands `on` what it hears, until `on` answers
/// false. `what` names the feed in the log.
pub fn listen(
    database_url: String,
    channel: &'static str,
    what: &'static str,
    mut on: impl FnMut(Heard<'_>) -> bool + Send + 'static,
) {
    tokio::spawn(async move {
        loop {
            match sqlx::postgres::PgListener::connect(&database_url).await {
                Ok(mut listener) => {
                    // Report a lost connection at once: by default `try_recv`
                    // first reconnects (retrying for up to the pool's acquire
                    // timeout while the database is down), and all that time
                    // a cache would be trusted with notifications lost.
                    listener.eager_reconnect(false);
                    if let Err(e) = listener.listen(channel).await {
                        tracing::error!(error = %e, "cannot LISTEN for {what}");
                    } else if !on(Heard::Listening) {
                        return;
                    } else {
                        // `try_recv`, not `recv`: `recv` reconnects silently
                        // and notifications sent meanwhile are lost. `None`:
                        // the connection closed, and nothing would say when
                        // it listens again.
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(note)) => {
                                    if !on(Heard::Note(note.payload())) {
                                        return;
                                    }
                                }
                                Ok(None) => {
                                    tracing::warn!(
                                        "the {what} listener lost its connection; reconnecting"
                                    );
                                    break;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "the {what} listener lost its connection");
                                    break;
                                }
                            }
                        }
                        if !on(Heard::Lost) {
                            return;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot connect the {what} listener"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
