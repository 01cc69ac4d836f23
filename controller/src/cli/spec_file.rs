//! Reading a proposal [`Spec`] from a TOML or JSON file (by extension). Every error names the
//! file, and the line when the parser knows it; the spec is validated locally too, so a mistake
//! shows before anything is sent.

use super::error::CliError;
use crate::workflow::Spec;
use std::path::Path;

/// Reads and validates the spec in `path`.
pub fn read(path: &Path) -> Result<Spec, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::SpecFile {
        path: path.to_path_buf(),
        line: None,
        detail: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parses and validates `text`, the content of `path` (whose extension picks the format).
pub fn parse(path: &Path, text: &str) -> Result<Spec, CliError> {
    let err = |line: Option<usize>, detail: String| CliError::SpecFile { path: path.to_path_buf(), line, detail };
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let spec: Spec = match ext.as_deref() {
        Some("toml") => toml::from_str(text)
            .map_err(|e| err(e.span().map(|s| line_of(text, s.start)), e.message().trim().to_string()))?,
        Some("json") => serde_json::from_str(text).map_err(|e| {
            let full = e.to_string();
            let at = format!(" at line {} column {}", e.line(), e.column());
            let detail = full.strip_suffix(&at).unwrap_or(&full).to_string();
            err((e.line() > 0).then_some(e.line()), detail)
        })?,
        _ => return Err(err(None, "a spec file ends in .toml or .json".into())),
    };
    spec.validate().map_err(|e| err(None, format!("invalid proposal: {e}")))?;
    Ok(spec)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Kind;
    use crate::workflow::spec::RollbackSpec;
    use std::path::PathBuf;

    const TOML: &str = r#"
kind = "firmware"
title = "Install fw 2.4.1 on the EU gateways"
reason = "because it fixes the modem watchdog reset"
cohort = { environment = ["production"], region = ["eu-west"], share = 0.05 }
rollback = { plan = "previous" }

[firmware]
version = "2.4.1"
hardware = "gw-m4"
image_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
image_size = 524288
"#;

    fn path(name: &str) -> PathBuf {
        PathBuf::from(format!("proposals/{name}"))
    }

    #[test]
    fn a_toml_spec_parses() {
        let s = parse(&path("a.toml"), TOML).unwrap();
        assert_eq!(s.kind, Kind::Firmware);
        assert_eq!(s.cohort.share, Some(0.05));
        assert_eq!(s.rollback, RollbackSpec::Previous);
        assert_eq!(s.firmware.unwrap().version, "2.4.1");
    }

    #[test]
    fn a_json_spec_parses_to_the_same_spec() {
        let s = parse(&path("a.toml"), TOML).unwrap();
        let json = serde_json::to_string_pretty(&s).unwrap();
        assert_eq!(parse(&path("a.JSON"), &json).unwrap(), s);
    }

    #[test]
    fn a_malformed_toml_file_is_named_with_its_line() {
        let bad = TOML.replace("image_size = 524288", "image_size = \"big\"");
        let e = parse(&path("bad.toml"), &bad).unwrap_err();
        let shown = e.to_string();
        assert!(shown.starts_with("proposals/bad.toml:12: "), "{shown}");
        assert!(shown.contains("u32") || shown.contains("integer"), "{shown}");
    }

    #[test]
    fn an_unknown_field_is_named_with_its_line() {
        let bad = TOML.replace("title =", "titel =");
        let shown = parse(&path("bad.toml"), &bad).unwrap_err().to_string();
        assert!(shown.starts_with("proposals/bad.toml:3: "), "{shown}");
        assert!(shown.contains("titel"), "{shown}");
    }

    #[test]
    fn a_malformed_json_file_is_named_with_its_line() {
        let bad = "{\n  \"kind\": \"firmware\",\n  \"title\": oops\n}";
        let shown = parse(&path("bad.json"), bad).unwrap_err().to_string();
        assert!(shown.starts_with("proposals/bad.json:3: "), "{shown}");
        assert!(!shown.contains("column"), "{shown}");
    }

    #[test]
    fn an_invalid_spec_is_refused_locally_with_the_reason() {
        let bad = TOML.replace("2.4.1", "two");
        let shown = parse(&path("v.toml"), &bad).unwrap_err().to_string();
        assert_eq!(shown, "proposals/v.toml: invalid proposal: firmware.version \"two\" is not major.minor.patch");
    }

    #[test]
    fn another_extension_is_refused() {
        let shown = parse(&path("a.yaml"), TOML).unwrap_err().to_string();
        assert_eq!(shown, "proposals/a.yaml: a spec file ends in .toml or .json");
    }

    #[test]
    fn a_missing_file_is_named() {
        let shown = read(&path("nowhere.toml")).unwrap_err().to_string();
        assert!(shown.starts_with("proposals/nowhere.toml: cannot read: "), "{shown}");
    }

    #[test]
    fn the_example_proposals_parse() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/proposals");
        let canary = read(&dir.join("firmware-canary.toml")).unwrap();
        assert_eq!(canary.firmware.as_ref().unwrap().version, "2.4.1");
        assert_eq!(canary.cohort.share, Some(0.05));
        assert_eq!(canary.cohort.environment, ["production"]);
        assert!(canary.has_rollback());
        let fix = read(&dir.join("security-fix.toml")).unwrap();
        assert!(fix.security);
    }
}
