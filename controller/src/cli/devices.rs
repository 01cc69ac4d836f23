//! `airlock devices list|enroll`.

use super::client::{self, parse};
use super::render::table;
use super::{out, out_json, CliError, Ctx};
use crate::registry::Device;
use clap::Subcommand;

/// `devices` subcommands.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List enrolled devices
    #[command(after_help = "Examples:\n  airlock devices list\n  airlock --json devices list | jq '.[].id'")]
    List,
    /// Enrol a device (admin), or update the attributes of an enrolled one
    #[command(
        after_help = "Examples:\n  airlock devices enroll --id gw-0001 --public-key 3b6a27bc...  --hardware gw-m4 \\\n      --region eu-west --environment production --firmware 2.3.9 --tag pilot --tag rack-7"
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
        DevicesCommand::Enroll { id, public_key, hardware, region, environment, firmware, tags } => {
            let d = Device { id, public_key, hardware, region, environment, firmware, tags, enrolled_at: 0 };
            check(&d)?;
            let v = client::enroll(&ctx.client()?, &d).await?;
            if ctx.json {
                return out_json(&v);
            }
            let d: Device = parse("POST /api/devices", v)?;
            out(&format!(
                "enrolled {} ({}, {}, {}, firmware {})\n",
                d.id, d.hardware, d.region, d.environment, d.firmware
            ))
        }
    }
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
