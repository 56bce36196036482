//! The boot heartbeat: connect to the parent on vsock port 9000, send
//! `0xB7`, expect `0xB7` back. The parent's CID is 3 on Nitro and 2 in a
//! local QEMU micro-VM; with `cid: auto` the likely one (3 where `/dev/nsm`
//! exists) is tried first, then the other, so one image boots in both.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use transport::{Address, ConnectOptions};

use crate::config::{HeartbeatConfig, ParentCid};
use crate::defs::{HEARTBEAT_BYTE, HEARTBEAT_TIMEOUT, NITRO_PARENT_CID, NSM_DEVICE, VM_HOST_CID};
use crate::pid1::StepOutcome;

/// Sends `0xB7` on `stream` and checks the echo.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<(), String> {
    stream
        .write_all(&[HEARTBEAT_BYTE])
        .await
        .map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("flush: {e}"))?;
    let reply = stream.read_u8().await.map_err(|e| format!("read: {e}"))?;
    if reply != HEARTBEAT_BYTE {
        return Err(format!(
            "expected 0x{HEARTBEAT_BYTE:02X} back, got 0x{reply:02X}"
        ));
    }
    Ok(())
}

async fn beat(addr: &Address) -> Result<(), String> {
    let attempt = async {
        let options = ConnectOptions {
            attempts: 1,
            attempt_timeout: HEARTBEAT_TIMEOUT,
            ..ConnectOptions::default()
        };
        let mut stream = transport::connect_with(addr, &options)
            .await
            .map_err(|e| e.to_string())?;
        exchange(&mut stream).await
    };
    tokio::time::timeout(HEARTBEAT_TIMEOUT, attempt)
        .await
        .map_err(|_| format!("no answer from {addr} within {HEARTBEAT_TIMEOUT:?}"))?
}

/// The CIDs to try, in order.
pub fn candidates(setting: ParentCid, nsm_present: bool) -> Vec<u32> {
    match setting {
        ParentCid::Fixed(cid) => vec![cid],
        ParentCid::Auto if nsm_present => vec![NITRO_PARENT_CID, VM_HOST_CID],
        ParentCid::Auto => vec![VM_HOST_CID, NITRO_PARENT_CID],
    }
}

/// Sends the heartbeat; returns the parent CID that answered (if over vsock).
pub async fn send(config: &HeartbeatConfig) -> (Option<u32>, StepOutcome) {
    if let Some(addr) = &config.address {
        return match beat(addr).await {
            Ok(()) => (
                None,
                StepOutcome::Done(format!("0xB7 exchanged with {addr}")),
            ),
            Err(err) => (None, StepOutcome::Failed(err)),
        };
    }
    let mut errors = Vec::new();
    for cid in candidates(config.cid, Path::new(NSM_DEVICE).exists()) {
        let addr = Address::vsock(cid, config.port);
        match beat(&addr).await {
            Ok(()) => {
                return (
                    Some(cid),
                    StepOutcome::Done(format!("0xB7 exchanged with {addr}: parent CID is {cid}")),
                );
            }
            Err(err) => errors.push(format!("CID {cid}: {err}")),
        }
    }
    (
        None,
        StepOutcome::Failed(format!("no parent answered: {}", errors.join("; "))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_order() {
        assert_eq!(candidates(ParentCid::Auto, true), [3, 2]);
        assert_eq!(candidates(ParentCid::Auto, false), [2, 3]);
        assert_eq!(candidates(ParentCid::Fixed(7), true), [7]);
    }

    #[tokio::test]
    async fn exchange_checks_the_echo() {
        let (mut a, mut b) = tokio::io::duplex(8);
        let parent = tokio::spawn(async move {
            let byte = b.read_u8().await.unwrap();
            b.write_all(&[byte]).await.unwrap();
        });
        exchange(&mut a).await.unwrap();
        parent.await.unwrap();
        let (mut a, mut b) = tokio::io::duplex(8);
        tokio::spawn(async move {
            let _ = b.read_u8().await;
            b.write_all(&[0x00]).await.unwrap();
        });
        assert!(exchange(&mut a).await.unwrap_err().contains("got 0x00"));
    }
}
