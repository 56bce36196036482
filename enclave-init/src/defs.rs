//! Defaults, limits and wire constants of the init system, each in one place.

use std::time::Duration;

/// Init configuration file read when neither `--config` nor `INIT_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/init.yaml";
/// Environment variable naming the init configuration file.
pub const INIT_CONFIG_ENV: &str = "INIT_CONFIG";
/// initctl configuration file read when neither `--config` nor `INITCTL_CONFIG` names one.
pub const DEFAULT_INITCTL_CONFIG_PATH: &str = "/etc/initctl.yaml";
/// Environment variable naming the initctl configuration file.
pub const INITCTL_CONFIG_ENV: &str = "INITCTL_CONFIG";
/// Environment variable overriding initctl's Unix socket path (deprecated by the spec, honoured).
pub const INIT_SOCKET_ENV: &str = "INIT_SOCKET";

/// Directory of service files.
pub const DEFAULT_SERVICE_DIR: &str = "/service";
/// Directory of service log files.
pub const DEFAULT_LOG_DIR: &str = "/log";
/// Control socket inside the enclave.
pub const DEFAULT_UNIX_SOCKET: &str = "/run/init.sock";
/// Permission bits of the control Unix socket: only its owner (root) may connect.
pub const CONTROL_SOCKET_MODE: u32 = 0o600;
/// Port of the vsock control listener.
pub const DEFAULT_CONTROL_VSOCK_PORT: u32 = 9001;
/// Where the development NSM of init's attested control channel keeps its
/// PKI (outside an enclave only).
pub const DEFAULT_CHANNEL_STATE_DIR: &str = "/var/lib/init";
/// Time limit of the attested channel's handshake on a control connection.
pub const CONTROL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest size of one log file before it is rotated (10 MiB).
pub const DEFAULT_MAX_LOG_SIZE: u64 = 10 * 1024 * 1024;
/// Rotated log files kept per service.
pub const DEFAULT_MAX_LOG_FILES: u32 = 5;
/// Host name set when PID 1 and the configuration names none.
pub const DEFAULT_HOSTNAME: &str = "enclave";
/// Longest `banner` in init.yaml (one console line).
pub const MAX_BANNER_LEN: usize = 200;
/// NSM driver module loaded when present (relative to the initial root).
pub const DEFAULT_NSM_DRIVER: &str = "nsm.ko";
/// Device node of the Nitro Secure Module.
pub const NSM_DEVICE: &str = "/dev/nsm";
/// Present when the kernel found ACPI, without which it cannot power off.
pub const ACPI_SYSFS: &str = "/sys/firmware/acpi";
/// How long to wait for `/dev/nsm` after the module loaded.
pub const NSM_DEVICE_WAIT: Duration = Duration::from_secs(2);
/// The account databases users and groups are resolved from (after the pivot).
pub const DEFAULT_PASSWD_FILE: &str = "/etc/passwd";
/// See [`DEFAULT_PASSWD_FILE`].
pub const DEFAULT_GROUP_FILE: &str = "/etc/group";
/// Largest `/etc/passwd` or `/etc/group` read.
pub const MAX_ACCOUNTS_FILE_SIZE: u64 = 4 * 1024 * 1024;
/// Longest user or group name accepted (that of useradd).
pub const MAX_ACCOUNT_NAME_LEN: usize = 32;
/// Most `SupplementaryGroups` of one service.
pub const MAX_SUPPLEMENTARY_GROUPS: usize = 64;
/// Where a relative `StateDirectory` lives, as in systemd.
pub const DEFAULT_STATE_DIRECTORY_ROOT: &str = "/var/lib";
/// Permission bits of a state directory unless `StateDirectoryMode` says otherwise.
pub const DEFAULT_STATE_DIRECTORY_MODE: u32 = 0o700;
/// Environment variable naming a service's state directories (`:`-separated), as in systemd.
pub const STATE_DIRECTORY_ENV: &str = "STATE_DIRECTORY";
/// Directory switched into when `pivot_root` is on.
pub const DEFAULT_PIVOT_ROOT_DIR: &str = "/rootfs";

