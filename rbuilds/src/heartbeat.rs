//! The host side of the boot heartbeat for a local VM: init connects to the
//! host (CID 2) on port 9000, which vhost-device-vsock forwards to the Unix
//! socket `<uds-path>_9000`; we read `0xB7` and answer `0xB7`, as the Nitro
//! hypervisor does.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use transport::{Address, Listener};

use crate::defs::HEARTBEAT_BYTE;

/// What can go wrong waiting for the heartbeat.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    /// The socket could not be bound.
    #[error("listening on {address}: {cause}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        cause: transport::Error,
    },
    /// No heartbeat in time.
    #[error("no heartbeat within {0:?}")]
    Timeout(Duration),
    /// The exchange failed.
    #[error("heartbeat exchange: {0}")]
    Exchange(String),
}

/// Listens on `address` (for a local VM `hvsock:UDS_PATH:9000`), answers
/// the first heartbeat and returns how long it took to arrive.
pub async fn answer(address: &Address, timeout: Duration) -> Result<Duration, HeartbeatError> {
    let start = Instant::now();
    let listener = Listener::bind(address)
        .await
        .map_err(|cause| HeartbeatError::Bind {
            address: address.to_string(),
            cause,
        })?;
    let exchange = async {
        loop {
            let (mut stream, _peer) = listener
                .accept()
                .await
                .map_err(|e| HeartbeatError::Exchange(format!("accept: {e}")))?;
            let mut byte = [0u8; 1];
            match stream.read_exact(&mut byte).await {
                Ok(_) if byte[0] == HEARTBEAT_BYTE => {}
                Ok(_) => {
                    tracing::warn!(
                        "heartbeat: got 0x{:02X}, expected 0xB7; waiting on",
                        byte[0]
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!("heartbeat: connection closed early ({e}); waiting on");
                    continue;
                }
            }
            stream
                .write_all(&[HEARTBEAT_BYTE])
                .await
                .map_err(|e| HeartbeatError::Exchange(format!("reply: {e}")))?;
            stream
                .flush()
                .await
                .map_err(|e| HeartbeatError::Exchange(format!("flush: {e}")))?;
            return Ok(start.elapsed());
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HeartbeatError::Timeout(timeout))?
}
