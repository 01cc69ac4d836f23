//! Reading policy files into a validated [`Policy`]. A malformed policy is refused with the
//! file, the line and the reason; nothing half-loaded is ever used.

use super::file::{BreakGlassFile, DeviceFloorFile, LaneFile, PolicyFile, RuleFile, WhenFile};
use super::model::{role_by_name, tier_by_name, BreakGlass, Kind, Lane, NoResponse, Policy, Pool, Rule, When};
use airlock_proto::{BreakGlassRule, Requirement, Roles, SizeFloor, Tier, TierRules};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// A policy that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct PolicyError {
    /// The file name.
    pub file: String,
    /// 1-based line (0 when the problem is the set of files as a whole).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Loads every `*.toml` in `dir`, in name order.
pub fn load_dir(dir: &Path) -> Result<Policy, PolicyError> {
    let whole = |reason: String| PolicyError { file: dir.display().to_string(), line: 0, reason };
    let entries = std::fs::read_dir(dir).map_err(|e| whole(format!("cannot read policy directory: {e}")))?;
    let mut sources = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| whole(e.to_string()))?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let text = std::fs::read_to_string(&path).map_err(|e| PolicyError {
                file: name.clone(),
                line: 0,
                reason: format!("cannot read: {e}"),
            })?;
            sources.push((name, text));
        }
    }
    if sources.is_empty() {
        return Err(whole("no *.toml policy files".into()));
    }
    load_sources(sources)
}

/// Loads policy sources given as `(file name, content)`.
pub fn load_sources(mut sources: Vec<(String, String)>) -> Result<Policy, PolicyError> {
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    let mut digest = Sha256::new();
    for (name, text) in &sources {
        digest.update(name.as_bytes());
        digest.update([0]);
        digest.update(text.as_bytes());
        digest.update([0]);
    }
    let mut b = Builder::default();
    for (name, text) in &sources {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError {
            file: name.clone(),
            line: e.span().map_or(0, |s| line_of(text, s.start)),
            reason: e.message().trim().to_string(),
        })?;
        b.add(Src { name, text }, file)?;
    }
    b.finish(digest.finalize().into(), sources.into_iter().map(|s| s.0).collect())
}

#[derive(Clone, Copy)]
struct Src<'a> {
    name: &'a str,
    text: &'a str,
}

