//! Layering: built-in ← profile ← policy file (and what it extends) ← CLI flags.
//!
//! A pure function of its layers: later layers replace scalars, lists add up (without
//! duplicates), maps merge key by key. Deny lists add up too; that deny wins over allow is
//! applied when the merged policy is resolved, so no layer can lift a lower layer's deny.
//! Each value keeps the layer it came from.

use std::collections::BTreeMap;

use super::firewall::{
    Audit, Errors, Items, Redaction, Resources, Sanitize, ServerRequests, Validation,
};
use super::model::{Env, Filesystem, Launch, Limits, Network, Pin, Policy, Syscalls};
use super::values::Val;
use super::Origin;

/// The merged policy and the layers it came from, lowest first.
#[derive(Debug, Clone)]
pub struct EffectivePolicy {
    pub layers: Vec<Origin>,
    pub policy: Policy,
}

/// Merge `layers` (lowest first) into one policy.
pub fn merge(layers: Vec<(Origin, Policy)>) -> EffectivePolicy {
    let mut origins = Vec::with_capacity(layers.len());
    let mut acc = Policy::default();
    for (origin, layer) in layers {
        acc.merge_from(layer, &origin);
        origins.push(origin);
    }
    acc.version = None;
    acc.description = None;
    acc.extends.clear();
    EffectivePolicy {
        layers: origins,
        policy: acc,
    }
}

/// A part of a policy that can take a higher layer's values.
pub trait Merge: Sized {
    fn merge_from(&mut self, over: Self, origin: &Origin);
    /// Record `origin` on every value that has none yet.
    fn stamped(self, origin: &Origin) -> Self;
}

impl<T> Merge for Val<T> {
    fn merge_from(&mut self, over: Self, origin: &Origin) {
        *self = over.stamped(origin);
    }
    fn stamped(mut self, origin: &Origin) -> Self {
        self.origin.get_or_insert_with(|| origin.clone());
        self
    }
}

impl<T> Merge for Option<Val<T>> {
    fn merge_from(&mut self, over: Self, origin: &Origin) {
        if let Some(v) = over {
            *self = Some(v.stamped(origin));
        }
    }
    fn stamped(self, origin: &Origin) -> Self {
        self.map(|v| v.stamped(origin))
    }
}

impl<T: PartialEq> Merge for Vec<Val<T>> {
    fn merge_from(&mut self, over: Self, origin: &Origin) {
        for v in over {
            if !self.contains(&v) {
                self.push(v.stamped(origin));
            }
        }
    }
    fn stamped(self, origin: &Origin) -> Self {
        self.into_iter().map(|v| v.stamped(origin)).collect()
    }
}

impl<V: Merge> Merge for BTreeMap<String, V> {
    fn merge_from(&mut self, over: Self, origin: &Origin) {
        for (k, v) in over {
            match self.get_mut(&k) {
                Some(existing) => existing.merge_from(v, origin),
                None => {
                    self.insert(k, v.stamped(origin));
                }
            }
        }
    }
    fn stamped(self, origin: &Origin) -> Self {
        self.into_iter()
            .map(|(k, v)| (k, v.stamped(origin)))
            .collect()
    }
}

/// Merge field by field; destructuring makes forgetting a new field a compile error.
macro_rules! merge_fields {
    ($ty:ident { $($f:ident),* $(,)? }) => {
        impl Merge for $ty {
            fn merge_from(&mut self, over: Self, origin: &Origin) {
                let $ty { $($f),* } = over;
                $( self.$f.merge_from($f, origin); )*
            }
            fn stamped(self, origin: &Origin) -> Self {
                let $ty { $($f),* } = self;
                $ty { $($f: $f.stamped(origin)),* }
            }
        }
    };
}

merge_fields!(Launch { allow, deny });
merge_fields!(Filesystem {
    read,
    write,
    exec,
    deny,
    create,
    protect,
    arg_paths
});
merge_fields!(Network {
    mode,
    connect,
    bind,
    allow,
    udp,
    unix,
    isolation
});
merge_fields!(Limits {
    memory,
    pids,
    cpus,
    cpu_time,
    wall_clock,
    file_size,
    open_files,
    request_timeout,
    max_message_bytes
});
merge_fields!(Env { pass, set });
merge_fields!(Syscalls { deny, allow });
merge_fields!(Items {
    allow,
    deny,
    rate_limit,
    rate_limits,
    arguments,
    confirm_timeout,
    each
});
merge_fields!(Resources {
    allow,
    deny,
    rate_limit,
    file_roots
});
merge_fields!(ServerRequests {
    sampling,
    elicitation,
    roots
});
merge_fields!(Redaction {
    enabled,
    builtin,
    patterns,
    allow
});
merge_fields!(Errors { sanitize });
merge_fields!(Pin { mode, injection });
merge_fields!(Sanitize { results });
merge_fields!(Validation {
    strict,
    require_listing,
    tolerate
});
merge_fields!(Audit {
    enabled,
    path,
    required,
    on_suspicious,
    suspicious_refusals,
    suspicious_window,
    redact_keys,
    max_value_bytes,
    max_size,
    keep,
    excerpts,
    forwards,
    otlp_endpoint
});

