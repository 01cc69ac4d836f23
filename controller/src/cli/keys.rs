//! `airlock keys new|show|trust-root`. Key files are made and read locally; the TrustRoot is
//! fetched and then decoded and self-verified here, so the roster shown is the one devices hold.

use super::client::{self, parse};
use super::render::{short, utc};
use super::{out, out_json, CliError, Ctx};
use airlock_proto::{Roles, SignedTrustRoot, TrustRoot};
use clap::Subcommand;
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an Ed25519 key file (mode 0600, never overwritten); print its public key
    #[command(
        after_help = "Examples:\n  airlock keys new --out ~/.airlock/alice.key\n\nGive the printed public key to the controller's admin; keep the file to yourself."
    )]
    New {
        /// Where to write it (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key of a key file
    #[command(after_help = "Examples:\n  airlock keys show ~/.airlock/alice.key")]
    Show {
        /// The key file.
        file: PathBuf,
    },
    /// Fetch the controller's TrustRoot; print version, expiry, release keys and the roster
    #[command(after_help = "Examples:\n  airlock keys trust-root\n  airlock --json keys trust-root")]
    TrustRoot,
}

/// Runs a `keys` subcommand.
pub async fn run(ctx: &Ctx, cmd: KeysCommand) -> Result<(), CliError> {
    match cmd {
        KeysCommand::New { out: path } => {
            let key = crate::keys::generate()?;
            crate::keys::write(&path, &key)?;
            let public = crate::keys::public_hex(&key);
            if ctx.json {
                return out_json(&serde_json::json!({ "file": path.display().to_string(), "public_key": public }));
            }
            out(&format!("wrote {}\npublic key {public}\n", path.display()))
        }
        KeysCommand::Show { file } => {
            let public = crate::keys::public_hex(&crate::keys::read(&file)?);
            if ctx.json {
                return out_json(&serde_json::json!({ "file": file.display().to_string(), "public_key": public }));
            }
            out(&format!("{public}\n"))
        }
        KeysCommand::TrustRoot => {
            let v = client::trust_root(&ctx.client()?).await?;
            if ctx.json {
                return out_json(&v);
            }
            let served: Served = parse("GET /api/trust-root", v)?;
            out(&trust_root_text(&served)?)
        }
    }
}

/// `GET /api/trust-root`, loosely: only the signed bytes are relied on.
#[derive(Debug, Deserialize)]
struct Served {
    /// The signed TrustRoot, hex.
    bytes_hex: String,
    /// The roster as the server lists it: `{key, roles}`, roles as bits.
    #[serde(default)]
    approvers: Vec<Value>,
}

/// Decodes and self-verifies the TrustRoot, and prints it with the server's names for keys.
fn trust_root_text(s: &Served) -> Result<String, CliError> {
    let bad = |detail: String| CliError::Reply { what: "GET /api/trust-root".into(), detail };
    let bytes = hex::decode(s.bytes_hex.trim()).map_err(|e| bad(format!("bytes_hex is not hex ({e})")))?;
    let signed: SignedTrustRoot<'_> = airlock_proto::decode(&bytes)
        .map_err(|r| bad(format!("the TrustRoot does not decode as devices decode it ({r})")))?;
    let root: TrustRoot = signed
        .verify_self()
        .map_err(|r| bad(format!("the TrustRoot is not signed by its own root key threshold ({r})")))?;
    let listed = listed(&s.approvers);
    let mut o = format!("TrustRoot version {} (decoded and verified here)\n", root.version);
    let expires = i64::try_from(root.expires_at.saturating_mul(1000)).unwrap_or(i64::MAX);
    let _ = writeln!(o, "  expires       {}", utc(expires));
    let _ = writeln!(
        o,
        "  root keys     {} of {}: {}",
        root.root_threshold,
        root.root_keys.len(),
        root.root_keys.iter().map(|k| short(&hex::encode(k.0))).collect::<Vec<_>>().join(", ")
    );
    o.push_str("  release keys\n");
    for k in &root.release_keys {
        let _ = writeln!(o, "    {}", hex::encode(k.0));
    }
    o.push_str("  approvers (key, roles)\n");
    for a in &root.approvers {
        let _ = writeln!(o, "    {}  {}", hex::encode(a.key.0), role_names(a.roles));
    }
    for (k, roles) in &listed {
        let signed = root.approvers.iter().find(|a| hex::encode(a.key.0).eq_ignore_ascii_case(k));
        match signed {
            None => {
                let _ = writeln!(o, "  !!! the server lists approver {k}, but the signed TrustRoot does not");
            }
            Some(a) if roles.is_some_and(|r| r != a.roles.0) => {
                let _ = writeln!(o, "  !!! the server lists other roles for {k} than the signed TrustRoot");
            }
            Some(_) => {}
        }
    }
    Ok(o)
}

