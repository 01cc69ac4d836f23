//! `airlock-agent provision`: a fresh flash file with the factory image in slot A, the device
//! identity and the TrustRoot, as a factory would program a microcontroller.

use crate::config::{parse_version, AgentConfig, ProvisionConfig};
use crate::error::AgentError;
use crate::file_flash::FileFlash;
use airlock_agent_core::layout::WRITE_UNIT;
use airlock_agent_core::{provision, Factory, Identity, Layout};
use airlock_proto::{PublicKey, Version};
use ed25519_dalek::SigningKey;
use embedded_storage::nor_flash::{NorFlash, NorFlashError as _};
use std::path::Path;

/// The first word of an Airlock key file (the controller writes the same format).
pub const KEY_TAG: &str = "airlock-ed25519-seed-v1";

/// Reads a key file: one line, `airlock-ed25519-seed-v1 <64 hex digits>`.
pub fn read_key_file(path: &Path) -> Result<[u8; 32], AgentError> {
    let text = std::fs::read_to_string(path).map_err(|e| AgentError::file(path, e))?;
    let bad = || AgentError::Config(format!("{}: expected `{KEY_TAG} <64 hex digits>`", path.display()));
    let seed = text.trim().strip_prefix(KEY_TAG).ok_or_else(bad)?.trim();
    hex::decode(seed).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(bad)
}

/// Writes `image` to slot A and provisions the device on `flash`.
#[allow(clippy::too_many_arguments)] // one argument per thing a factory programs
pub fn program_and_provision<F: NorFlash>(
    flash: &mut F,
    layout: &Layout,
    identity: &Identity,
    trust_root: &[u8],
    image: &[u8],
    version: Version,
    security_counter: u32,
    now: u64,
) -> Result<(), AgentError> {
    let size = u32::try_from(image.len()).map_err(|_| AgentError::Config("factory image too large".into()))?;
    if size == 0 || size > layout.slot_size {
        return Err(AgentError::Config(format!(
            "factory image is {size} bytes; a slot holds 1 to {} bytes",
            layout.slot_size
        )));
    }
    let flash_err = |e: F::Error| AgentError::Core(airlock_agent_core::Error::Flash(e.kind()));
    let base = layout.slots[0];
    let erase = F::ERASE_SIZE as u32;
    flash.erase(base, base + size.div_ceil(erase) * erase).map_err(flash_err)?;
    let mut padded = image.to_vec();
    padded.resize(image.len().div_ceil(WRITE_UNIT) * WRITE_UNIT, 0xFF);
    flash.write(base, &padded).map_err(flash_err)?;
    provision(flash, layout, identity, trust_root, Factory { version, security_counter, size }, now)?;
    Ok(())
}

/// What `provision_file` did.
#[derive(Debug)]
pub struct Provisioned {
    /// The device's report-signing public key, for enrolment.
    pub public_key: PublicKey,
    /// The factory version in slot A.
    pub version: Version,
    /// Bytes of the factory image.
    pub size: usize,
}

/// Creates `DATA/flash.bin` from the `[provision]` section. An existing flash file is refused
/// unless `force` (re-provisioning forgets every update, config and sequence number).
pub fn provision_file(config: &AgentConfig, force: bool, now: u64) -> Result<Provisioned, AgentError> {
    config.validate()?;
    let p: &ProvisionConfig =
        config.provision.as_ref().ok_or_else(|| AgentError::Config("no [provision] section".into()))?;
    let key_seed = read_key_file(&p.key_file)?;
    let trust_root = std::fs::read(&p.trust_root_file).map_err(|e| AgentError::file(&p.trust_root_file, e))?;
    let image = std::fs::read(&p.factory_image).map_err(|e| AgentError::file(&p.factory_image, e))?;
    let version = parse_version(&p.factory_version)?;
    let identity = Identity {
        device_id: config.device_id.as_str().try_into().map_err(|_| AgentError::Config("device_id too long".into()))?,
        hardware: p
            .hardware
            .as_str()
            .try_into()
            .map_err(|_| AgentError::Config("hardware: at most 32 bytes".into()))?,
        min_tier: p.min_tier,
        key_seed,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| AgentError::file(&config.data_dir, e))?;
    let path = config.flash_path();
    if path.exists() {
        if !force {
            return Err(AgentError::Config(format!(
                "{} exists: the device is provisioned (--force wipes its state)",
                path.display()
            )));
        }
        std::fs::remove_file(&path).map_err(|e| AgentError::file(&path, e))?;
    }
    let mut flash = FileFlash::open(&path, config.flash_size())?;
    let result = program_and_provision(
        &mut flash,
        &config.layout(),
        &identity,
        &trust_root,
        &image,
        version,
        p.factory_security_counter,
        now,
    );
    if result.is_err() {
        // Half a provisioning is no provisioning: leave no flash file that `run` would open.
        let _ = std::fs::remove_file(&path);
    }
    result?;
    let public_key = airlock_proto::sig::public_key(&SigningKey::from_bytes(&key_seed));
    Ok(Provisioned { public_key, version, size: image.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_in_the_controller_format_reads_and_anything_else_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        std::fs::write(&path, format!("{KEY_TAG} {}\n", "ab".repeat(32))).unwrap();
        assert_eq!(read_key_file(&path).unwrap(), [0xab; 32]);
        std::fs::write(&path, format!("{KEY_TAG} {}\n", "ab".repeat(31))).unwrap();
        assert!(matches!(read_key_file(&path), Err(AgentError::Config(_))));
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        assert!(matches!(read_key_file(&path), Err(AgentError::Config(_))));
    }
}
