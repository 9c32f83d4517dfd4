//! The CNI verbs, one module each.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod status;
pub mod version;

use crate::config::NetConf;
use crate::env::NetworkVerb;
use crate::error::CniError;
use crate::result::AddResult;

/// Runs a verb that reads the network configuration; `Some` is the result to print.
pub async fn run(verb: &NetworkVerb, conf: &NetConf) -> Result<Option<AddResult>, CniError> {
    match verb {
        NetworkVerb::Add { attachment, netns } => add::run(conf, attachment, netns).await.map(Some),
        NetworkVerb::Del { attachment } => del::run(conf, attachment).await.map(|()| None),
        NetworkVerb::Check { attachment, netns } => {
            check::run(conf, attachment, netns).await.map(|()| None)
        }
        NetworkVerb::Status => status::run(conf).await.map(|()| None),
        NetworkVerb::Gc => gc::run(conf).await.map(|()| None),
    }
}
