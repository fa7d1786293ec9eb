//! One tag API per service, and the frame around it.
//!
//! A service says how it lists, tags and untags one resource and how many
//! tags a call takes ([`TagApi`]); the frame does the rest the same way for
//! every service: tags the stack-wide search already saw are not asked for
//! again ([`read`]), calls are paced and chunked ([`sync`]), and an update
//! sets every tag the resource should carry and removes the ones its `Tags`
//! property no longer gives ([`sync_update`]).

use std::collections::BTreeMap;
use std::future::Future;

use fastcart_engine::{DriverError, UpdateRequest};

use crate::props::{all_tags, removed_tags};
use crate::sdk::Clients;

/// One service's tagging calls for one kind of resource, addressed by `id`
/// (an ARN, a name or a key id, whatever the service takes).
pub trait TagApi: Sync {
    /// Most tags (and tag keys) one tag or untag call takes.
    const PER_CALL: usize;

    /// Every tag of the resource.
    fn list(&self, id: &str) -> impl Future<Output = Result<Tags, DriverError>> + Send;

    /// Sets `tags` (at most [`Self::PER_CALL`]).
    fn tag(
        &self,
        id: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Removes the tags with these keys (at most [`Self::PER_CALL`]).
    fn untag(
        &self,
        id: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<(), DriverError>> + Send;
}

pub type Tags = BTreeMap<String, String>;

/// The tags of the resource `arn` (listed by `id`): what the last
/// stack-wide search saw, when nothing changed since, else `list`.
pub async fn read<A: TagApi>(
    c: &Clients,
    api: &A,
    arn: &str,
    id: &str,
) -> Result<Tags, DriverError> {
    match c.snapshot_tags(arn) {
        Some(tags) => Ok(tags),
        None => api.list(id).await,
    }
}

/// Sets `tags` on the resource and removes `removed`, in chunks the
/// service accepts.
pub async fn sync<A: TagApi>(
    api: &A,
    id: &str,
    tags: &Tags,
    removed: &[String],
) -> Result<(), DriverError> {
    let pairs: Vec<(String, String)> = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for chunk in pairs.chunks(A::PER_CALL) {
        api.tag(id, chunk).await?;
    }
    for chunk in removed.chunks(A::PER_CALL) {
        api.untag(id, chunk).await?;
    }
    Ok(())
}

/// An update's tags: every tag the resource should carry (the stack's, the
/// ownership tags and its own `Tags`), and the keys its `Tags` no longer
/// gives removed.
pub async fn sync_update<A: TagApi>(
    api: &A,
    id: &str,
    req: &UpdateRequest<'_>,
) -> Result<(), DriverError> {
    sync(
        api,
        id,
        &all_tags(req.properties, req.tags),
        &removed_tags(req.previous, req.properties, req.tags),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A service that takes two tags a call and records what it was sent.
    struct Recorder(Mutex<Vec<String>>);

    impl TagApi for Recorder {
        const PER_CALL: usize = 2;

        async fn list(&self, _id: &str) -> Result<Tags, DriverError> {
            self.0.lock().unwrap().push("list".into());
            Ok(Tags::from([("a".to_string(), "1".to_string())]))
        }

        async fn tag(&self, id: &str, tags: &[(String, String)]) -> Result<(), DriverError> {
            let keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
            self.0
                .lock()
                .unwrap()
                .push(format!("tag {id} {}", keys.join(",")));
            Ok(())
        }

        async fn untag(&self, id: &str, keys: &[String]) -> Result<(), DriverError> {
            self.0
                .lock()
                .unwrap()
                .push(format!("untag {id} {}", keys.join(",")));
            Ok(())
        }
    }

    #[tokio::test]
    async fn tags_go_in_chunks_the_service_takes_and_a_seen_tag_is_not_listed_again() {
        let c = Clients::offline();
        let api = Recorder(Mutex::new(Vec::new()));
        let tags: Tags = ["a", "b", "c"]
            .iter()
            .map(|k| (k.to_string(), "v".to_string()))
            .collect();
        sync(&api, "r", &tags, &["x".into(), "y".into(), "z".into()])
            .await
            .unwrap();
        assert_eq!(
            *api.0.lock().unwrap(),
            ["tag r a,b", "tag r c", "untag r x,y", "untag r z"]
        );
        api.0.lock().unwrap().clear();
        let arn = "arn:aws:logs:eu-central-1:1:log-group:/g";
        assert_eq!(read(&c, &api, arn, "r").await.unwrap().len(), 1);
        assert_eq!(*api.0.lock().unwrap(), ["list"], "nothing seen yet: listed");
        c.keep_tags(c.mutations(), vec![(arn.to_string(), tags.clone())]);
        assert_eq!(read(&c, &api, arn, "r").await.unwrap(), tags);
        assert_eq!(
            api.0.lock().unwrap().len(),
            1,
            "seen by the search: not listed"
        );
    }
}

/// What AWS accepts in a type's tags, as its resource schema gives them: a
/// key of 1 to `key_max` characters, a value of `value_min` to `value_max`,
/// and for some services a pattern for each. Validation holds every tag a
/// resource is created with to them (the stack's and the ownership tags,
/// which carry the environment) before any AWS call; the conformance test
/// holds them against AWS's schemas.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub key_max: usize,
    pub value_min: Option<usize>,
    pub value_max: usize,
    pub key_pattern: Option<&'static str>,
    pub value_pattern: Option<&'static str>,
}

/// Keys of 128 characters and values of 256, any characters: most services.
pub const LIMITS: Limits = Limits {
    key_max: 128,
    value_min: Some(0),
    value_max: 256,
    key_pattern: None,
    value_pattern: None,
};

/// ECS and ELBv2: letters, digits, spaces and `_.:/=+-@` only.
pub const LIMITS_PATTERNED: Limits = Limits {
    key_pattern: Some(TAG_CHARACTERS),
    value_pattern: Some(TAG_CHARACTERS),
    ..LIMITS
};

const TAG_CHARACTERS: &str = "^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$";

/// [`Limits`] as a schema builder: `.tag_limits(&tags::LIMITS)`.
pub trait Limited {
    fn tag_limits(self, limits: &Limits) -> Self;
}

impl Limited for fastcart_engine::TypeSchema {
    fn tag_limits(self, l: &Limits) -> Self {
        let mut s = self.length("Tags/*/Key", 1, l.key_max);
        s = match l.value_min {
            Some(min) => s.length("Tags/*/Value", min, l.value_max),
            None => s.max_length("Tags/*/Value", l.value_max),
        };
        if let Some(p) = l.key_pattern {
            s = s.pattern("Tags/*/Key", p);
        }
        if let Some(p) = l.value_pattern {
            s = s.pattern("Tags/*/Value", p);
        }
        s
    }
}
