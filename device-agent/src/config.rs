//! `agent.toml`: what a gateway's agent needs to know about itself and its broker.
//!
//! ```toml
//! device_id = "gw-0001"
//! data_dir = "/var/lib/airlock"      # flash.bin, firmware.bin, firmware.json, config.json
//! slot_size = 1048576                # bytes per A/B slot (rounded up to 4 KiB)
//! # reboot_command = ["systemctl", "reboot"]   # absent: reboots are simulated in process
//!
//! [mqtt]
//! url = "mqtt://broker.example:1883"
//! username = "gw-0001"               # broker credentials issued at enrolment
//! password = "..."
//! keepalive_secs = 30
//! backoff_min_ms = 500
//! backoff_max_ms = 30000
//!
//! [health]
//! command = ["/usr/local/bin/gateway-health"]   # exit 0 = healthy
//! timeout_secs = 60
//!
//! [chunks]
//! window = 4
//! timeout_secs = 5
//!
//! [provision]                        # only read by `airlock-agent provision`
//! hardware = "gw-m4"
//! min_tier = "auto_pass"
//! key_file = "/etc/airlock/device.key"
//! trust_root_file = "/etc/airlock/trust-root.bin"
//! factory_image = "/usr/share/airlock/factory.img"
//! factory_version = "1.0.0"
//! factory_security_counter = 1
//! ```

use crate::error::AgentError;
use airlock_agent_core::{Layout, Settings};
use airlock_proto::{Tier, Version};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Erase sector of the flash file (the [`crate::FileFlash`] sector).
pub const ERASE: u32 = crate::file_flash::SECTOR as u32;

/// The agent's configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This device's id: its MQTT client id and topic level, and its cohort leaf.
    pub device_id: String,
    /// Holds `flash.bin` and the exported running image and config.
    pub data_dir: PathBuf,
    /// Bytes per image slot.
    #[serde(default = "default_slot_size")]
    pub slot_size: u32,
    /// The broker.
    pub mqtt: MqttConfig,
    /// The health check that decides confirm or revert.
    pub health: HealthConfig,
    /// Chunk flow control.
    #[serde(default)]
    pub chunks: ChunkConfig,
    /// A command that reboots the gateway (`["systemctl", "reboot"]`). Absent: the runtime
    /// simulates the reboot in process (feeds the core a fresh boot), which is what a gateway
    /// whose "firmware" is an application bundle wants, and what tests and the simulator use.
    #[serde(default)]
    pub reboot_command: Option<Vec<String>>,
    /// First-time setup, used by `airlock-agent provision`.
    #[serde(default)]
    pub provision: Option<ProvisionConfig>,
    /// Write the running image and config to `DATA/firmware.bin` and `DATA/config.json` for the
    /// rest of the gateway (default). A host where nothing reads them (the simulator, which
    /// runs thousands of agents in one process) turns it off; the health check then sees
    /// paths that do not exist.
    #[serde(default = "yes")]
    pub export_files: bool,
}

fn yes() -> bool {
    true
}

/// Broker connection.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` (or `tcp://`; port 1883 if absent). TLS is not built in.
    pub url: String,
    /// Broker username.
    #[serde(default)]
    pub username: Option<String>,
    /// Broker password.
    #[serde(default)]
    pub password: Option<String>,
    /// MQTT keepalive.
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u64,
    /// First reconnect delay; doubled after each failure up to `backoff_max_ms`.
    #[serde(default = "default_backoff_min")]
    pub backoff_min_ms: u64,
    /// Longest reconnect delay.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("keepalive_secs", &self.keepalive_secs)
            .field("backoff_min_ms", &self.backoff_min_ms)
            .field("backoff_max_ms", &self.backoff_max_ms)
            .finish()
    }
}

/// The health check: a command run after a test boot or a trial config; exit status 0 within
/// the timeout confirms, anything else (non-zero, killed, timed out, not startable) reverts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Program and arguments (no shell).
    pub command: Vec<String>,
    /// Longest run before the check counts as failed.
    #[serde(default = "default_health_timeout")]
    pub timeout_secs: u64,
}

/// Chunk flow control ([`Settings::window`], [`Settings::chunk_timeout_secs`]).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkConfig {
    /// Chunks requested ahead.
    #[serde(default = "default_window")]
    pub window: u8,
    /// Re-request from the last good byte after this long without a chunk.
    #[serde(default = "default_chunk_timeout")]
    pub timeout_secs: u64,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig { window: default_window(), timeout_secs: default_chunk_timeout() }
    }
}

