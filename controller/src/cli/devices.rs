//! `airlock devices list|enroll`. Enrolment prints the device's broker login (its password only
//! this once) and the TrustRoot to provision it with.

use super::client::{self, parse};
use super::render::table;
use super::{out, out_json, CliError, Ctx};
use crate::registry::{Device, Enrolled};
use clap::Subcommand;
use std::fmt::Write as _;
use std::path::PathBuf;

/// `devices` subcommands.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List enrolled devices
    #[command(after_help = "Examples:\n  airlock devices list\n  airlock --json devices list | jq '.[].id'")]
    List,
    /// Enrol a device (admin): prints its broker login and the TrustRoot to provision it with
    #[command(
        after_help = "Examples:\n  airlock devices enroll --id gw-0001 --public-key 3b6a27bc...  --hardware gw-m4 \\\n      --region eu-west --environment production --firmware 2.3.9 --tag pilot --tag rack-7\n  airlock devices enroll --id gw-0001 ... --trust-root-out gw-0001.trust\n\nThe broker password is shown once (the controller keeps only its hash). Enrolling an id again\nupdates its attributes and rotates its password: the previous one stops working."
    )]
    Enroll {
        /// Device id (letters, digits, . _ -).
        #[arg(long)]
        id: String,
        /// Its Ed25519 public key, 64 hex digits (its reports are signed with it).
        #[arg(long, value_name = "HEX")]
        public_key: String,
        /// Hardware model.
        #[arg(long, value_name = "M")]
        hardware: String,
        /// Region.
        #[arg(long, value_name = "R")]
        region: String,
        /// Environment (production, staging, lab, test, ...).
        #[arg(long, value_name = "E")]
        environment: String,
        /// Firmware version it runs (major.minor.patch).
        #[arg(long, value_name = "V")]
        firmware: String,
        /// A tag (repeatable).
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// Also write the signed TrustRoot (raw bytes) to this file, for provisioning.
        #[arg(long, value_name = "FILE")]
        trust_root_out: Option<PathBuf>,
    },
}

/// Runs a `devices` subcommand.
pub async fn run(ctx: &Ctx, cmd: DevicesCommand) -> Result<(), CliError> {
    match cmd {
        DevicesCommand::List => {
            let v = client::devices(&ctx.client()?).await?;
            if ctx.json {
                return out_json(&v);
            }
            let devices: Vec<Device> = parse("GET /api/devices", v)?;
            out(&list_text(&devices))
        }
        DevicesCommand::Enroll { id, public_key, hardware, region, environment, firmware, tags, trust_root_out } => {
            let d = Device { id, public_key, hardware, region, environment, firmware, tags, enrolled_at: 0 };
            check(&d)?;
            let v = client::enroll(&ctx.client()?, &d).await?;
            let e: Enrolled = parse("POST /api/devices", v.clone())?;
            if let Some(path) = &trust_root_out {
                let bytes = hex::decode(&e.trust_root_hex).map_err(|err| CliError::Reply {
                    what: "POST /api/devices".into(),
                    detail: format!("trust_root_hex: {err}"),
                })?;
                crate::server::datadir::write_private(path, &bytes).map_err(|err| {
                    CliError::io(format!("writing {}", path.display()), std::io::Error::other(err.to_string()))
                })?;
            }
            if ctx.json {
                return out_json(&v);
            }
            out(&enroll_text(&e, trust_root_out.as_deref()))
        }
    }
}

/// What enrolment printed: the device, its broker login, the TrustRoot.
fn enroll_text(e: &Enrolled, trust_root_out: Option<&std::path::Path>) -> String {
    let d = &e.device;
    let mut o = String::new();
    let verb = if e.rotated { "re-enrolled" } else { "enrolled" };
    let _ = writeln!(o, "{verb} {} ({}, {}, {}, firmware {})", d.id, d.hardware, d.region, d.environment, d.firmware);
    if e.rotated {
        let _ = writeln!(o, "its broker password was rotated: the previous one no longer works");
    }
    let _ = writeln!(o, "\nbroker login (the password is shown only now; the controller keeps its hash):");
    let broker = match (&e.mqtt.url, e.mqtt.embedded) {
        (Some(url), true) => format!("{url} (the controller's embedded broker)"),
        (Some(url), false) => format!("{url} (external broker)"),
        (None, _) => "(the controller runs without MQTT)".to_string(),
    };
    let _ = writeln!(o, "  broker:    {broker}");
    let _ = writeln!(o, "  client id: {}", e.mqtt.username);
    let _ = writeln!(o, "  username:  {}", e.mqtt.username);
    let _ = writeln!(o, "  password:  {}", e.mqtt.password);
    if !e.mqtt.embedded {
        let _ = writeln!(
            o,
            "  add it to Mosquitto: mosquitto_passwd -b /etc/mosquitto/airlock/passwd {} {}\n                       \
             then reload it (kill -HUP); see deploy/mosquitto/README.md",
            e.mqtt.username, e.mqtt.password
        );
    }
    let _ = writeln!(o, "\ntrust root v{} (provision the device with it):", e.trust_root_version);
    match trust_root_out {
        Some(path) => {
            let _ = writeln!(o, "  written to {} ({} bytes)", path.display(), e.trust_root_hex.len() / 2);
        }
        None => {
            let _ = writeln!(o, "  {}", e.trust_root_hex);
        }
    }
    o
}

