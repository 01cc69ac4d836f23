//! The device registry, cohort selectors and the preview an approver sees.

use crate::cohort::{Cohort, CohortError};
use crate::store::{corrupt, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use std::collections::{BTreeMap, BTreeSet};

/// An enrolled device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Device id (Merkle leaf, topic level).
    pub id: String,
    /// Ed25519 public key, hex: its reports are signed with it.
    pub public_key: String,
    /// Hardware model.
    pub hardware: String,
    /// Region.
    pub region: String,
    /// Environment (production, staging, lab, test, ...).
    pub environment: String,
    /// Firmware version it last reported.
    pub firmware: String,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// Enrolment time, unix ms.
    pub enrolled_at: i64,
}

/// What enrolling a device returns: the device, its broker login (the password is shown this
/// once; only its hash is kept) and the TrustRoot to provision it with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    /// The device as enrolled.
    #[serde(flatten)]
    pub device: Device,
    /// Its broker login.
    pub mqtt: BrokerLogin,
    /// The id was already enrolled: its previous broker password no longer works.
    pub rotated: bool,
    /// Version of the TrustRoot below.
    pub trust_root_version: u32,
    /// The signed TrustRoot, hex: what the device is provisioned with.
    pub trust_root_hex: String,
}

/// A device's broker login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerLogin {
    /// Where the device connects (`mqtt://host:port`); `None` when the controller runs without
    /// MQTT.
    pub url: Option<String>,
    /// The broker is the controller's embedded one (the login works at once) rather than an
    /// external one (add it there: `deploy/mosquitto/README.md`).
    pub embedded: bool,
    /// MQTT username and client id: the device id.
    pub username: String,
    /// The password, shown once.
    pub password: String,
}

/// Which devices a proposal is for. Every filter given must hold; `ids` names devices
/// explicitly; `share` then takes that share of the matching devices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// In one of these environments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// In one of these regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub region: Vec<String>,
    /// One of these hardware models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hardware: Vec<String>,
    /// Running one of these firmware versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firmware: Vec<String>,
    /// Carrying every one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Exactly these devices (each must be enrolled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// This share (0 < share <= 1) of the matching devices, chosen by a stable hash of the id so
    /// a canary spreads across regions and models rather than taking the first ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
}

/// Why a selector resolves to nothing usable.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SelectorError {
    /// `share` outside (0, 1].
    #[error("share {0} must be above 0 and at most 1")]
    Share(f64),
    /// Explicit ids that are not enrolled.
    #[error("unknown device ids: {}", .0.join(", "))]
    UnknownIds(Vec<String>),
    /// Nothing matched.
    #[error("the selector matches no device")]
    Empty,
    /// The ids do not form a cohort.
    #[error(transparent)]
    Cohort(#[from] CohortError),
}

/// A resolved cohort with what the approval card shows about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Preview {
    /// Devices in the cohort.
    pub count: u32,
    /// Devices in the fleet.
    pub fleet: u32,
    /// `count / fleet`.
    pub share: f64,
    /// Count by hardware model.
    pub by_hardware: BTreeMap<String, u32>,
    /// Count by region.
    pub by_region: BTreeMap<String, u32>,
    /// Count by current firmware version.
    pub by_firmware: BTreeMap<String, u32>,
    /// Count by environment.
    pub by_environment: BTreeMap<String, u32>,
    /// Up to ten ids, spread over the cohort.
    pub sample: Vec<String>,
    /// Merkle root of the cohort, hex.
    pub root: String,
}

/// Resolves `sel` against the fleet: the cohort and its preview.
pub fn resolve(fleet: &[Device], sel: &Selector) -> Result<(Cohort, Preview), SelectorError> {
    if let Some(s) = sel.share {
        if !(s > 0.0 && s <= 1.0) {
            return Err(SelectorError::Share(s));
        }
    }
    let known: BTreeSet<&str> = fleet.iter().map(|d| d.id.as_str()).collect();
    let unknown: Vec<String> = sel.ids.iter().filter(|id| !known.contains(id.as_str())).cloned().collect();
    if !unknown.is_empty() {
        return Err(SelectorError::UnknownIds(unknown));
    }
    let any_of = |want: &[String], have: &str| want.is_empty() || want.iter().any(|w| w == have);
    let mut chosen: Vec<&Device> = fleet
        .iter()
        .filter(|d| sel.ids.is_empty() || sel.ids.contains(&d.id))
        .filter(|d| any_of(&sel.environment, &d.environment))
        .filter(|d| any_of(&sel.region, &d.region))
        .filter(|d| any_of(&sel.hardware, &d.hardware))
        .filter(|d| any_of(&sel.firmware, &d.firmware))
        .filter(|d| sel.tags.iter().all(|t| d.tags.contains(t)))
        .collect();
    if let Some(share) = sel.share {
        chosen.sort_by_key(|d| spread_key(&d.id));
        let keep = ((chosen.len() as f64) * share).ceil() as usize;
        chosen.truncate(keep.max(1).min(chosen.len()));
    }
    if chosen.is_empty() {
        return Err(SelectorError::Empty);
    }
    let cohort = Cohort::new(chosen.iter().map(|d| d.id.clone()))?;
    let mut p = Preview {
        count: cohort.size(),
        fleet: fleet.len() as u32,
        share: f64::from(cohort.size()) / (fleet.len().max(1) as f64),
        by_hardware: BTreeMap::new(),
        by_region: BTreeMap::new(),
        by_firmware: BTreeMap::new(),
        by_environment: BTreeMap::new(),
        sample: Vec::new(),
        root: hex::encode(cohort.root().0),
    };
    for d in &chosen {
        *p.by_hardware.entry(d.hardware.clone()).or_default() += 1;
        *p.by_region.entry(d.region.clone()).or_default() += 1;
        *p.by_firmware.entry(d.firmware.clone()).or_default() += 1;
        *p.by_environment.entry(d.environment.clone()).or_default() += 1;
    }
    let ids = cohort.ids();
    let step = (ids.len() / 10).max(1);
    p.sample = ids.iter().step_by(step).take(10).cloned().collect();
    Ok((cohort, p))
}

