//! Topic names, topic filters and the subscription trie.
//!
//! A filter is split at `/` into levels; the trie has one node per level, a `+` child for
//! single-level wildcards and a set of `#` subscribers per node. Matching a topic walks at most
//! `levels × (1 + wildcard branches)` nodes, so a publish costs the same whether 10 or 100,000
//! devices have their own exact subscriptions (rumqttd scans every filter per new topic).
//! Topics beginning with `$` are not matched by a leading wildcard (MQTT 3.1.1 §4.7.2).

use std::collections::HashMap;

/// Longest topic or filter accepted, in bytes (MQTT allows 65,535; ours are under 100).
pub const MAX_TOPIC_LEN: usize = 1024;

/// Why a topic name or filter is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Empty.
    #[error("the topic is empty")]
    Empty,
    /// Longer than [`MAX_TOPIC_LEN`].
    #[error("the topic is longer than {MAX_TOPIC_LEN} bytes")]
    TooLong,
    /// Contains NUL.
    #[error("the topic contains a NUL character")]
    Nul,
    /// A topic name (not a filter) contains `+` or `#`.
    #[error("a topic name may not contain the wildcards + or #")]
    WildcardInName,
    /// `+` or `#` not alone in its level, or `#` not last.
    #[error("a wildcard must fill a whole level, and # must be the last level")]
    BadWildcard,
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if s.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Checks a topic name a message is published on.
pub fn check_name(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a subscription filter.
pub fn check_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            "+" => {}
            "#" if last => {}
            l if l.contains(['+', '#']) => return Err(TopicError::BadWildcard),
            "#" => return Err(TopicError::BadWildcard),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `filter` has a wildcard.
pub fn is_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Subscriptions: filter → subscribers, each keyed by `K` with a value `V`.
#[derive(Debug)]
pub(crate) struct Trie<K, V> {
    root: Node<K, V>,
    len: usize,
}

#[derive(Debug)]
struct Node<K, V> {
    children: HashMap<Box<str>, Node<K, V>>,
    plus: Option<Box<Node<K, V>>>,
    /// Subscribers whose filter ends at this node.
    here: HashMap<K, V>,
    /// Subscribers whose filter ends with `#` after this node.
    hash: HashMap<K, V>,
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Node { children: HashMap::new(), plus: None, here: HashMap::new(), hash: HashMap::new() }
    }
}

impl<K, V> Node<K, V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plus.is_none() && self.here.is_empty() && self.hash.is_empty()
    }
}

impl<K: std::hash::Hash + Eq + Copy, V> Default for Trie<K, V> {
    fn default() -> Self {
        Trie { root: Node::default(), len: 0 }
    }
}

impl<K: std::hash::Hash + Eq + Copy, V> Trie<K, V> {
    /// Number of (filter, subscriber) entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds or replaces `key`'s subscription to `filter` (already checked).
    pub(crate) fn insert(&mut self, filter: &str, key: K, value: V) {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                if node.hash.insert(key, value).is_none() {
                    self.len += 1;
                }
                return;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        if node.here.insert(key, value).is_none() {
            self.len += 1;
        }
    }

