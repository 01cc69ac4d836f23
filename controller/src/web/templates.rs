//! The page templates (minijinja, compiled into the binary with `include_str!`, HTML
//! auto-escaped) and the filters they use.

use crate::users::User;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{context, Environment, Value};
use std::sync::LazyLock;

/// Every page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The token form.
    SignIn,
    /// The approver's queues.
    Queues,
    /// Every proposal.
    History,
    /// One proposal: the approval card.
    Card,
    /// Approval metrics and rollouts.
    Dashboard,
    /// One rollout.
    Rollout,
    /// Something went wrong, in words.
    Error,
}

impl Page {
    fn template(self) -> &'static str {
        match self {
            Page::SignIn => "sign_in.html",
            Page::Queues => "queues.html",
            Page::History => "history.html",
            Page::Card => "card.html",
            Page::Dashboard => "dashboard.html",
            Page::Rollout => "rollout.html",
            Page::Error => "error.html",
        }
    }
}

const TEMPLATES: [(&str, &str); 8] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("sign_in.html", include_str!("../../templates/sign_in.html")),
    ("queues.html", include_str!("../../templates/queues.html")),
    ("history.html", include_str!("../../templates/history.html")),
    ("card.html", include_str!("../../templates/card.html")),
    ("dashboard.html", include_str!("../../templates/dashboard.html")),
    ("rollout.html", include_str!("../../templates/rollout.html")),
    ("error.html", include_str!("../../templates/error.html")),
];

/// The environment, or why a template does not compile (a bug a unit test catches).
static ENV: LazyLock<Result<Environment<'static>, String>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source).map_err(|e| format!("template {name}: {e}"))?;
    }
    env.add_filter("thousands", |n: i64| thousands(n));
    env.add_filter("percent", |x: f64| format!("{:.1}%", x * 100.0));
    env.add_filter("duration", |ms: i64| duration(ms));
    env.add_filter("datetime", |ms: i64| datetime(ms));
    Ok(env)
});

/// Renders `page` for `me` (None: signed out). A template fault is a logged 500.
pub fn render(page: Page, me: Option<&User>, ctx: Value) -> Result<String, minijinja::Error> {
    let env = ENV.as_ref().map_err(|e| minijinja::Error::new(minijinja::ErrorKind::TemplateNotFound, e.clone()))?;
    let me = me.map(|u| {
        context! { name => u.name.clone(), roles => ser(&u.roles), public_key => u.public_key.clone(), approver => u.is_approver() }
    });
    env.get_template(page.template())?.render(context! { me => me, ..ctx })
}

/// Pages run only this server's script and style, and are never framed (an approval card in a
/// hidden frame could be clicked through).
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
         form-action 'self'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    // Not `no-referrer`: with it Chromium sends `Origin: null` on same-origin form posts.
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// Any serialisable value as a template value.
pub fn ser<T: serde::Serialize>(v: &T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// [`render`] as a response.
pub fn page(page: Page, me: Option<&User>, ctx: Value) -> Response {
    match render(page, me, ctx) {
        Ok(html) => (SECURITY_HEADERS, Html(html)).into_response(),
        Err(e) => internal(e),
    }
}

/// An error page with a status and a message naming the problem.
pub fn error_page(status: StatusCode, me: Option<&User>, message: &str) -> Response {
    let ctx = context! { status => status.as_u16(), message => message };
    match render(Page::Error, me, ctx) {
        Ok(html) => (status, SECURITY_HEADERS, Html(html)).into_response(),
        Err(e) => internal(e),
    }
}

/// A logged 500; the browser sees only that it was internal.
pub fn internal(cause: impl std::fmt::Display) -> Response {
    tracing::error!(%cause, "web UI internal error");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error (logged on the controller)").into_response()
}

/// `1240` → `1,240`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Milliseconds in words: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`; negative: `overdue by ...`.
pub fn duration(ms: i64) -> String {
    if ms < 0 {
        return format!("overdue by {}", duration(-ms));
    }
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Unix milliseconds as `2026-11-25 12:00 UTC`.
pub fn datetime(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_times_and_dates_read_as_people_write_them() {
        assert_eq!(thousands(1240), "1,240");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(-1240), "-1,240");
        assert_eq!(duration(45_000), "45 s");
        assert_eq!(duration(3_725_000), "1 h 2 min");
        assert_eq!(duration(-90_000), "overdue by 1 min");
        assert_eq!(duration(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
        assert_eq!(datetime(1_795_608_000_000), "2026-11-25 12:00 UTC");
        assert_eq!(datetime(0), "1970-01-01 00:00 UTC");
        assert_eq!(datetime(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn every_template_compiles_and_autoescapes() {
        let env = ENV.as_ref().unwrap();
        for (name, _) in TEMPLATES {
            env.get_template(name).unwrap();
        }
        let html = render(Page::Error, None, context! { status => 400, message => "<b>bad</b>" }).unwrap();
        assert!(html.contains("&lt;b&gt;bad&lt;&#x2f;b&gt;") || html.contains("&lt;b&gt;bad&lt;/b&gt;"), "{html}");
    }
}
