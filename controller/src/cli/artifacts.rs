//! `airlock artifacts upload|list`: the firmware images devices download, stored by the
//! controller under their SHA-256.

use super::client::{self, parse};
use super::render::{table, thousands, utc};
use super::{out, out_json, CliError, Ctx};
use crate::artifacts::Artifact;
use clap::Subcommand;
use std::path::PathBuf;

/// `artifacts` subcommands.
#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// Upload a firmware image (admin or requester); prints its sha256 and size for the spec
    #[command(
        after_help = "Examples:\n  airlock artifacts upload build/gw-m4-2.4.1.bin\n  airlock --json artifacts upload fw.bin | jq -r .sha256\n\nThe image is stored under its SHA-256; uploading the same bytes again is harmless. Put the\nprinted sha256 and size into the proposal's [firmware] image_sha256 and image_size."
    )]
    Upload {
        /// The image file.
        file: PathBuf,
    },
    /// List stored firmware images, newest first
    #[command(after_help = "Examples:\n  airlock artifacts list\n  airlock --json artifacts list")]
    List,
}

/// Runs an `artifacts` subcommand.
pub async fn run(ctx: &Ctx, cmd: ArtifactsCommand) -> Result<(), CliError> {
    match cmd {
        ArtifactsCommand::Upload { file } => {
            let c = ctx.client()?;
            let bytes =
                tokio::fs::read(&file).await.map_err(|e| CliError::io(format!("reading {}", file.display()), e))?;
            if bytes.is_empty() {
                return Err(CliError::Usage(format!("{} is empty", file.display())));
            }
            let v = client::upload_artifact(&c, bytes).await?;
            if ctx.json {
                return out_json(&v);
            }
            let a: Artifact = parse("POST /api/artifacts", v)?;
            out(&upload_text(&a))
        }
        ArtifactsCommand::List => {
            let v = client::artifacts(&ctx.client()?).await?;
            if ctx.json {
                return out_json(&v);
            }
            let list: Vec<Artifact> = parse("GET /api/artifacts", v)?;
            out(&list_text(&list))
        }
    }
}

fn upload_text(a: &Artifact) -> String {
    format!(
        "stored {} ({} bytes)\nin a proposal spec:\n  [firmware]\n  image_sha256 = \"{}\"\n  image_size = {}\n",
        a.sha256,
        thousands(a.size),
        a.sha256,
        a.size
    )
}

fn list_text(list: &[Artifact]) -> String {
    if list.is_empty() {
        return "no artifacts stored\n".into();
    }
    let rows: Vec<Vec<String>> =
        list.iter().map(|a| vec![a.sha256.clone(), a.size.to_string(), utc(a.stored_at)]).collect();
    let mut o = table(&["sha256", "bytes", "stored"], &rows);
    let n = list.len();
    o.push_str(&format!("{n} artifact{}\n", if n == 1 { "" } else { "s" }));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_prints_what_goes_into_the_spec() {
        let a = Artifact { sha256: "ab".repeat(32), size: 262_144, stored_at: 0 };
        let text = upload_text(&a);
        assert!(text.starts_with(&format!("stored {} (262,144 bytes)\n", "ab".repeat(32))), "{text}");
        assert!(text.contains(&format!("image_sha256 = \"{}\"\n  image_size = 262144\n", "ab".repeat(32))), "{text}");
    }

    #[test]
    fn an_empty_store_says_so() {
        assert_eq!(list_text(&[]), "no artifacts stored\n");
        let a = Artifact { sha256: "cd".repeat(32), size: 10, stored_at: 1_795_608_000_000 };
        let text = list_text(&[a]);
        assert!(text.ends_with("1 artifact\n"), "{text}");
        assert!(text.contains(&"cd".repeat(32)), "{text}");
    }
}
