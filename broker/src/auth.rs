//! Logins: who a connection is, decided by a hook the embedding application implements.
//!
//! The broker itself refuses, before the hook is asked, a CONNECT without a username or with a
//! client id other than the username (a device could otherwise take over another device's
//! session). The hook ([`Authenticator`]) checks the password (the controller looks it up in its
//! database) and names the [`Principal`]; a device principal must be the username it logged in
//! with, or the login is refused. Every refusal has its own [`AuthRefusal`] and CONNACK code.

use rumqttc::mqttbytes::v4::ConnectReturnCode;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Who is connected: decides what the ACL lets it do ([`crate::acl`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The controller (or an operator tool with the controller's login): every topic.
    Controller,
    /// A device, by id: only its own topics and the broadcast topics (read-only).
    Device(Arc<str>),
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Controller => f.write_str("controller"),
            Principal::Device(id) => write!(f, "device {id}"),
        }
    }
}

/// What a CONNECT presented.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The client id (equal to the username; the broker checked it before asking).
    pub client_id: String,
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login").field("client_id", &self.client_id).field("username", &self.username).finish()
    }
}

/// Why a login was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthRefusal {
    /// The CONNECT carried no username or no password.
    #[error("no login: a username and password are required")]
    NoLogin,
    /// The client id differs from the username.
    #[error("the client id {client_id:?} is not the username {username:?}")]
    ClientIdNotUsername {
        /// Client id presented.
        client_id: String,
        /// Username presented.
        username: String,
    },
    /// Nobody with this username may log in.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The password does not match.
    #[error("wrong password for {0:?}")]
    WrongPassword(String),
    /// The hook named a device other than the username.
    #[error("the login for {username:?} named device {device:?}")]
    PrincipalMismatch {
        /// Username presented.
        username: String,
        /// Device the hook named.
        device: String,
    },
    /// The hook could not decide (the database is down, say): refused, never let in.
    #[error("the login check failed: {0}")]
    Unavailable(String),
}

impl AuthRefusal {
    /// Stable name, for counters and logs.
    pub fn name(&self) -> &'static str {
        match self {
            AuthRefusal::NoLogin => "no_login",
            AuthRefusal::ClientIdNotUsername { .. } => "client_id_not_username",
            AuthRefusal::UnknownUser(_) => "unknown_user",
            AuthRefusal::WrongPassword(_) => "wrong_password",
            AuthRefusal::PrincipalMismatch { .. } => "principal_mismatch",
            AuthRefusal::Unavailable(_) => "unavailable",
        }
    }

    /// The CONNACK return code the client gets.
    pub(crate) fn code(&self) -> ConnectReturnCode {
        match self {
            AuthRefusal::ClientIdNotUsername { .. } => ConnectReturnCode::BadClientId,
            AuthRefusal::NoLogin | AuthRefusal::UnknownUser(_) | AuthRefusal::WrongPassword(_) => {
                ConnectReturnCode::BadUserNamePassword
            }
            AuthRefusal::PrincipalMismatch { .. } => ConnectReturnCode::NotAuthorized,
            AuthRefusal::Unavailable(_) => ConnectReturnCode::ServiceUnavailable,
        }
    }
}

/// The future an [`Authenticator`] returns.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Principal, AuthRefusal>> + Send + 'a>>;

/// The login hook. Called once per CONNECT that passed the broker's own checks, concurrently
/// for many connections; it should answer within the broker's connect timeout.
pub trait Authenticator: Send + Sync + 'static {
    /// Decides who `login` is, or why it may not connect.
    fn authenticate<'a>(&'a self, login: &'a Login) -> AuthFuture<'a>;
}

/// A fixed table of logins: for tests, benchmarks and small setups. Production controllers
/// implement [`Authenticator`] over their database.
#[derive(Clone, Default)]
pub struct StaticAuth {
    users: std::collections::HashMap<String, (String, Principal)>,
}

impl fmt::Debug for StaticAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticAuth").field("users", &self.users.len()).finish()
    }
}