/// vsock port the parent listens on for the boot heartbeat.
pub const HEARTBEAT_PORT: u32 = 9000;
/// The byte sent to the parent and expected back.
pub const HEARTBEAT_BYTE: u8 = 0xB7;
/// Parent CID seen from an AWS Nitro enclave.
pub const NITRO_PARENT_CID: u32 = 3;
/// Parent CID seen from a local QEMU micro-VM (VMADDR_CID_HOST).
pub const VM_HOST_CID: u32 = 2;
/// Time allowed for one heartbeat attempt (connect, write, read) per CID.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);
/// Environment variable that hands the parent CID to every service.
pub const PARENT_CID_ENV: &str = "ENCLAVE_PARENT_CID";

/// Compatibility with AWS's bootstrap init: environment file, one `KEY=VALUE` a line.
pub const COMPAT_ENV_FILE: &str = "/env";
/// Compatibility with AWS's bootstrap init: command file, one argument a line.
pub const COMPAT_CMD_FILE: &str = "/cmd";
/// Name of the service that runs `/cmd`.
pub const COMPAT_CMD_SERVICE: &str = "cmd";
/// Largest `/env` or `/cmd` file read.
pub const MAX_COMPAT_FILE_SIZE: u64 = 1024 * 1024;

/// `PATH` given to services when neither the environment nor the service sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Suffix of an enabled service file.
pub const SERVICE_SUFFIX: &str = ".service";
/// Suffix of a disabled service file.
pub const DISABLED_SUFFIX: &str = ".service.disabled";
/// Largest service file read.
pub const MAX_SERVICE_FILE_SIZE: u64 = 256 * 1024;
/// Largest configuration file read.
pub const MAX_CONFIG_FILE_SIZE: u64 = 1024 * 1024;
/// Longest service name.
pub const MAX_SERVICE_NAME_LEN: usize = 128;
/// Most service files loaded from the service directory.
pub const MAX_SERVICES: usize = 4096;
/// `RestartSec` when the service file gives none.
pub const DEFAULT_RESTART_SEC: f64 = 5.0;
/// Longest `RestartSec` accepted (one day).
pub const MAX_RESTART_SEC: f64 = 86_400.0;
/// Shortest pause before a restart, whatever `RestartSec` says: a service
/// that exits at once cannot turn PID 1 into a busy loop.
pub const MIN_RESTART_DELAY: Duration = Duration::from_millis(100);
/// Time a stopping service gets between SIGTERM and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a process after SIGKILL before giving up on it.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// Length of the frame header: a big-endian `u32` payload length.
pub const FRAME_HEADER_LEN: usize = 4;
/// Largest request payload accepted by the server.
pub const MAX_REQUEST_FRAME: usize = 64 * 1024;
/// Largest response payload sent by the server or accepted by initctl.
pub const MAX_RESPONSE_FRAME: usize = 16 * 1024 * 1024;
/// Control connections served at once per listener.
pub const MAX_CONTROL_CONNECTIONS: usize = 64;
/// A control connection idle for this long (no complete request) is closed.
pub const CONTROL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to write one response.
pub const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time initctl waits for init's answer (stop waits for the grace period).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests queued for the supervisor at once.
pub const SUPERVISOR_QUEUE: usize = 256;

/// Lines `initctl logs` shows by default.
pub const DEFAULT_LOG_LINES: usize = 50;
/// Most lines one `logs` request may ask for.
pub const MAX_LOG_LINES: usize = 100_000;
/// Most bytes of log text in one `logs` reply (JSON escaping may grow it up
/// to six times, which still fits [`MAX_RESPONSE_FRAME`]).
pub const MAX_LOG_REPLY_BYTES: usize = 2 * 1024 * 1024;
/// A service output line longer than this is cut into several log lines.
pub const MAX_LOG_LINE_LEN: usize = 16 * 1024;
/// After a service exited, its pipe is read until it stays empty this long
/// before init's exit note goes into the log.
pub const EXIT_DRAIN_WAIT: Duration = Duration::from_millis(20);
/// Read size of the log capture.
pub const LOG_READ_CHUNK: usize = 16 * 1024;

/// Lines of init's own output queued for the console; past this they are
/// dropped (and counted) instead of blocking init.
pub const CONSOLE_QUEUE_LINES: usize = 512;
