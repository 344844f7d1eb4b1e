//! What a rule does with the fds it matches, and the one JSON form of an action that every output and
//! every input uses (`crrules rules`, `check`, policy tests, images): `{"action": KEYWORD}` plus the
//! action's argument under a key of its own (`substitute`, `limit`, `inherit`, `plugin`, `reason`, and
//! `"exact": true` for `reopen path exact`).

use crate::vocab::ActionWord;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What happens to a matched fd at checkpoint and restore.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `reopen path`: reopen the same path at restore, its type (and a device's number) verified;
    /// `reopen path exact`: the very same file too (device and inode, and a regular file's size).
    ReopenPath { exact: bool },
    /// `reopen "SUBST"`: open a substitute path instead.
    ReopenSubst { path: String },
    /// `contents` / `contents limit SIZE`: save the file's bytes.
    Contents { limit: Option<u64> },
    /// `recreate`: rebuild the kernel object from its saved state.
    Recreate,
    /// `inherit "NAME"`: the restorer hands this fd in.
    Inherit { name: String },
    /// `close`: not restored; a visible loss.
    Close,
    /// `reject "REASON"`: the process is not checkpointable.
    Reject { reason: String },
    /// `plugin "NAME"`: hand the fd to a named backend plugin.
    Plugin { name: String },
}

impl Action {
    /// The action's keyword (`reopen`, `contents`...), as the JSON form's `action` field.
    pub fn keyword(&self) -> &'static str {
        self.word().name()
    }

    /// The action's keyword.
    pub fn word(&self) -> ActionWord {
        match self {
            Action::ReopenPath { .. } | Action::ReopenSubst { .. } => ActionWord::Reopen,
            Action::Contents { .. } => ActionWord::Contents,
            Action::Recreate => ActionWord::Recreate,
            Action::Inherit { .. } => ActionWord::Inherit,
            Action::Close => ActionWord::Close,
            Action::Reject { .. } => ActionWord::Reject,
            Action::Plugin { .. } => ActionWord::Plugin,
        }
    }

    /// True for `reject`.
    pub fn is_reject(&self) -> bool {
        matches!(self, Action::Reject { .. })
    }
}

/// The action as written in a rule (`reopen "/dev/null"`, `contents limit 4096`).
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::ReopenPath { exact: false } => f.write_str("reopen path"),
            Action::ReopenPath { exact: true } => f.write_str("reopen path exact"),
            Action::ReopenSubst { path } => write!(f, "reopen {path:?}"),
            Action::Contents { limit: None } => f.write_str("contents"),
            Action::Contents { limit: Some(n) } => write!(f, "contents limit {n}"),
            Action::Recreate => f.write_str("recreate"),
            Action::Inherit { name } => write!(f, "inherit {name:?}"),
            Action::Close => f.write_str("close"),
            Action::Reject { reason } => write!(f, "reject {reason:?}"),
            Action::Plugin { name } => write!(f, "plugin {name:?}"),
        }
    }
}

