//! The loaded models, by name.
//!
//! Models are listed in the order they were loaded; a request without a
//! model name goes to the first. Loading runs on the blocking pool, one load
//! at a time, and at most [`MAX_MODELS`] models are kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::defs::{MAX_MODEL_NAME, MAX_MODELS};
use crate::engine::{Engine, LoadError};
use crate::queue::ModelHandle;

/// Why a model cannot be found or loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No model has this name.
    #[error("model {0:?} is not loaded")]
    NotFound(String),
    /// No model is loaded at all.
    #[error("no model is loaded (POST /load_model first)")]
    Empty,
    /// The name is taken.
    #[error("a model named {0:?} is already loaded")]
    Exists(String),
    /// The limit of loaded models is reached.
    #[error("{MAX_MODELS} models are loaded already")]
    Full,
    /// The name is not usable.
    #[error("a model name is 1 to {MAX_MODEL_NAME} letters, digits, '.', '_' or '-', not {0:?}")]
    BadName(String),
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The generation thread could not be started.
    #[error("starting the generation thread: {0}")]
    Thread(std::io::Error),
    /// The loading task died.
    #[error("the loading task failed: {0}")]
    Task(String),
}

/// The name a model file is served under: its file stem
/// (`SmolLM2-135M-Instruct.Q4_1` for `SmolLM2-135M-Instruct.Q4_1.gguf`).
pub fn default_name(path: &Path) -> Option<String> {
    path.file_stem()
        .and_then(|stem| stem.to_str())
        .map(str::to_owned)
}

/// Whether `name` is a usable model name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MODEL_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The loaded models.
pub struct Registry {
    models: RwLock<Vec<Arc<ModelHandle>>>,
    loading: tokio::sync::Mutex<()>,
    queue_capacity: usize,
}

impl Registry {
    /// An empty registry whose models queue up to `queue_capacity` requests each.
    pub fn new(queue_capacity: usize) -> Self {
        Self {
            models: RwLock::new(Vec::new()),
            loading: tokio::sync::Mutex::new(()),
            queue_capacity,
        }
    }

    /// Requests each model queues besides the one it runs.
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// Every loaded model, in load order.
    pub fn list(&self) -> Vec<Arc<ModelHandle>> {
        match self.models.read() {
            Ok(models) => models.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The model named `name`, or the first one when `name` is `None`.
    pub fn get(&self, name: Option<&str>) -> Result<Arc<ModelHandle>, RegistryError> {
        let models = self.list();
        match name {
            None => models.first().cloned().ok_or(RegistryError::Empty),
            Some(name) => models
                .into_iter()
                .find(|model| model.info().name == name)
                .ok_or_else(|| RegistryError::NotFound(name.to_owned())),
        }
    }

    /// Loads the GGUF at `path` under `name` (default: its file stem).
    pub async fn load(
        &self,
        path: PathBuf,
        name: Option<String>,
    ) -> Result<Arc<ModelHandle>, RegistryError> {
        let name = name.or_else(|| default_name(&path)).unwrap_or_default();
        if !valid_name(&name) {
            return Err(RegistryError::BadName(name));
        }
        let _one_at_a_time = self.loading.lock().await;
        self.check_room(&name)?;
        let queue_capacity = self.queue_capacity;
        let handle = tokio::task::spawn_blocking(move || {
            let engine = Engine::load(&path, &name)?;
            ModelHandle::start(engine, queue_capacity).map_err(RegistryError::Thread)
        })
        .await
        .map_err(|error| RegistryError::Task(error.to_string()))??;
        let handle = Arc::new(handle);
        let mut models = match self.models.write() {
            Ok(models) => models,
            Err(poisoned) => poisoned.into_inner(),
        };
        models.push(Arc::clone(&handle));
        Ok(handle)
    }

    fn check_room(&self, name: &str) -> Result<(), RegistryError> {
        let models = self.list();
        if models.iter().any(|model| model.info().name == name) {
            return Err(RegistryError::Exists(name.to_owned()));
        }
        if models.len() >= MAX_MODELS {
            return Err(RegistryError::Full);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_file_stem() {
        assert_eq!(
            default_name(Path::new("/apps/SmolLM2-135M-Instruct.Q4_1.gguf")).as_deref(),
            Some("SmolLM2-135M-Instruct.Q4_1")
        );
        assert!(valid_name("SmolLM2-135M-Instruct.Q4_1"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(MAX_MODEL_NAME + 1)));
    }

    #[tokio::test]
    async fn an_empty_registry_answers_with_errors() {
        let registry = Registry::new(4);
        assert!(matches!(registry.get(None), Err(RegistryError::Empty)));
        assert!(matches!(
            registry.get(Some("x")),
            Err(RegistryError::NotFound(_))
        ));
        let missing = registry
            .load(PathBuf::from("/nonexistent/model.gguf"), None)
            .await;
        assert!(matches!(
            missing,
            Err(RegistryError::Load(LoadError::Hash(_)))
        ));
        let bad = registry
            .load(PathBuf::from("/x/y.gguf"), Some("a b".into()))
            .await;
        assert!(matches!(bad, Err(RegistryError::BadName(_))));
    }

    #[tokio::test]
    async fn a_file_that_is_not_gguf_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.gguf");
        std::fs::write(&path, b"not a model at all").unwrap();
        let registry = Registry::new(4);
        let error = registry.load(path, None).await.err().unwrap();
        assert!(
            matches!(error, RegistryError::Load(LoadError::Gguf { .. })),
            "{error}"
        );
        assert!(registry.list().is_empty());
    }
}