impl Src<'_> {
    fn err(&self, span: Range<usize>, reason: impl Into<String>) -> PolicyError {
        PolicyError { file: self.name.to_string(), line: line_of(self.text, span.start), reason: reason.into() }
    }

    fn at(&self, span: Range<usize>) -> (String, usize) {
        (self.name.to_string(), line_of(self.text, span.start))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Where a singleton section was first defined.
type Origin = (String, usize);

#[derive(Default)]
struct Builder {
    default_tier: Option<(Tier, Origin)>,
    device_floor: Option<(DeviceFloor, Origin)>,
    lanes: BTreeMap<Tier, (Lane, Origin)>,
    pools: BTreeMap<String, (Pool, Origin)>,
    break_glass: Option<(BreakGlass, Origin)>,
    rules: Vec<Rule>,
    /// Pool references to check once every file is read.
    pool_refs: Vec<(String, PolicyError)>,
}

struct DeviceFloor {
    size: Vec<SizeFloor>,
    no_rollback: Tier,
    security: Tier,
    kind: [Tier; 3],
}

fn tier(src: Src<'_>, s: &Spanned<String>) -> Result<Tier, PolicyError> {
    tier_by_name(s.get_ref()).ok_or_else(|| {
        src.err(
            s.span(),
            format!("unknown tier {:?}: use auto_pass, single, two_person, expert or blocked", s.get_ref()),
        )
    })
}

/// Parses `30s`, `15m`, `4h`, `2d`, `1w`.
pub(crate) fn duration_secs(s: &str) -> Option<u64> {
    let (num, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mul).filter(|&v| v > 0)
}

fn duration(src: Src<'_>, s: &Spanned<String>) -> Result<u64, PolicyError> {
    duration_secs(s.get_ref()).ok_or_else(|| {
        src.err(
            s.span(),
            format!("bad duration {:?}: a positive number with s, m, h, d or w, like \"4h\"", s.get_ref()),
        )
    })
}

impl Builder {
    fn once<T>(
        slot: &mut Option<(T, Origin)>,
        what: &str,
        src: Src<'_>,
        span: Range<usize>,
        v: T,
    ) -> Result<(), PolicyError> {
        if let Some((_, (file, line))) = slot {
            return Err(src.err(span, format!("{what} is already defined at {file}:{line}")));
        }
        *slot = Some((v, src.at(span)));
        Ok(())
    }

    fn pool_ref(&mut self, src: Src<'_>, p: &Spanned<String>) {
        let e = src.err(p.span(), format!("unknown pool {:?}", p.get_ref()));
        self.pool_refs.push((p.get_ref().clone(), e));
    }

    fn add(&mut self, src: Src<'_>, f: PolicyFile) -> Result<(), PolicyError> {
        if let Some(t) = f.default_tier {
            let tier = tier(src, &t)?;
            if tier == Tier::AutoPass {
                return Err(
                    src.err(t.span(), "default_tier must not be auto_pass: a proposal no rule foresaw needs a human")
                );
            }
            Self::once(&mut self.default_tier, "default_tier", src, t.span(), tier)?;
        }
        if let Some(d) = f.device_floor {
            let span = d.span();
            let floor = device_floor(src, d.into_inner())?;
            Self::once(&mut self.device_floor, "[device_floor]", src, span, floor)?;
        }
        for (name, lane) in f.lanes {
            let span = lane.span();
            let t = tier_by_name(&name).ok_or_else(|| {
                src.err(
                    span.clone(),
                    format!("[lanes.{name}]: not a tier (auto_pass, single, two_person, expert, blocked)"),
                )
            })?;
            let compiled = self.lane(src, t, lane.into_inner())?;
            if let Some((_, (file, line))) = self.lanes.get(&t) {
                return Err(src.err(span, format!("[lanes.{name}] is already defined at {file}:{line}")));
            }
            self.lanes.insert(t, (compiled, src.at(span)));
        }
        for (name, pool) in f.pools {
            let span = pool.span();
            let p = pool.into_inner();
            if p.members.is_empty() {
                return Err(src.err(span, format!("[pools.{name}] has no members")));
            }
            let rotation_secs = p.rotation.as_ref().map(|r| duration(src, r)).transpose()?;
            if let Some((_, (file, line))) = self.pools.get(&name) {
                return Err(src.err(span, format!("[pools.{name}] is already defined at {file}:{line}")));
            }
            self.pools.insert(name, (Pool { members: p.members, rotation_secs }, src.at(span)));
        }
        if let Some(bg) = f.break_glass {
            let span = bg.span();
            let compiled = self.break_glass(src, bg.into_inner(), span.clone())?;
            Self::once(&mut self.break_glass, "[break_glass]", src, span, compiled)?;
        }
        for rule in f.rule {
            let span = rule.span();
            let r = self.rule(src, rule.into_inner(), span.clone())?;
            if let Some(prev) = self.rules.iter().find(|p| p.name == r.name) {
                return Err(
                    src.err(span, format!("rule {:?} is already defined at {}:{}", r.name, prev.file, prev.line))
                );
            }
            self.rules.push(r);
        }
        Ok(())
    }

    fn lane(&mut self, src: Src<'_>, t: Tier, l: LaneFile) -> Result<Lane, PolicyError> {
        let roles = l
            .roles
            .iter()
            .map(|r| {
                role_by_name(r.get_ref()).map(|_| r.get_ref().clone()).ok_or_else(|| {
                    src.err(
                        r.span(),
                        format!("unknown role {:?}: use approver, expert, security or break_glass", r.get_ref()),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for p in l.pools.iter().chain(&l.escalation) {
            self.pool_ref(src, p);
        }
        let timeout_secs = l.timeout.as_ref().map(|d| duration(src, d)).transpose()?;
        let on_no_response = match &l.on_no_response {
            None => NoResponse::Expire,
            Some(s) => match s.get_ref().as_str() {
                "expire" => NoResponse::Expire,
                "escalate" => NoResponse::Escalate,
                "revert" => NoResponse::Revert,
                "approve" => {
                    return Err(src.err(s.span(), "no lane may time out into approval: use expire, escalate or revert"))
                }
                other => {
                    return Err(src.err(s.span(), format!("unknown outcome {other:?}: use expire, escalate or revert")))
                }
            },
        };
        if on_no_response == NoResponse::Escalate && l.escalation.is_empty() {
            let span = l.on_no_response.as_ref().map_or(0..0, |s| s.span());
            return Err(src.err(span, "on_no_response = \"escalate\" needs an escalation chain of pools"));
        }
        let wants = match t {
            Tier::AutoPass => l.approvals == 0,
            Tier::Single => l.approvals >= 1,
            Tier::TwoPerson => l.approvals >= 2,
            Tier::Expert => l.approvals >= 1,
            Tier::Blocked => l.approvals == 0,
        };
        if !wants {
            let span = l.pools.first().map_or(0..0, |p| p.span());
            let need = match t {
                Tier::AutoPass | Tier::Blocked => "0 (nobody approves this lane)",
                Tier::TwoPerson => "at least 2",
                _ => "at least 1",
            };
            return Err(src.err(span, format!("lane {} has approvals = {}, needs {need}", t.name(), l.approvals)));
        }
        Ok(Lane {
            approvals: l.approvals,
            roles,
            pools: names(&l.pools),
            timeout_secs,
            escalation: names(&l.escalation),
            on_no_response,
        })
    }

    fn break_glass(&mut self, src: Src<'_>, b: BreakGlassFile, span: Range<usize>) -> Result<BreakGlass, PolicyError> {
        for p in b.pools.iter().chain(std::iter::once(&b.post_review_pool)) {
            self.pool_ref(src, p);
        }
        if b.max_cohort == 0 || b.approvals == 0 {
            return Err(src.err(span, "[break_glass] needs max_cohort >= 1 and approvals >= 1"));
        }
        let max_lifetime_secs = duration(src, &b.max_lifetime)?;
        if max_lifetime_secs > u64::from(u32::MAX) {
            return Err(src.err(b.max_lifetime.span(), "max_lifetime is too long"));
        }
        Ok(BreakGlass {
            max_cohort: b.max_cohort,
            max_lifetime_secs,
            approvals: b.approvals,
            pools: names(&b.pools),
            post_review_pool: b.post_review_pool.into_inner(),
        })
    }

    fn rule(&self, src: Src<'_>, r: RuleFile, span: Range<usize>) -> Result<Rule, PolicyError> {
        if r.name.trim().is_empty() {
            return Err(src.err(span, "a rule needs a name"));
        }
        let tier = tier(src, &r.tier)?;
        let when = when(src, r.when)?;
        let (file, line) = src.at(span);
        Ok(Rule { name: r.name, why: r.why, file, line, when, tier })
    }

    /// Refuses a lane whose pools (escalation included) hold fewer distinct members than the
    /// approvals it needs: such a lane could never reach its quorum.
    fn enough_members(
        all: &BTreeMap<String, (Pool, Origin)>,
        lane: &str,
        approvals: u8,
        pools: &[&String],
        file: &str,
        line: usize,
    ) -> Result<(), PolicyError> {
        let members: std::collections::BTreeSet<&String> =
            pools.iter().filter_map(|p| all.get(*p)).flat_map(|(pool, _)| &pool.members).collect();
        if members.len() >= usize::from(approvals) {
            return Ok(());
        }
        let names: Vec<&str> = pools.iter().map(|p| p.as_str()).collect();
        Err(PolicyError {
            file: file.to_string(),
            line,
            reason: format!(
                "lane {lane} needs {approvals} distinct approvers but its pools ({}) have only {} member(s): \
                 it could never be approved; add members or lower approvals",
                if names.is_empty() { "none".to_string() } else { names.join(", ") },
                members.len()
            ),
        })
    }

    fn finish(self, digest: [u8; 32], files: Vec<String>) -> Result<Policy, PolicyError> {
        let whole = |reason: String| PolicyError { file: files.join(", "), line: 0, reason };
        for (name, err) in &self.pool_refs {
            if !self.pools.contains_key(name) {
                return Err(err.clone());
            }
        }
        let Some((floor, _)) = self.device_floor else { return Err(whole("no [device_floor] section".into())) };
        let Some((break_glass, _)) = self.break_glass else { return Err(whole("no [break_glass] section".into())) };
        for t in Tier::ALL {
            if !self.lanes.contains_key(&t) {
                return Err(whole(format!("no [lanes.{}] section", t.name())));
            }
        }
        for (t, (lane, (file, line))) in &self.lanes {
            let pools: Vec<&String> = lane.pools.iter().chain(&lane.escalation).collect();
            Self::enough_members(&self.pools, t.name(), lane.approvals, &pools, file, *line)?;
        }
        let bg_pools: Vec<&String> = break_glass.pools.iter().collect();
        Self::enough_members(&self.pools, "break_glass", break_glass.approvals, &bg_pools, &files.join(", "), 0)?;
        let lanes: BTreeMap<Tier, Lane> = self.lanes.into_iter().map(|(t, (l, _))| (t, l)).collect();
        let requirement = |t: Tier| -> Requirement {
            let lane = &lanes[&t];
            let roles = lane.roles.iter().filter_map(|r| role_by_name(r)).fold(Roles::NONE, Roles::union);
            Requirement { approvals: lane.approvals, roles }
        };
        let requirements = [
            requirement(Tier::AutoPass),
            requirement(Tier::Single),
            requirement(Tier::TwoPerson),
            requirement(Tier::Expert),
        ];
        if requirements.windows(2).any(|w| w[0].approvals > w[1].approvals) {
            return Err(whole("lane approvals must not decrease from auto_pass to expert (devices check that)".into()));
        }
        let device_rules = TierRules {
            requirements,
            size_floors: heapless::Vec::from_slice(&floor.size).map_err(|_| {
                whole(format!("at most {} [device_floor] size thresholds", airlock_proto::limits::MAX_SIZE_FLOORS))
            })?,
            no_rollback: floor.no_rollback,
            security: floor.security,
            kind: floor.kind,
            break_glass: BreakGlassRule {
                requirement: Requirement { approvals: break_glass.approvals, roles: Roles::BREAK_GLASS },
                max_cohort: break_glass.max_cohort,
                max_lifetime_secs: break_glass.max_lifetime_secs as u32,
            },
        };
        Ok(Policy {
            digest,
            files,
            default_tier: self.default_tier.map_or(Tier::Single, |(t, _)| t),
            rules: self.rules,
            lanes,
            pools: self.pools.into_iter().map(|(n, (p, _))| (n, p)).collect(),
            break_glass,
            device_rules,
        })
    }
}

fn names(v: &[Spanned<String>]) -> Vec<String> {
    v.iter().map(|s| s.get_ref().clone()).collect()
}

fn device_floor(src: Src<'_>, d: DeviceFloorFile) -> Result<DeviceFloor, PolicyError> {
    let mut size = Vec::new();
    for s in &d.size {
        let f = s.get_ref();
        if size.last().is_some_and(|p: &SizeFloor| p.min_size >= f.min) {
            return Err(src.err(s.span(), "device_floor size thresholds must be in increasing order of min"));
        }
        size.push(SizeFloor { min_size: f.min, tier: tier(src, &f.tier)? });
    }
    let mut kind = [None; 3];
    for (name, t) in &d.kind {
        let k = Kind::parse(name)
            .ok_or_else(|| src.err(t.span(), format!("unknown kind {name:?}: use firmware, config or decommission")))?;
        kind[k as usize] = Some(tier(src, t)?);
    }
    let [Some(fw), Some(cfg), Some(dec)] = kind else {
        let span = d.kind.values().next().map_or(0..0, |t| t.span());
        return Err(src.err(span, "device_floor.kind needs firmware, config and decommission"));
    };
    Ok(DeviceFloor {
        size,
        no_rollback: tier(src, &d.no_rollback)?,
        security: tier(src, &d.security)?,
        kind: [fw, cfg, dec],
    })
}

fn when(src: Src<'_>, w: WhenFile) -> Result<When, PolicyError> {
    let kind = w
        .kind
        .map(|ks| {
            ks.iter()
                .map(|k| {
                    Kind::parse(k.get_ref()).ok_or_else(|| {
                        src.err(
                            k.span(),
                            format!("unknown kind {:?}: use firmware, config or decommission", k.get_ref()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let share = |s: &Option<Spanned<f64>>| -> Result<Option<f64>, PolicyError> {
        match s {
            Some(v) if !(0.0..=1.0).contains(v.get_ref()) => {
                Err(src.err(v.span(), format!("share {} is not between 0 and 1", v.get_ref())))
            }
            Some(v) => Ok(Some(*v.get_ref())),
            None => Ok(None),
        }
    };
    let hours = w
        .hours
        .as_ref()
        .map(|h| {
            parse_hours(h.get_ref())
                .ok_or_else(|| src.err(h.span(), format!("bad hours {:?}: use \"HH:MM-HH:MM\" in UTC", h.get_ref())))
        })
        .transpose()?;
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let days = w
        .days
        .map(|ds| {
            ds.iter()
                .map(|d| {
                    DAYS.iter().position(|n| *n == d.get_ref().as_str()).map(|i| i as u8).ok_or_else(|| {
                        src.err(
                            d.span(),
                            format!("unknown day {:?}: use mon, tue, wed, thu, fri, sat, sun", d.get_ref()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(When {
        kind,
        environment: w.environment,
        hardware: w.hardware,
        cohort_size_at_least: w.cohort_size_at_least,
        share_above: share(&w.share_above)?,
        share_at_least: share(&w.share_at_least)?,
        rollback: w.rollback,
        security: w.security,
        hours,
        days,
    })
}

fn parse_hours(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let minute = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    Some((minute(a)?, minute(b)?))
}