/// What `airlock-agent provision` writes into a fresh flash file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionConfig {
    /// Hardware model; firmware for another model is refused.
    pub hardware: String,
    /// Lowest tier this device accepts (`auto_pass`, `single`, `two_person`, `expert`).
    #[serde(default = "default_tier")]
    pub min_tier: Tier,
    /// The device's Ed25519 key (`airlock-ed25519-seed-v1 <64 hex digits>`).
    pub key_file: PathBuf,
    /// The signed TrustRoot, as the controller issued it (binary).
    pub trust_root_file: PathBuf,
    /// The factory image, programmed into slot A.
    pub factory_image: PathBuf,
    /// Its version, `major.minor.patch`.
    pub factory_version: String,
    /// Its security counter (required: the floor every later image is held to).
    pub factory_security_counter: u32,
}

fn default_slot_size() -> u32 {
    1024 * 1024
}
fn default_keepalive() -> u64 {
    30
}
fn default_backoff_min() -> u64 {
    500
}
fn default_backoff_max() -> u64 {
    30_000
}
fn default_health_timeout() -> u64 {
    60
}
fn default_window() -> u8 {
    Settings::default().window
}
fn default_chunk_timeout() -> u64 {
    Settings::default().chunk_timeout_secs
}
fn default_tier() -> Tier {
    Tier::AutoPass
}