impl Merge for Policy {
    fn merge_from(&mut self, over: Self, origin: &Origin) {
        // version, description and extends describe one file; they are not inherited.
        let Policy {
            version: _,
            description: _,
            extends: _,
            enforce,
            require,
            launch,
            filesystem,
            network,
            limits,
            env,
            syscalls,
            tools,
            prompts,
            resources,
            server_requests,
            redaction,
            errors,
            sanitize,
            validation,
            audit,
            pin,
        } = over;
        self.enforce.merge_from(enforce, origin);
        self.require.merge_from(require, origin);
        self.launch.merge_from(launch, origin);
        self.filesystem.merge_from(filesystem, origin);
        self.network.merge_from(network, origin);
        self.limits.merge_from(limits, origin);
        self.env.merge_from(env, origin);
        self.syscalls.merge_from(syscalls, origin);
        self.tools.merge_from(tools, origin);
        self.prompts.merge_from(prompts, origin);
        self.resources.merge_from(resources, origin);
        self.server_requests.merge_from(server_requests, origin);
        self.redaction.merge_from(redaction, origin);
        self.errors.merge_from(errors, origin);
        self.sanitize.merge_from(sanitize, origin);
        self.validation.merge_from(validation, origin);
        self.audit.merge_from(audit, origin);
        self.pin.merge_from(pin, origin);
    }
    fn stamped(mut self, origin: &Origin) -> Self {
        let mut out = Policy::default();
        out.merge_from(std::mem::take(&mut self), origin);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::Enforce;
    use crate::policy::values::Size;
    use crate::policy::vars::PathPattern;

    fn layer(text: &str) -> Policy {
        toml::from_str(text).unwrap()
    }

    fn paths(v: &[Val<PathPattern>]) -> Vec<(&str, String)> {
        v.iter()
            .map(|p| (p.value.as_str(), p.origin_label()))
            .collect()
    }

    #[test]
    fn merge_later_scalar_wins_and_records_origin() {
        let eff = merge(vec![
            (
                Origin::Builtin,
                layer("enforce = \"best-effort\"\n[limits]\nmemory = \"1GiB\"\npids = 64"),
            ),
            (
                Origin::Profile("strict".into()),
                layer("enforce = \"required\"\n[limits]\nmemory = \"256MiB\""),
            ),
        ]);
        let p = &eff.policy;
        assert_eq!(p.enforce.as_ref().map(|v| v.value), Some(Enforce::Required));
        assert_eq!(p.enforce.as_ref().unwrap().origin_label(), "profile strict");
        let mem = p.limits.memory.as_ref().unwrap();
        assert_eq!(mem.value, Size::parse("256MiB").unwrap());
        assert_eq!(p.limits.pids.as_ref().unwrap().origin_label(), "built-in");
        assert_eq!(eff.layers.len(), 2);
    }

    #[test]
    fn merge_lists_add_without_duplicates() {
        let eff = merge(vec![
            (
                Origin::Profile("node".into()),
                layer("[filesystem]\nread = [\"/a\", \"/b\"]\ndeny = [\"/s\"]"),
            ),
            (
                Origin::File("p.toml".into()),
                layer("[filesystem]\nread = [\"/b\", \"/c\"]\ndeny = [\"/t\"]"),
            ),
        ]);
        let fs = &eff.policy.filesystem;
        assert_eq!(
            paths(&fs.read),
            vec![
                ("/a", "profile node".into()),
                ("/b", "profile node".into()),
                ("/c", "file p.toml".into())
            ]
        );
        assert_eq!(fs.deny.len(), 2, "a later layer cannot drop a deny");
    }

    #[test]
    fn merge_keeps_flag_origin() {
        let mut flags = Policy::default();
        let flag = Origin::Flag("--allow-read".into());
        flags
            .filesystem
            .read
            .push(Val::new(PathPattern::parse("/x").unwrap(), Some(flag)));
        let eff = merge(vec![
            (Origin::Builtin, Policy::default()),
            (Origin::Flags, flags),
        ]);
        assert_eq!(
            paths(&eff.policy.filesystem.read),
            vec![("/x", "flag --allow-read".into())]
        );
    }

    #[test]
    fn merge_maps_by_key() {
        let eff = merge(vec![
            (Origin::Builtin, layer("[env.set]\nA = \"1\"\nB = \"2\"")),
            (Origin::Flags, layer("[env.set]\nB = \"3\"")),
        ]);
        let set = &eff.policy.env.set;
        assert_eq!(set["A"].value.as_str(), "1");
        assert_eq!(set["B"].value.as_str(), "3");
        assert_eq!(set["B"].origin_label(), "flags");
    }

    #[test]
    fn merge_does_not_inherit_file_metadata() {
        let eff = merge(vec![(
            Origin::Builtin,
            layer("version = 1\ndescription = \"x\"\nextends = [\"node\"]"),
        )]);
        assert!(
            eff.policy.version.is_none()
                && eff.policy.description.is_none()
                && eff.policy.extends.is_empty()
        );
    }
}
