//! Opening a KV bucket, creating it when it does not exist yet.
//!
//! A bucket `NAME` is the JetStream stream `KV_NAME` on subjects
//! `$KV.NAME.>`. It is created here as a stream with the settings
//! `async_nats`'s `create_key_value` uses, rather than through that call:
//! `create_key_value` first asks for the account's information, and the reply
//! of nats-server 2.9 (Debian bookworm's, the enclave's) does not parse in
//! async-nats 0.42, so the call fails although the server could create the
//! bucket.

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::kv::Store;
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::{Context, ErrorCode};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::connect::BusError;
use crate::defs::{BUCKET_HISTORY, READ_CONCURRENCY};

/// Opens bucket `name`, creating it (history [`BUCKET_HISTORY`], file
/// storage) when the server has none of that name. An existing bucket is
/// used as it is, whatever its configuration.
pub async fn open_bucket(js: &Context, name: &str) -> Result<Store, BusError> {
    let get_error = |cause: Box<dyn std::error::Error + Send + Sync>| BusError::GetBucket {
        bucket: name.to_owned(),
        cause,
    };
    let stream_name = format!("KV_{name}");
    match js.get_stream(&stream_name).await {
        Ok(_) => {
            return js
                .get_key_value(name)
                .await
                .map_err(|e| get_error(e.into()));
        }
        Err(error) => match error.kind() {
            GetStreamErrorKind::JetStream(inner)
                if inner.error_code() == ErrorCode::STREAM_NOT_FOUND => {}
            _ => return Err(get_error(error.into())),
        },
    }
    let config = stream::Config {
        name: stream_name,
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: BUCKET_HISTORY,
        max_messages: -1,
        max_bytes: -1,
        max_message_size: -1,
        storage: StorageType::File,
        num_replicas: 1,
        discard: DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        ..Default::default()
    };
    // Creating fails when another client created the bucket between the
    // look-up and now; the look-up below tells.
    let created = js.create_stream(config).await;
    match js.get_key_value(name).await {
        Ok(store) => {
            if created.is_ok() {
                tracing::info!(bucket = name, "created KV bucket");
            }
            Ok(store)
        }
        Err(get) => Err(BusError::CreateBucket {
            bucket: name.to_owned(),
            cause: match created {
                Err(create) => create.into(),
                Ok(_) => get.into(),
            },
        }),
    }
}

/// Every key of `store` that has a message (its value or a delete marker).
///
/// Read from the stream's per-subject counts rather than with
/// `Store::keys`, whose ordered consumer was seen to wait forever against
/// nats-server 2.9 when a key changed while it was listing.
pub async fn keys(store: &Store) -> Result<Vec<String>, BusError> {
    let read_error = |cause: Box<dyn std::error::Error + Send + Sync>| BusError::Read {
        bucket: store.name.clone(),
        cause,
    };
    let stream = store.stream.clone();
    let subjects = stream
        .info_with_subjects(format!("{}>", store.prefix))
        .await
        .map_err(|e| read_error(e.into()))?;
    let subjects: Vec<(String, usize)> = subjects
        .try_collect()
        .await
        .map_err(|e| read_error(e.into()))?;
    Ok(subjects
        .into_iter()
        .filter_map(|(subject, _)| subject.strip_prefix(&store.prefix).map(str::to_owned))
        .collect())
}

/// Every live key of `store` with its value (keys whose latest message is
/// a delete marker are left out), read [`READ_CONCURRENCY`] at a time.
pub async fn entries(store: &Store) -> Result<Vec<(String, Bytes)>, BusError> {
    let keys = keys(store).await?;
    let reads = futures::stream::iter(keys)
        .map(|key| async move { store.get(&key).await.map(|value| value.map(|v| (key, v))) })
        .buffer_unordered(READ_CONCURRENCY);
    let found: Vec<Option<(String, Bytes)>> =
        reads.try_collect().await.map_err(|e| BusError::Read {
            bucket: store.name.clone(),
            cause: e.into(),
        })?;
    Ok(found.into_iter().flatten().collect())
}