/// The action's keyword as a value of the JSON form: the word itself, in every format (RON included).
mod word_serde {
    use crate::vocab::ActionWord;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(word: &Option<ActionWord>, s: S) -> Result<S::Ok, S::Error> {
        match word {
            Some(w) => s.serialize_str(w.name()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ActionWord>, D::Error> {
        let Some(word) = Option::<std::borrow::Cow<'de, str>>::deserialize(d)? else { return Ok(None) };
        ActionWord::from_name(&word).map(Some).ok_or_else(|| {
            let known: Vec<&str> = ActionWord::words().collect();
            serde::de::Error::custom(format!("unknown action `{word}`, expected one of {}", known.join(", ")))
        })
    }
}

/// The JSON form's fields. `reason` is the reject reason of a `reject`; a decision (in the engine) also
/// puts a rule's `because` note there, so one flat object describes a decision whatever its action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionFields {
    #[serde(default, with = "word_serde")]
    pub action: Option<ActionWord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitute: Option<String>,
    /// `reopen path exact`; left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&Action> for ActionFields {
    fn from(action: &Action) -> ActionFields {
        let mut f = ActionFields { action: Some(action.word()), ..ActionFields::default() };
        match action {
            Action::ReopenPath { exact } => f.exact = *exact,
            Action::ReopenSubst { path } => f.substitute = Some(path.clone()),
            Action::Contents { limit } => f.limit = *limit,
            Action::Inherit { name } => f.inherit = Some(name.clone()),
            Action::Plugin { name } => f.plugin = Some(name.clone()),
            Action::Reject { reason } => f.reason = Some(reason.clone()),
            Action::Recreate | Action::Close => {}
        }
        f
    }
}

impl ActionFields {
    /// The action these fields describe. `reason` is taken only by `reject` (elsewhere it is a note, left
    /// to the caller); any other argument that does not belong to the action is an error.
    pub fn to_action(&self) -> Result<Action, String> {
        let word = self.action.ok_or("missing field `action`")?;
        let stray = |allowed: &[&str]| -> Result<(), String> {
            let given = [
                ("substitute", self.substitute.is_some()),
                ("exact", self.exact),
                ("limit", self.limit.is_some()),
                ("inherit", self.inherit.is_some()),
                ("plugin", self.plugin.is_some()),
            ];
            match given.iter().find(|(key, set)| *set && !allowed.contains(key)) {
                Some((key, _)) => Err(format!("`{key}` does not belong to the action `{word}`")),
                None => Ok(()),
            }
        };
        let need = |value: &Option<String>, key: &str| {
            value.clone().ok_or_else(|| format!("the action `{word}` needs `{key}`"))
        };
        Ok(match word {
            ActionWord::Reopen => {
                stray(&["substitute", "exact"])?;
                match &self.substitute {
                    Some(_) if self.exact => {
                        return Err("`exact` belongs to `reopen path` only, not to a `substitute`".into());
                    }
                    Some(path) => Action::ReopenSubst { path: path.clone() },
                    None => Action::ReopenPath { exact: self.exact },
                }
            }
            ActionWord::Contents => {
                stray(&["limit"])?;
                Action::Contents { limit: self.limit }
            }
            ActionWord::Recreate => {
                stray(&[])?;
                Action::Recreate
            }
            ActionWord::Inherit => {
                stray(&["inherit"])?;
                Action::Inherit { name: need(&self.inherit, "inherit")? }
            }
            ActionWord::Close => {
                stray(&[])?;
                Action::Close
            }
            ActionWord::Reject => {
                stray(&[])?;
                Action::Reject { reason: need(&self.reason, "reason")? }
            }
            ActionWord::Plugin => {
                stray(&["plugin"])?;
                Action::Plugin { name: need(&self.plugin, "plugin")? }
            }
        })
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ActionFields::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
        let fields = ActionFields::deserialize(d)?;
        if fields.reason.is_some() && fields.action != Some(ActionWord::Reject) {
            return Err(serde::de::Error::custom("`reason` belongs only to the action `reject`"));
        }
        fields.to_action().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_json_form_both_ways() {
        let cases = [
            (Action::ReopenPath { exact: false }, json!({"action": "reopen"})),
            (Action::ReopenPath { exact: true }, json!({"action": "reopen", "exact": true})),
            (Action::ReopenSubst { path: "/dev/null".into() }, json!({"action": "reopen", "substitute": "/dev/null"})),
            (Action::Contents { limit: None }, json!({"action": "contents"})),
            (Action::Contents { limit: Some(4096) }, json!({"action": "contents", "limit": 4096})),
            (Action::Recreate, json!({"action": "recreate"})),
            (Action::Inherit { name: "pts".into() }, json!({"action": "inherit", "inherit": "pts"})),
            (Action::Close, json!({"action": "close"})),
            (Action::Reject { reason: "no".into() }, json!({"action": "reject", "reason": "no"})),
            (Action::Plugin { name: "gpu".into() }, json!({"action": "plugin", "plugin": "gpu"})),
        ];
        for (action, want) in cases {
            assert_eq!(serde_json::to_value(&action).unwrap(), want, "{action}");
            assert_eq!(serde_json::from_value::<Action>(want).unwrap(), action);
        }
    }

    #[test]
    fn arguments_must_belong_to_the_action() {
        for (bad, why) in [
            (json!({"action": "close", "limit": 3}), "`limit` does not belong to the action `close`"),
            (json!({"action": "close", "exact": true}), "`exact` does not belong to the action `close`"),
            (
                json!({"action": "reopen", "substitute": "/x", "exact": true}),
                "`exact` belongs to `reopen path` only, not to a `substitute`",
            ),
            (json!({"action": "inherit"}), "the action `inherit` needs `inherit`"),
            (json!({"action": "reject"}), "the action `reject` needs `reason`"),
            (json!({"action": "recreate", "reason": "x"}), "`reason` belongs only to the action `reject`"),
            (json!({"substitute": "/x"}), "missing field `action`"),
            (json!({"action": "reopen_subst"}), "unknown action `reopen_subst`, expected one of reopen, contents"),
        ] {
            let err = serde_json::from_value::<Action>(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