    /// Removes `key`'s subscription to `filter`; says whether there was one. Empty nodes go.
    pub(crate) fn remove(&mut self, filter: &str, key: K) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, key);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` for every subscriber whose filter matches `topic` (a checked topic name). A
    /// subscriber with several matching filters is seen once per filter.
    pub(crate) fn for_each_match(&self, topic: &str, mut f: impl FnMut(&K, &V)) {
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        walk(&self.root, &levels, dollar, &mut f);
    }
}

fn remove_at<K: std::hash::Hash + Eq + Copy, V>(node: &mut Node<K, V>, levels: &[&str], key: K) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        return node.here.remove(&key).is_some();
    };
    if *first == "#" && rest.is_empty() {
        return node.hash.remove(&key).is_some();
    }
    if *first == "+" {
        let Some(child) = node.plus.as_mut() else { return false };
        let removed = remove_at(child, rest, key);
        if child.is_empty() {
            node.plus = None;
        }
        return removed;
    }
    let Some(child) = node.children.get_mut(*first) else { return false };
    let removed = remove_at(child, rest, key);
    if child.is_empty() {
        node.children.remove(*first);
    }
    removed
}

fn walk<K, V>(node: &Node<K, V>, levels: &[&str], dollar_first: bool, f: &mut impl FnMut(&K, &V)) {
    // `#` matches this level and everything below it, including the parent level itself
    // ("a/#" matches "a"), but never a `$` topic at the first level.
    if !dollar_first {
        node.hash.iter().for_each(|(k, v)| f(k, v));
    }
    let Some((first, rest)) = levels.split_first() else {
        node.here.iter().for_each(|(k, v)| f(k, v));
        return;
    };
    if let Some(child) = node.children.get(*first) {
        walk(child, rest, false, f);
    }
    if !dollar_first {
        if let Some(plus) = &node.plus {
            walk(plus, rest, false, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(trie: &Trie<u32, ()>, topic: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |k, _| out.push(*k));
        out.sort_unstable();
        out
    }

    #[test]
    fn exact_plus_and_hash_filters_match_as_mqtt_says() {
        let mut t = Trie::default();
        t.insert("airlock/v1/d/a/manifest", 1, ());
        t.insert("airlock/v1/d/+/report", 2, ());
        t.insert("airlock/v1/i/#", 3, ());
        t.insert("#", 4, ());
        t.insert("airlock/#", 5, ());
        assert_eq!(matches(&t, "airlock/v1/d/a/manifest"), vec![1, 4, 5]);
        assert_eq!(matches(&t, "airlock/v1/d/b/report"), vec![2, 4, 5]);
        assert_eq!(matches(&t, "airlock/v1/d/b/report/x"), vec![4, 5]);
        assert_eq!(matches(&t, "airlock/v1/i/abcd"), vec![3, 4, 5]);
        assert_eq!(matches(&t, "airlock"), vec![4, 5], "a/# matches a itself");
        assert_eq!(matches(&t, "$SYS/x"), Vec::<u32>::new(), "wildcards never match a $ topic's first level");
    }

    #[test]
    fn removing_a_subscription_prunes_its_nodes_and_keeps_the_others() {
        let mut t = Trie::default();
        t.insert("a/b/c", 1, ());
        t.insert("a/+/c", 2, ());
        t.insert("a/#", 3, ());
        assert_eq!(t.len(), 3);
        assert!(t.remove("a/b/c", 1));
        assert!(!t.remove("a/b/c", 1), "a second removal finds nothing");
        assert!(t.remove("a/+/c", 2));
        assert_eq!(matches(&t, "a/b/c"), vec![3]);
        assert!(t.remove("a/#", 3));
        assert_eq!(t.len(), 0);
        assert!(t.root.is_empty(), "every node was pruned");
    }

    #[test]
    fn subscribing_twice_to_one_filter_replaces_the_entry() {
        let mut t = Trie::default();
        t.insert("x/y", 1, 0u8);
        t.insert("x/y", 1, 1u8);
        assert_eq!(t.len(), 1);
        let mut seen = Vec::new();
        t.for_each_match("x/y", |_, v| seen.push(*v));
        assert_eq!(seen, vec![1]);
    }

    #[test]
    fn malformed_filters_and_names_are_refused_with_the_reason() {
        assert_eq!(check_filter("a/#/b"), Err(TopicError::BadWildcard));
        assert_eq!(check_filter("a/b+"), Err(TopicError::BadWildcard));
        assert_eq!(check_filter(""), Err(TopicError::Empty));
        assert_eq!(check_filter("a\0b"), Err(TopicError::Nul));
        assert_eq!(check_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(check_name(&"a".repeat(MAX_TOPIC_LEN + 1)), Err(TopicError::TooLong));
        assert_eq!(check_filter("a/+/#"), Ok(()));
        assert_eq!(check_name("airlock/v1/d/x/report"), Ok(()));
    }
}