impl AgentConfig {
    /// A configuration with every tunable at its default; the health check must still be set.
    pub fn new(device_id: &str, mqtt_url: &str, data_dir: &Path, health_command: &[&str]) -> Self {
        AgentConfig {
            device_id: device_id.to_string(),
            data_dir: data_dir.to_path_buf(),
            slot_size: default_slot_size(),
            mqtt: MqttConfig {
                url: mqtt_url.to_string(),
                username: None,
                password: None,
                keepalive_secs: default_keepalive(),
                backoff_min_ms: default_backoff_min(),
                backoff_max_ms: default_backoff_max(),
            },
            health: HealthConfig {
                command: health_command.iter().map(|s| s.to_string()).collect(),
                timeout_secs: default_health_timeout(),
            },
            chunks: ChunkConfig::default(),
            reboot_command: None,
            provision: None,
            export_files: true,
        }
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::file(path, e))?;
        Self::from_toml(&text).map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, AgentError> {
        let config: AgentConfig = toml::from_str(text).map_err(|e| AgentError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the type cannot: a well-formed id and URL, a health command, sane timings.
    pub fn validate(&self) -> Result<(), AgentError> {
        let bad = |m: &str| Err(AgentError::Config(m.to_string()));
        if airlock_proto::check_device_id(&self.device_id).is_err() {
            return bad("device_id: 1 to 64 of [A-Za-z0-9._-]");
        }
        self.broker()?;
        if self.health.command.first().is_none_or(|p| p.is_empty()) {
            return bad("health.command: a program to run is required (exit 0 = healthy)");
        }
        if self.health.timeout_secs == 0 {
            return bad("health.timeout_secs must be at least 1");
        }
        if self.mqtt.keepalive_secs < 5 {
            return bad("mqtt.keepalive_secs must be at least 5");
        }
        if self.mqtt.backoff_min_ms == 0 || self.mqtt.backoff_min_ms > self.mqtt.backoff_max_ms {
            return bad("mqtt: need 0 < backoff_min_ms <= backoff_max_ms");
        }
        if self.slot_size == 0 || self.slot_size > 1 << 30 {
            return bad("slot_size: 1 byte to 1 GiB");
        }
        if self.chunks.window == 0 || self.chunks.timeout_secs == 0 {
            return bad("chunks: window and timeout_secs must be at least 1");
        }
        if self.reboot_command.as_ref().is_some_and(|c| c.first().is_none_or(|p| p.is_empty())) {
            return bad("reboot_command: a program to run, or leave it out");
        }
        Ok(())
    }

    /// Host and port from the MQTT URL.
    pub fn broker(&self) -> Result<(String, u16), AgentError> {
        parse_mqtt_url(&self.mqtt.url)
    }

    /// The core's tuning.
    pub fn settings(&self) -> Settings {
        Settings { window: self.chunks.window, chunk_timeout_secs: self.chunks.timeout_secs, ..Settings::default() }
    }

    /// The flash layout: eight record regions, then slots A and B.
    pub fn layout(&self) -> Layout {
        Layout::contiguous(ERASE, self.slot_size)
    }

    /// Size of `flash.bin`.
    pub fn flash_size(&self) -> u64 {
        u64::from(self.layout().end())
    }

    /// `DATA/flash.bin`.
    pub fn flash_path(&self) -> PathBuf {
        self.data_dir.join("flash.bin")
    }

    /// `DATA/firmware.bin`: the running image, exported at every boot.
    pub fn firmware_path(&self) -> PathBuf {
        self.data_dir.join("firmware.bin")
    }

    /// `DATA/config.json`: the config in effect.
    pub fn config_path(&self) -> PathBuf {
        self.data_dir.join("config.json")
    }

    /// Health check timeout.
    pub fn health_timeout(&self) -> Duration {
        Duration::from_secs(self.health.timeout_secs)
    }
}

/// `mqtt://host[:port]` or `tcp://host[:port]`, nothing after the authority.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), AgentError> {
    let bad = || AgentError::Config(format!("mqtt.url {url:?}: expected mqtt://host:port"));
    let rest = url.strip_prefix("mqtt://").or_else(|| url.strip_prefix("tcp://")).ok_or_else(bad)?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(bad());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = if after.is_empty() { None } else { Some(after.strip_prefix(':').ok_or_else(bad)?) };
            (h, port)
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
        None => 1883,
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// `major.minor.patch`.
pub fn parse_version(s: &str) -> Result<Version, AgentError> {
    let bad = || AgentError::Config(format!("version {s:?}: expected major.minor.patch"));
    let mut parts = s.trim().split('.').map(|p| p.parse::<u16>().map_err(|_| bad()));
    let v =
        Version::new(parts.next().ok_or_else(bad)??, parts.next().ok_or_else(bad)??, parts.next().ok_or_else(bad)??);
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in this module's docs, with paths a test can hold.
    const EXAMPLE: &str = r#"
device_id = "gw-0001"
data_dir = "/var/lib/airlock"
slot_size = 1048576

[mqtt]
url = "mqtt://broker.example:1883"
username = "gw-0001"
password = "s3cret"

[health]
command = ["/usr/local/bin/gateway-health", "--quick"]

[provision]
hardware = "gw-m4"
min_tier = "single"
key_file = "/etc/airlock/device.key"
trust_root_file = "/etc/airlock/trust-root.bin"
factory_image = "/usr/share/airlock/factory.img"
factory_version = "1.0.0"
factory_security_counter = 2
"#;

    #[test]
    fn the_documented_example_parses_with_defaults_filled_in() {
        let c = AgentConfig::from_toml(EXAMPLE).unwrap();
        assert_eq!(c.broker().unwrap(), ("broker.example".to_string(), 1883));
        assert_eq!((c.mqtt.keepalive_secs, c.mqtt.backoff_min_ms, c.mqtt.backoff_max_ms), (30, 500, 30_000));
        assert_eq!((c.chunks.window, c.chunks.timeout_secs, c.health.timeout_secs), (4, 5, 60));
        assert_eq!(c.provision.as_ref().map(|p| (p.min_tier, p.factory_security_counter)), Some((Tier::Single, 2)));
        assert_eq!(c.flash_size(), 8 * 4096 + 2 * 1024 * 1024);
        assert!(!format!("{c:?}").contains("s3cret"), "the password leaked into Debug");
    }

    #[test]
    fn a_config_without_a_health_command_or_with_an_unknown_key_is_refused() {
        let no_health = EXAMPLE.replace(r#"command = ["/usr/local/bin/gateway-health", "--quick"]"#, "command = []");
        assert!(matches!(AgentConfig::from_toml(&no_health), Err(AgentError::Config(m)) if m.contains("health")));
        let typo = EXAMPLE.replace("slot_size", "slotsize");
        assert!(matches!(AgentConfig::from_toml(&typo), Err(AgentError::Config(m)) if m.contains("slotsize")));
        let bad_id = EXAMPLE.replace("\"gw-0001\"\ndata_dir", "\"gw/0001\"\ndata_dir");
        assert!(matches!(AgentConfig::from_toml(&bad_id), Err(AgentError::Config(m)) if m.contains("device_id")));
    }

    #[test]
    fn mqtt_urls_name_a_host_and_a_port_and_versions_three_numbers() {
        let ok = |u: &str| parse_mqtt_url(u).unwrap();
        assert_eq!(ok("mqtt://127.0.0.1:1884"), ("127.0.0.1".to_string(), 1884));
        assert_eq!(ok("tcp://broker"), ("broker".to_string(), 1883));
        assert_eq!(ok("mqtt://[::1]:1885/"), ("::1".to_string(), 1885));
        for bad in ["mqtts://b:8883", "b:1883", "mqtt://", "mqtt://b:0", "mqtt://b:x", "mqtt://u@b", "mqtt://b/t"] {
            assert!(parse_mqtt_url(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(parse_version("1.20.3").unwrap(), Version::new(1, 20, 3));
        for bad in ["1.2", "1.2.3.4", "1.x.3", ""] {
            assert!(parse_version(bad).is_err(), "{bad} accepted");
        }
    }
}
