//! One generation thread per model, fed by a bounded FIFO queue.
//!
//! A model generates for one request at a time (its KV cache is single),
//! so requests wait their turn in arrival order. The queue holds at most
//! `capacity` waiting requests; one more is refused at once with
//! [`QueueError::Full`] (HTTP 503), which is the server's backpressure. The
//! thread is a plain OS thread: a generation takes seconds of CPU and must
//! never run on the async workers.
//!
//! Each job carries a channel for its [`Event`]s. Its size is bounded by
//! the job's `max_tokens` (one event per token at most, plus two), so an
//! unbounded channel cannot grow without limit, and a slow client never
//! stalls the model for the requests behind it. A closed channel means the
//! client went away: the job is skipped, or its generation stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::engine::{Engine, Generation, GenerationRequest, ModelInfo, Vocabulary};

/// What a job reports to the request handler.
#[derive(Debug)]
pub enum Event {
    /// The generation thread took the job, after waiting this long.
    Started {
        /// Time spent in the queue.
        queued: Duration,
    },
    /// A new piece of the answer.
    Text(String),
    /// The answer is complete.
    Done(Generation),
    /// The generation failed.
    Failed(String),
}

/// The queue refused a job.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    /// As many requests as the queue holds are already waiting.
    #[error("{0} requests are already waiting for this model; try again later")]
    Full(usize),
    /// The generation thread is gone.
    #[error("the model's generation thread has stopped")]
    Stopped,
}

struct Job {
    request: GenerationRequest,
    events: UnboundedSender<Event>,
    enqueued: Instant,
}

/// A loaded model as the API sees it: its facts, its tokenizer, and the
/// queue of its generation thread.
pub struct ModelHandle {
    info: Arc<ModelInfo>,
    vocabulary: Arc<Vocabulary>,
    jobs: SyncSender<Job>,
    capacity: usize,
    waiting: Arc<AtomicUsize>,
    generated: Arc<AtomicUsize>,
}

impl ModelHandle {
    /// Starts the generation thread of `engine` with room for `capacity`
    /// waiting requests.
    pub fn start(engine: Engine, capacity: usize) -> std::io::Result<Self> {
        let info = Arc::clone(engine.info());
        let vocabulary = Arc::clone(engine.vocabulary());
        let (jobs, receiver) = sync_channel(capacity);
        let waiting = Arc::new(AtomicUsize::new(0));
        let generated = Arc::new(AtomicUsize::new(0));
        let (thread_waiting, thread_generated) = (Arc::clone(&waiting), Arc::clone(&generated));
        std::thread::Builder::new()
            .name(format!("generate-{}", info.name))
            .spawn(move || worker(engine, receiver, &thread_waiting, &thread_generated))?;
        Ok(Self {
            info,
            vocabulary,
            jobs,
            capacity,
            waiting,
            generated,
        })
    }

    /// The model's facts.
    pub fn info(&self) -> &Arc<ModelInfo> {
        &self.info
    }

    /// The model's tokenizer and chat template.
    pub fn vocabulary(&self) -> &Arc<Vocabulary> {
        &self.vocabulary
    }

    /// Requests queued or running.
    pub fn pending(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Requests answered since the model was loaded.
    pub fn completed(&self) -> usize {
        self.generated.load(Ordering::Relaxed)
    }

    /// Queues `request`; its events arrive on the returned channel.
    pub fn submit(
        &self,
        request: GenerationRequest,
    ) -> Result<UnboundedReceiver<Event>, QueueError> {
        let (events, receiver) = unbounded_channel();
        let job = Job {
            request,
            events,
            enqueued: Instant::now(),
        };
        self.waiting.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(job) {
            Ok(()) => Ok(receiver),
            Err(error) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                match error {
                    TrySendError::Full(_) => Err(QueueError::Full(self.capacity)),
                    TrySendError::Disconnected(_) => Err(QueueError::Stopped),
                }
            }
        }
    }
}

fn worker(mut engine: Engine, jobs: Receiver<Job>, waiting: &AtomicUsize, generated: &AtomicUsize) {
    let name = engine.info().name.clone();
    // Ends when every handle (and so every sender) is gone.
    for job in jobs {
        let events = job.events;
        if events.is_closed() {
            waiting.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let _ = events.send(Event::Started {
            queued: job.enqueued.elapsed(),
        });
        let mut on_text = |piece: &str| events.send(Event::Text(piece.to_owned())).is_ok();
        let outcome = engine.generate(&job.request, &mut on_text);
        waiting.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Ok(generation) => {
                generated.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    model = %name,
                    prompt_tokens = generation.prompt_tokens,
                    completion_tokens = generation.completion_tokens,
                    seconds = generation.elapsed.as_secs_f64(),
                    finish = generation.finish_reason.as_str(),
                    "generated"
                );
                let _ = events.send(Event::Done(generation));
            }
            Err(error) => {
                tracing::warn!(model = %name, %error, "generation failed");
                let _ = events.send(Event::Failed(error.to_string()));
            }
        }
    }
    tracing::debug!(model = %name, "generation thread stopped");
}