/// What can be checked before asking the server.
fn check(d: &Device) -> Result<(), CliError> {
    airlock_proto::check_device_id(&d.id).map_err(|_| {
        CliError::Usage(format!("--id {:?}: letters, digits, . _ - (as devices name themselves)", d.id))
    })?;
    crate::keys::parse_public(d.public_key.trim()).ok_or_else(|| {
        CliError::Usage(format!("--public-key {:?}: an Ed25519 public key, 64 hex digits", d.public_key))
    })?;
    crate::workflow::spec::parse_version(&d.firmware)
        .ok_or_else(|| CliError::Usage(format!("--firmware {:?}: major.minor.patch", d.firmware)))?;
    Ok(())
}

fn list_text(devices: &[Device]) -> String {
    if devices.is_empty() {
        return "no devices enrolled\n".into();
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.hardware.clone(),
                d.region.clone(),
                d.environment.clone(),
                d.firmware.clone(),
                d.tags.join(","),
            ]
        })
        .collect();
    let mut o = table(&["id", "hardware", "region", "environment", "firmware", "tags"], &rows);
    let n = devices.len();
    o.push_str(&format!("{n} device{}\n", if n == 1 { "" } else { "s" }));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            id: "gw-0001".into(),
            public_key: crate::keys::public_hex(&ed25519_dalek::SigningKey::from_bytes(&[3; 32])),
            hardware: "gw-m4".into(),
            region: "eu-west".into(),
            environment: "production".into(),
            firmware: "2.3.9".into(),
            tags: vec!["pilot".into()],
            enrolled_at: 0,
        }
    }

    #[test]
    fn devices_list_as_a_table_with_a_count() {
        assert_eq!(
            list_text(&[device()]),
            "id       hardware  region   environment  firmware  tags\n\
             gw-0001  gw-m4     eu-west  production   2.3.9     pilot\n1 device\n"
        );
    }

    fn enrolled(rotated: bool, embedded: bool) -> Enrolled {
        Enrolled {
            device: device(),
            mqtt: crate::registry::BrokerLogin {
                url: Some("mqtt://127.0.0.1:1884".into()),
                embedded,
                username: "gw-0001".into(),
                password: "5ecret".into(),
            },
            rotated,
            trust_root_version: 3,
            trust_root_hex: "0a0b".into(),
        }
    }

    #[test]
    fn enrolment_prints_the_login_once_and_the_trust_root() {
        let text = enroll_text(&enrolled(false, true), None);
        assert!(text.starts_with("enrolled gw-0001 (gw-m4, eu-west, production, firmware 2.3.9)\n"), "{text}");
        assert!(text.contains("  broker:    mqtt://127.0.0.1:1884 (the controller's embedded broker)\n"), "{text}");
        assert!(text.contains("  username:  gw-0001\n  password:  5ecret\n"), "{text}");
        assert!(text.contains("trust root v3 (provision the device with it):\n  0a0b\n"), "{text}");
        assert!(!text.contains("mosquitto_passwd"), "{text}");
    }

    #[test]
    fn re_enrolment_says_the_password_was_rotated_and_an_external_broker_needs_mosquitto_passwd() {
        let text = enroll_text(&enrolled(true, false), Some(std::path::Path::new("gw.trust")));
        assert!(text.starts_with("re-enrolled gw-0001"), "{text}");
        assert!(text.contains("previous one no longer works"), "{text}");
        assert!(text.contains("mosquitto_passwd -b /etc/mosquitto/airlock/passwd gw-0001 5ecret"), "{text}");
        assert!(text.contains("written to gw.trust (2 bytes)"), "{text}");
    }

    #[test]
    fn a_bad_key_id_or_version_is_a_usage_error_before_any_request() {
        assert!(check(&device()).is_ok());
        let bad_key = Device { public_key: "abc".into(), ..device() };
        assert!(matches!(check(&bad_key), Err(CliError::Usage(m)) if m.contains("--public-key")));
        let bad_id = Device { id: "gw 1/2".into(), ..device() };
        assert!(matches!(check(&bad_id), Err(CliError::Usage(m)) if m.contains("--id")));
        let bad_fw = Device { firmware: "2.3".into(), ..device() };
        assert!(matches!(check(&bad_fw), Err(CliError::Usage(m)) if m.contains("--firmware")));
    }
}