/// A stable, well-mixed order over ids.
fn spread_key(id: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(id.as_bytes()).into()
}

fn device_from(row: &AnyRow) -> Result<Device, StoreError> {
    let tags: String = row.try_get("tags")?;
    Ok(Device {
        id: row.try_get("id")?,
        public_key: row.try_get("public_key")?,
        hardware: row.try_get("hardware")?,
        region: row.try_get("region")?,
        environment: row.try_get("environment")?,
        firmware: row.try_get("firmware")?,
        tags: serde_json::from_str(&tags).map_err(|e| corrupt("devices", e))?,
        enrolled_at: row.try_get("enrolled_at")?,
    })
}

/// `SELECT` of every device column; a macro so each query stays a compile-time literal.
macro_rules! select_devices {
    ($rest:literal) => {
        concat!(
            "SELECT id, public_key, hardware, region, environment, firmware, tags, enrolled_at FROM devices ",
            $rest
        )
    };
}

/// Every enrolled device, by id.
pub async fn all(pool: &AnyPool) -> Result<Vec<Device>, StoreError> {
    let rows = sqlx::query(select_devices!("ORDER BY id")).fetch_all(pool).await?;
    rows.iter().map(device_from).collect()
}

/// One device.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<Device>, StoreError> {
    let row = sqlx::query(select_devices!("WHERE id = $1")).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(device_from).transpose()
}