/// `(key hex, role bits)` for each roster entry the server lists.
fn listed(approvers: &[Value]) -> Vec<(String, Option<u16>)> {
    approvers
        .iter()
        .filter_map(|a| {
            let key = a.get("key").or_else(|| a.get("public_key"))?.as_str()?;
            let roles = a.get("roles").and_then(Value::as_u64).and_then(|r| u16::try_from(r).ok());
            Some((key.to_string(), roles))
        })
        .collect()
}

/// `approver+security`.
fn role_names(r: Roles) -> String {
    let all = [
        (Roles::APPROVER, "approver"),
        (Roles::EXPERT, "expert"),
        (Roles::SECURITY, "security"),
        (Roles::BREAK_GLASS, "break_glass"),
    ];
    let names: Vec<&str> = all.iter().filter(|(bit, _)| r.contains(*bit) && bit.0 != 0).map(|(_, n)| *n).collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join("+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_proto::{Approver, PublicKey};
    use ed25519_dalek::SigningKey;

    #[test]
    fn the_trust_root_is_decoded_verified_and_named() {
        let roots: Vec<SigningKey> = (1..=3u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
        let alice = PublicKey::from([0xa1; 32]);
        let mut root = TrustRoot {
            version: 4,
            expires_at: 1_700_000_000,
            root_threshold: 2,
            root_keys: heapless::Vec::new(),
            release_keys: heapless::Vec::new(),
            approvers: heapless::Vec::new(),
            rules: crate::policy::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies"))
                .unwrap()
                .device_rules,
        };
        for k in &roots {
            root.root_keys.push(airlock_proto::sig::public_key(k)).unwrap();
        }
        root.release_keys.push(PublicKey::from([0x77; 32])).unwrap();
        root.approvers.push(Approver { key: alice, roles: Roles::APPROVER.union(Roles::SECURITY) }).unwrap();
        let bytes = airlock_proto::build::sign_trust_root(&root, &[&roots[0], &roots[1]]);
        let served = Served {
            bytes_hex: hex::encode(&bytes),
            approvers: vec![
                serde_json::json!({"key": hex::encode(alice.0), "roles": 5}),
                serde_json::json!({"key": "99".repeat(32), "roles": 1}),
            ],
        };
        let text = trust_root_text(&served).unwrap();
        assert!(
            text.starts_with("TrustRoot version 4 (decoded and verified here)\n  expires       2023-11-14 22:13 UTC\n"),
            "{text}"
        );
        assert!(text.contains(&format!("    {}\n", "77".repeat(32))), "{text}");
        assert!(text.contains(&format!("    {}  approver+security\n", hex::encode(alice.0))), "{text}");
        assert!(
            text.contains(&format!(
                "!!! the server lists approver {}, but the signed TrustRoot does not",
                "99".repeat(32)
            )),
            "{text}"
        );
        assert!(!text.contains("other roles"), "{text}");
    }

    #[test]
    fn a_trust_root_that_does_not_decode_is_refused() {
        let served = Served { bytes_hex: "0001".into(), approvers: vec![] };
        let e = trust_root_text(&served).unwrap_err();
        assert!(e.to_string().contains("does not decode as devices decode it"), "{e}");
    }
}
