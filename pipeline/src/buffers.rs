//! Reusable chunk buffers for file content and output.
//!
//! Moving a large file allocates nothing per chunk: buffers come from a
//! small pool, travel as [`Bytes`] (via [`PooledBuf::freeze`]) and return
//! to the pool when the last reference is dropped, on whichever thread.
//! Fresh allocations of chunk size would otherwise cost page faults and
//! copies on every chunk.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// A pool of equally sized byte buffers.
#[derive(Debug, Clone)]
pub struct BufferPool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    free: Mutex<Vec<Box<[u8]>>>,
    chunk_len: usize,
    keep: usize,
}

impl BufferPool {
    /// A pool of `chunk_len`-byte buffers that keeps at most `keep` idle ones.
    pub fn new(chunk_len: usize, keep: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                free: Mutex::new(Vec::new()),
                chunk_len,
                keep,
            }),
        }
    }

    /// Size of every buffer.
    pub fn chunk_len(&self) -> usize {
        self.shared.chunk_len
    }

    /// A buffer of [`chunk_len`](Self::chunk_len) bytes (content unspecified).
    pub fn get(&self) -> PooledBuf {
        let reused = self.shared.lock().pop();
        let buf = reused.unwrap_or_else(|| vec![0u8; self.shared.chunk_len].into_boxed_slice());
        PooledBuf {
            buf: Some(buf),
            pool: self.shared.clone(),
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Box<[u8]>>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A buffer borrowed from a [`BufferPool`]; goes back on drop.
#[derive(Debug)]
pub struct PooledBuf {
    buf: Option<Box<[u8]>>,
    pool: Arc<Shared>,
}

impl PooledBuf {
    /// The first `len` bytes as [`Bytes`]; the buffer returns to the pool
    /// when the last clone is dropped.
    pub fn freeze(self, len: usize) -> Bytes {
        let len = len.min(self.len());
        Bytes::from_owner(Frozen { buf: self, len })
    }
}

impl Deref for PooledBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or(&[])
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().unwrap_or(&mut [])
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let mut free = self.pool.lock();
            if free.len() < self.pool.keep {
                free.push(buf);
            }
        }
    }
}

struct Frozen {
    buf: PooledBuf,
    len: usize,
}

impl AsRef<[u8]> for Frozen {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_to_the_pool() {
        let pool = BufferPool::new(16, 2);
        let mut a = pool.get();
        a[..3].copy_from_slice(b"abc");
        let addr = a.as_ptr();
        let bytes = a.freeze(3);
        let clone = bytes.clone();
        assert_eq!(&bytes[..], b"abc");
        drop(bytes);
        assert_eq!(pool.shared.lock().len(), 0, "still referenced");
        drop(clone);
        assert_eq!(pool.shared.lock().len(), 1);
        assert_eq!(pool.get().as_ptr(), addr, "the same buffer is reused");
        let held: Vec<_> = (0..4).map(|_| pool.get()).collect();
        drop(held);
        assert_eq!(pool.shared.lock().len(), 2, "at most `keep` idle buffers");
    }
}
