//! rmqtt's hooks: the same logins and the same per-device ACL as airlock-broker
//! (`airlock_broker::acl`), so the comparison carries the same checks.

use crate::serve::{check_login as login, CONTROLLER};
use airlock_broker::acl;
use airlock_broker::Principal;
use async_trait::async_trait;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::types::{AuthResult, PublishAclResult, SubscribeAclResult};

pub struct Hooks;

fn principal(client_id: &str) -> Principal {
    if client_id == CONTROLLER {
        Principal::Controller
    } else {
        Principal::Device(client_id.into())
    }
}

#[async_trait]
impl Handler for Hooks {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(info) => {
                let user = info.username().map(|u| u.to_string()).unwrap_or_default();
                let pass = info.password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
                let ok = info.client_id().as_ref() as &str == user.as_str() && login(&user, &pass).is_some();
                let r = if ok { AuthResult::Allow(false, None) } else { AuthResult::BadUsernameOrPassword };
                (false, Some(HookResult::AuthResult(r)))
            }
            Parameter::ClientSubscribeCheckAcl(session, sub) => {
                let who = principal(&session.id.client_id);
                let r = match acl::check_subscribe(&who, &sub.topic_filter) {
                    Ok(()) => SubscribeAclResult::new_success(sub.opts.qos(), None),
                    Err(_) => SubscribeAclResult::new_failure(rmqtt::codec::v5::SubscribeAckReason::NotAuthorized),
                };
                (false, Some(HookResult::SubscribeAclResult(r)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let who = principal(&session.id.client_id);
                let r = match acl::check_publish(&who, &publish.topic) {
                    Ok(()) => PublishAclResult::allow(),
                    Err(_) => PublishAclResult::rejected(false, None),
                };
                (false, Some(HookResult::PublishAclResult(r)))
            }
            _ => (true, acc),
        }
    }
}
