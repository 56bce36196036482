//! The control requests: each is answered at once, or (stop, restart,
//! logs) once what it waits for happened.

use std::collections::BTreeSet;

use tokio::sync::oneshot;

use super::error::RequestError;
use super::state::Service;
use super::{Outcome, Phase, Supervisor};
use crate::api::{MemoryInfo, Request, Response, SystemInfo};
use crate::defs::*;
use crate::deps::format_cycle;
use crate::logs;
use crate::reaper;
use crate::service::{self, ServiceDef, validate_name};

impl Supervisor {
    /// Answers `request` on `reply` (now, or once it is done).
    pub(super) fn request(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        if self.shutting_down() {
            let _ = reply.send(RequestError::ShuttingDown.into());
            return;
        }
        if let Some(name) = request.service_name()
            && let Err(err) = validate_name(name)
        {
            let _ = reply.send(RequestError::InvalidName(err).into());
            return;
        }
        if !matches!(
            request,
            Request::Ping
                | Request::ListServices
                | Request::ServiceStatus { .. }
                | Request::ServiceLogs { .. }
                | Request::SystemStatus
        ) {
            tracing::info!("control request: {request:?}");
        }
        let result = match request {
            Request::Ping => Ok(Response::Pong),
            Request::ListServices => Ok(Response::ServiceList {
                services: self.services.values().map(Service::summary).collect(),
            }),
            Request::ServiceStatus { name } => match self.services.get(&name) {
                Some(svc) => Ok(Response::ServiceStatus {
                    status: svc.info(&self.config),
                }),
                None => Err(self.not_found(&name)),
            },
            Request::ServiceStart { name } => self
                .start(&name, true, &mut BTreeSet::new())
                .map(Response::success),
            Request::ServiceStop { name } => return self.stop(&name, Some(reply)),
            Request::ServiceRestart { name } => return self.restart(&name, reply),
            Request::ServiceEnable { name, now } => self.enable(&name, now),
            Request::ServiceDisable { name, now } => return self.disable(&name, now, reply),
            Request::ServiceLogs { name, lines } => return self.logs(name, lines, reply),
            Request::ServiceLogsClear { name } => self.clear_logs(&name),
            Request::SystemStatus => Ok(Response::SystemStatus {
                status: self.system_info(),
            }),
            Request::SystemReload => Ok(Response::success(self.reload())),
            Request::SystemReboot | Request::SystemShutdown => {
                let reboot = matches!(request, Request::SystemReboot);
                let (outcome, message) = match (self.ctx.pid1, reboot) {
                    (true, true) => (Outcome::Reboot, "System is rebooting"),
                    (true, false) => (Outcome::PowerOff, "System is shutting down"),
                    (false, _) => (
                        Outcome::Exit,
                        "Stopping all services; init exits (not PID 1, so no reboot or power-off)",
                    ),
                };
                tracing::info!("{message} (requested over the control socket)");
                self.phase = Phase::Ending(outcome);
                Ok(Response::success(message))
            }
        };
        let _ = reply.send(result.unwrap_or_else(Response::from));
    }

    /// No service `name`: not found, or its file is broken.
    pub(super) fn not_found(&self, name: &str) -> RequestError {
        let file = format!("/{name}{SERVICE_SUFFIX}");
        match self.broken.iter().find(|b| b.file.ends_with(&file)) {
            Some(b) => RequestError::NotLoaded {
                name: name.to_owned(),
                error: b.error.clone(),
            },
            None => RequestError::NotFound(name.to_owned()),
        }
    }

    fn clear_logs(&self, name: &str) -> Result<Response, RequestError> {
        let svc = self
            .services
            .get(name)
            .ok_or_else(|| self.not_found(name))?;
        let mut log = svc.log.lock().unwrap_or_else(|e| e.into_inner());
        log.clear().map_err(|source| RequestError::ClearLogs {
            name: name.to_owned(),
            source,
        })?;
        Ok(Response::success(format!("Logs of '{name}' cleared")))
    }

    fn enable(&mut self, name: &str, now: bool) -> Result<Response, RequestError> {
        let def = service::enable_file(&self.config.service_dir, name)
            .and_then(|path| ServiceDef::load(name, &path, true))
            .map_err(|source| RequestError::Enable {
                name: name.to_owned(),
                source,
            })?;
        self.broken
            .retain(|b| !b.file.ends_with(&format!("/{name}{SERVICE_SUFFIX}")));
        match self.services.get_mut(name) {
            Some(svc) => {
                svc.def = def;
                svc.keep();
            }
            None => {
                self.services
                    .insert(name.to_owned(), Service::new(def, &self.config));
            }
        }
        self.replan();
        tracing::info!("service '{name}' enabled");
        if !now {
            return Ok(Response::success(format!("Service '{name}' enabled")));
        }
        match self.start(name, true, &mut BTreeSet::new()) {
            Ok(message) => Ok(Response::success(format!(
                "Service '{name}' enabled; {message}"
            ))),
            Err(err) => Err(RequestError::EnabledNotStarted {
                name: name.to_owned(),
                source: Box::new(err),
            }),
        }
    }

    fn disable(&mut self, name: &str, now: bool, reply: oneshot::Sender<Response>) {
        if let Err(source) = service::disable_file(&self.config.service_dir, name) {
            let error = RequestError::Disable {
                name: name.to_owned(),
                source,
            };
            let _ = reply.send(error.into());
            return;
        }
        if let Some(svc) = self.services.get_mut(name) {
            svc.def.enabled = false;
        }
        tracing::info!("service '{name}' disabled");
        if now {
            if self.services.get(name).is_some_and(Service::active) {
                return self.stop(name, Some(reply));
            }
            // Not running, but maybe waiting to restart: cancel that.
            self.stop(name, None);
        }
        let _ = reply.send(Response::success(format!("Service '{name}' disabled")));
    }

    fn logs(&mut self, name: String, lines: usize, reply: oneshot::Sender<Response>) {
        if !self.services.contains_key(&name) {
            let _ = reply.send(self.not_found(&name).into());
            return;
        }
        let lines = lines.min(MAX_LOG_LINES);
        let dir = self.config.log_dir.clone();
        let max_files = self.config.logs.max_files;
        tokio::task::spawn_blocking(move || {
            let response = match logs::tail(&dir, &name, max_files, lines, MAX_LOG_REPLY_BYTES) {
                Ok(tail) => Response::ServiceLogs {
                    name,
                    lines: tail.lines,
                    truncated: tail.truncated,
                },
                Err(source) => RequestError::ReadLogs { name, source }.into(),
            };
            let _ = reply.send(response);
        });
    }

    fn system_info(&self) -> SystemInfo {
        SystemInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_secs: self.started.elapsed().as_secs(),
            pid1: self.ctx.pid1,
            services_total: self.services.len(),
            services_enabled: self.services.values().filter(|s| s.def.enabled).count(),
            services_active: self.services.values().filter(|s| s.active()).count(),
            service_dir: self.config.service_dir.display().to_string(),
            log_dir: self.config.log_dir.display().to_string(),
            config_source: self.config.source.to_string(),
            memory: MemoryInfo::read(),
            kernel_oom_kills: reaper::kernel_oom_kills(),
            services_oom_killed: self.services_oom_killed,
            orphans_reaped: self.orphans_reaped,
            console_lines_dropped: crate::console::dropped_lines(),
            start_order: self.plan.order.clone(),
            dependency_cycles: self.plan.cycles.iter().map(|c| format_cycle(c)).collect(),
            broken_files: self.broken.clone(),
            parent_cid: self.ctx.parent_cid,
        }
    }
}