impl StaticAuth {
    /// No logins yet.
    pub fn new() -> StaticAuth {
        StaticAuth::default()
    }

    /// Lets device `id` log in with `password`.
    pub fn device(mut self, id: &str, password: &str) -> StaticAuth {
        self.users.insert(id.to_string(), (password.to_string(), Principal::Device(id.into())));
        self
    }

    /// Lets `user` log in as the controller with `password`.
    pub fn controller(mut self, user: &str, password: &str) -> StaticAuth {
        self.users.insert(user.to_string(), (password.to_string(), Principal::Controller));
        self
    }
}

impl Authenticator for StaticAuth {
    fn authenticate<'a>(&'a self, login: &'a Login) -> AuthFuture<'a> {
        let result = match self.users.get(&login.username) {
            None => Err(AuthRefusal::UnknownUser(login.username.clone())),
            Some((password, principal)) => {
                if constant_time_eq(password.as_bytes(), login.password.as_bytes()) {
                    Ok(principal.clone())
                } else {
                    Err(AuthRefusal::WrongPassword(login.username.clone()))
                }
            }
        };
        Box::pin(std::future::ready(result))
    }
}

/// Compares without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The broker's own checks, then the hook. `username`/`password` are what the CONNECT carried.
pub(crate) async fn authenticate(
    hook: &dyn Authenticator,
    client_id: &str,
    login: Option<(String, String)>,
) -> Result<Principal, AuthRefusal> {
    let Some((username, password)) = login else { return Err(AuthRefusal::NoLogin) };
    if username.is_empty() || password.is_empty() {
        return Err(AuthRefusal::NoLogin);
    }
    if client_id != username {
        return Err(AuthRefusal::ClientIdNotUsername { client_id: client_id.to_string(), username });
    }
    let login = Login { client_id: client_id.to_string(), username, password };
    let principal = hook.authenticate(&login).await?;
    if let Principal::Device(id) = &principal {
        if **id != *login.username {
            return Err(AuthRefusal::PrincipalMismatch { username: login.username, device: id.to_string() });
        }
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> StaticAuth {
        StaticAuth::new().device("dev-1", "pw1").controller("ctl", "cpw")
    }

    fn login(u: &str, p: &str) -> Option<(String, String)> {
        Some((u.to_string(), p.to_string()))
    }

    #[tokio::test]
    async fn a_device_with_its_own_id_and_password_is_that_device() {
        assert_eq!(authenticate(&auth(), "dev-1", login("dev-1", "pw1")).await, Ok(Principal::Device("dev-1".into())));
        assert_eq!(authenticate(&auth(), "ctl", login("ctl", "cpw")).await, Ok(Principal::Controller));
    }

    #[tokio::test]
    async fn each_bad_login_is_refused_for_its_own_reason() {
        let a = auth();
        assert_eq!(authenticate(&a, "dev-1", None).await, Err(AuthRefusal::NoLogin));
        assert_eq!(authenticate(&a, "dev-1", login("dev-1", "")).await, Err(AuthRefusal::NoLogin));
        assert!(matches!(
            authenticate(&a, "dev-2", login("dev-1", "pw1")).await,
            Err(AuthRefusal::ClientIdNotUsername { .. })
        ));
        assert_eq!(
            authenticate(&a, "dev-9", login("dev-9", "pw1")).await,
            Err(AuthRefusal::UnknownUser("dev-9".into()))
        );
        assert_eq!(
            authenticate(&a, "dev-1", login("dev-1", "nope")).await,
            Err(AuthRefusal::WrongPassword("dev-1".into()))
        );
    }

    struct Liar;
    impl Authenticator for Liar {
        fn authenticate<'a>(&'a self, _login: &'a Login) -> AuthFuture<'a> {
            Box::pin(async { Ok(Principal::Device("someone-else".into())) })
        }
    }

    #[tokio::test]
    async fn a_hook_naming_another_device_than_the_username_is_refused() {
        assert!(matches!(
            authenticate(&Liar, "dev-1", login("dev-1", "x")).await,
            Err(AuthRefusal::PrincipalMismatch { .. })
        ));
    }
}
