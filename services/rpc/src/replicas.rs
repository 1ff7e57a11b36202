//! Several replicas of one service behind a client: calls go round-robin, and a call that could not
//! even connect moves on to the next replica (the request never reached the first one).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tonic::Status;

use crate::status::never_connected;

/// The replicas of one peer service.
pub struct Replicas<C> {
    clients: Vec<C>,
    turn: AtomicUsize,
}

impl<C: Clone> Replicas<C> {
    /// Replicas built by `connect` from each address (at least one).
    pub fn connect(addrs: &[String], connect: impl Fn(&str) -> anyhow::Result<C>) -> anyhow::Result<Self> {
        anyhow::ensure!(!addrs.is_empty(), "no peer address given");
        let clients = addrs.iter().map(|a| connect(a)).collect::<anyhow::Result<Vec<C>>>()?;
        Ok(Self { clients, turn: AtomicUsize::new(0) })
    }

    /// Runs `call` on the next replica, moving on while a replica cannot be connected to.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        F: Fn(C) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut failed = None;
        for i in 0..self.clients.len() {
            let Some(client) = self.clients.get((start + i) % self.clients.len()) else { break };
            match call(client.clone()).await {
                Err(status) if never_connected(&status) => failed = Some(status),
                other => return other,
            }
        }
        Err(failed.unwrap_or_else(|| Status::unavailable("no replica of the service is reachable")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Status {
        Status::from_error(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)))
    }

    #[tokio::test]
    async fn calls_rotate_and_skip_replicas_that_cannot_be_connected_to() {
        let replicas = Replicas::connect(&["a".into(), "down".into(), "c".into()], |a| Ok(a.to_owned())).expect("3");
        let mut answered = Vec::new();
        for _ in 0..3 {
            let r = replicas
                .call(|c: String| async move { if c == "down" { Err(refused()) } else { Ok(c) } })
                .await
                .expect("a reachable replica answers");
            answered.push(r);
        }
        assert_eq!(answered, ["a", "c", "c"], "the dead replica's turn goes to the next one");
        let other = replicas.call(|_c: String| async { Err::<String, _>(Status::internal("boom")) }).await;
        assert_eq!(other.expect_err("not a connection failure").code(), tonic::Code::Internal, "no retry");
        let all_down = replicas.call(|_c: String| async { Err::<String, _>(refused()) }).await;
        assert!(never_connected(&all_down.expect_err("none reachable")));
        assert!(Replicas::<String>::connect(&[], |a| Ok(a.to_owned())).is_err());
    }
}
