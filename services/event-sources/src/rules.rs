//! Schedule rules and their targets (EventBridge's API subset). (Helper H1 fills this module.)

use lamina_common::ApiResult;

use crate::EventSources;

/// Answers the operations this module owns; `None` for any other.
pub(crate) async fn dispatch(_local: &EventSources, _op: &str, _json: &[u8]) -> Option<ApiResult<Vec<u8>>> {
    None
}