/// Enrols a device, or updates its attributes if the id exists.
pub async fn upsert(conn: &mut AnyConnection, d: &Device) -> Result<(), StoreError> {
    let tags = serde_json::to_string(&d.tags).map_err(|e| corrupt("devices", e))?;
    sqlx::query(
        "INSERT INTO devices (id, public_key, hardware, region, environment, firmware, tags, enrolled_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key, hardware = excluded.hardware, \
         region = excluded.region, environment = excluded.environment, firmware = excluded.firmware, tags = excluded.tags",
    )
    .bind(&d.id)
    .bind(&d.public_key)
    .bind(&d.hardware)
    .bind(&d.region)
    .bind(&d.environment)
    .bind(&d.firmware)
    .bind(tags)
    .bind(d.enrolled_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What enrolling did to an existing record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enrolment {
    /// The id was already enrolled: its broker password was rotated.
    pub existed: bool,
    /// It was enrolled with another key: its report counter starts again from 0.
    pub key_changed: bool,
}

/// Enrols a device (or updates an enrolled one's attributes) and sets its broker password hash.
/// A new public key means a new device identity, whose report counter starts again from 0.
pub async fn enroll(conn: &mut AnyConnection, d: &Device, password_sha256: &str) -> Result<Enrolment, StoreError> {
    let old: Option<AnyRow> =
        sqlx::query("SELECT public_key FROM devices WHERE id = $1").bind(&d.id).fetch_optional(&mut *conn).await?;
    let old_key: Option<String> = old.as_ref().map(|r| r.try_get("public_key")).transpose()?;
    upsert(conn, d).await?;
    let key_changed = old_key.as_deref().is_some_and(|k| k != d.public_key);
    if key_changed {
        sqlx::query("UPDATE devices SET mqtt_password_sha256 = $1, report_counter = 0 WHERE id = $2")
            .bind(password_sha256)
            .bind(&d.id)
            .execute(&mut *conn)
            .await?;
    } else {
        sqlx::query("UPDATE devices SET mqtt_password_sha256 = $1 WHERE id = $2")
            .bind(password_sha256)
            .bind(&d.id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Enrolment { existed: old_key.is_some(), key_changed })
}

/// The SHA-256 (hex) of a device's broker password; `None` for an unknown device or one that
/// was never issued a password.
pub async fn mqtt_password_sha256(pool: &AnyPool, id: &str) -> Result<Option<String>, StoreError> {
    let row =
        sqlx::query("SELECT mqtt_password_sha256 FROM devices WHERE id = $1").bind(id).fetch_optional(pool).await?;
    Ok(row.as_ref().map(|r| r.try_get::<Option<String>, _>("mqtt_password_sha256")).transpose()?.flatten())
}

/// What a report is checked against: the device's public key (hex) and the highest counter
/// accepted from it so far. `None` for an unknown device.
pub async fn report_key(conn: &mut AnyConnection, id: &str) -> Result<Option<(String, i64)>, StoreError> {
    let row = sqlx::query("SELECT public_key, report_counter FROM devices WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| Ok((r.try_get("public_key")?, r.try_get("report_counter")?))).transpose()
}

/// What a verified report says about a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen<'a> {
    /// The device.
    pub id: &'a str,
    /// The report counter.
    pub counter: i64,
    /// When the controller accepted it, unix ms.
    pub at_ms: i64,
    /// A short name of what it reported (`status`, `confirmed`, `refused:replay`, ...).
    pub event: &'a str,
    /// The firmware version it now runs, when the report says.
    pub firmware: Option<String>,
}

/// Records a verified report if its counter is above the last one accepted from the device.
/// Returns whether it was: the conditional update is the claim, so a replayed counter, or the
/// same report handled by another controller replica, is recorded (and forwarded) only once.
pub async fn record_report(conn: &mut AnyConnection, seen: &Seen<'_>) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE devices SET report_counter = $1, last_seen_at = $2, last_event = $3, \
         firmware = COALESCE($4, firmware) WHERE id = $5 AND report_counter < $1",
    )
    .bind(seen.counter)
    .bind(seen.at_ms)
    .bind(seen.event)
    .bind(seen.firmware.as_deref())
    .bind(seen.id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Vec<Device> {
        (0..100)
            .map(|i| Device {
                id: format!("dev-{i:03}"),
                public_key: "00".repeat(32),
                hardware: if i % 2 == 0 { "gw-m4".into() } else { "gw-a7".into() },
                region: ["eu", "us", "ap"][i % 3].into(),
                environment: if i < 90 { "production".into() } else { "lab".into() },
                firmware: if i < 50 { "2.3.0".into() } else { "2.4.0".into() },
                tags: if i % 10 == 0 { vec!["canary".into()] } else { vec![] },
                enrolled_at: 0,
            })
            .collect()
    }

    #[test]
    fn filters_combine_and_the_preview_breaks_the_cohort_down() {
        let sel =
            Selector { environment: vec!["production".into()], hardware: vec!["gw-m4".into()], ..Selector::default() };
        let (cohort, p) = resolve(&fleet(), &sel).unwrap();
        assert_eq!(cohort.size(), 45);
        assert_eq!((p.count, p.fleet), (45, 100));
        assert_eq!(p.by_hardware, BTreeMap::from([("gw-m4".to_string(), 45)]));
        assert_eq!(p.by_region.values().sum::<u32>(), 45);
        assert_eq!(p.by_firmware.values().sum::<u32>(), 45);
        assert_eq!(p.sample.len(), 10);
        assert_eq!(p.root, hex::encode(cohort.root().0));
    }

    #[test]
    fn a_share_takes_a_spread_subset_stably() {
        let sel = Selector { share: Some(0.1), ..Selector::default() };
        let (a, p) = resolve(&fleet(), &sel).unwrap();
        let (b, _) = resolve(&fleet(), &sel).unwrap();
        assert_eq!(a.ids(), b.ids());
        assert_eq!(p.count, 10);
        assert!(p.by_region.len() > 1, "a canary should not be one region: {:?}", p.by_region);
    }

    #[test]
    fn tags_must_all_be_present_and_ids_are_explicit() {
        let sel = Selector { tags: vec!["canary".into()], ..Selector::default() };
        assert_eq!(resolve(&fleet(), &sel).unwrap().0.size(), 10);
        let sel = Selector { ids: vec!["dev-001".into(), "dev-002".into()], ..Selector::default() };
        assert_eq!(resolve(&fleet(), &sel).unwrap().0.ids(), ["dev-001", "dev-002"]);
    }

    #[test]
    fn bad_selectors_are_refused_by_name() {
        let f = fleet();
        let sel = Selector { ids: vec!["dev-001".into(), "ghost".into()], ..Selector::default() };
        assert_eq!(resolve(&f, &sel).unwrap_err(), SelectorError::UnknownIds(vec!["ghost".into()]));
        let sel = Selector { share: Some(1.5), ..Selector::default() };
        assert_eq!(resolve(&f, &sel).unwrap_err(), SelectorError::Share(1.5));
        let sel = Selector { region: vec!["mars".into()], ..Selector::default() };
        assert_eq!(resolve(&f, &sel).unwrap_err(), SelectorError::Empty);
    }
}
