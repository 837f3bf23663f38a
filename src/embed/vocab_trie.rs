//! A double-array trie of byte strings: from a node, the child along a byte is one array step
//! (`base + byte`, owned if its `parent` is the node), with no hashing and no allocation, so
//! WordPiece's longest vocabulary entry at a position is one walk along the text.

/// A node: the root, or the end of a prefix of some entries.
pub type Node = u32;

/// The node of the empty prefix.
pub const ROOT: Node = 0;

/// `parent` of a free slot (and of the root, which is no node's child); `id` of a node that ends
/// no entry.
const NONE: u32 = u32::MAX;

/// A string and its id.
type Entry<'e> = (&'e [u8], u32);

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// A node's children are at `base + byte`, for the bytes that follow it in some entry.
    base: u32,
    /// The node whose child this slot is, or [`NONE`] for a free slot.
    parent: Node,
    /// The id of the entry that ends here, or [`NONE`].
    id: u32,
}

impl Slot {
    const FREE: Slot = Slot {
        base: 0,
        parent: NONE,
        id: NONE,
    };
}

pub struct VocabTrie {
    slots: Vec<Slot>,
}

impl VocabTrie {
    /// The trie of `entries`, each a byte string with its id. Strings must be distinct.
    pub fn new<'e>(entries: impl IntoIterator<Item = Entry<'e>>) -> Self {
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries.sort_unstable();
        let mut builder = Builder::new();
        builder.place(ROOT, &entries, 0);
        Self {
            slots: builder.slots,
        }
    }

    /// The node of `node`'s prefix followed by `byte`, if some entry starts so.
    #[inline]
    pub fn child(&self, node: Node, byte: u8) -> Option<Node> {
        let at = self.slots[node as usize].base as usize + usize::from(byte);
        match self.slots.get(at) {
            Some(slot) if slot.parent == node => Some(at as Node),
            _ => None,
        }
    }

    /// The node of `node`'s prefix followed by `bytes`, if some entry starts so.
    pub fn descend(&self, node: Node, bytes: &[u8]) -> Option<Node> {
        bytes
            .iter()
            .try_fold(node, |node, &byte| self.child(node, byte))
    }

    /// The id of the entry whose string is `node`'s prefix.
    #[inline]
    pub fn id(&self, node: Node) -> Option<u32> {
        let id = self.slots[node as usize].id;
        (id != NONE).then_some(id)
    }
}

struct Builder {
    slots: Vec<Slot>,
    /// Per slot: itself if free, else a later slot from which to look for a free one (a
    /// union-find forest over the used slots, so a search skips them in near-constant time).
    next_free: Vec<usize>,
}

impl Builder {
    fn new() -> Self {
        // Slot 0 is the root's.
        Self {
            slots: vec![Slot::FREE],
            next_free: vec![1],
        }
    }

    /// Makes `node` the trie of `entries`, sorted strings that all start with `node`'s prefix
    /// of `depth` bytes.
    fn place(&mut self, node: Node, entries: &[Entry], depth: usize) {
        let mut rest = entries;
        if let Some((&(key, id), longer)) = entries.split_first() {
            // Sorted, the prefix itself comes before the strings that extend it.
            if key.len() == depth {
                self.slots[node as usize].id = id;
                rest = longer;
            }
        }
        let children: Vec<(usize, &[Entry])> = rest
            .chunk_by(|a, b| a.0[depth] == b.0[depth])
            .map(|group| (usize::from(group[0].0[depth]), group))
            .collect();
        let Some(&(lowest, _)) = children.first() else {
            return;
        };
        // First fit: the lowest base (at least 1, to keep off the root's slot) that puts every
        // child in a free slot, trying only bases that put the lowest child in one.
        let mut at = self.free_from(lowest + 1);
        let base = loop {
            let base = at - lowest;
            if children.iter().all(|&(byte, _)| self.is_free(base + byte)) {
                break base;
            }
            at = self.free_from(at + 1);
        };
        let end = base + children.last().map_or(0, |&(byte, _)| byte) + 1;
        if self.slots.len() < end {
            self.slots.resize(end, Slot::FREE);
            self.next_free.extend(self.next_free.len()..end);
        }
        self.slots[node as usize].base = base as u32;
        for &(byte, _) in &children {
            self.slots[base + byte].parent = node;
            self.next_free[base + byte] = base + byte + 1;
        }
        for (byte, group) in children {
            self.place((base + byte) as Node, group, depth + 1);
        }
    }

    /// The first free slot at or after `at` (slots past the end are free).
    fn free_from(&mut self, mut at: usize) -> usize {
        while at < self.next_free.len() && self.next_free[at] != at {
            let next = self.next_free[at];
            // Path halving: point past the next used slot too.
            self.next_free[at] = self.next_free.get(next).copied().unwrap_or(next);
            at = next;
        }
        at
    }

    fn is_free(&self, at: usize) -> bool {
        self.slots.get(at).is_none_or(|slot| slot.parent == NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(entries: &[(&str, u32)]) -> VocabTrie {
        VocabTrie::new(entries.iter().map(|&(key, id)| (key.as_bytes(), id)))
    }

    fn lookup(trie: &VocabTrie, key: &str) -> Option<u32> {
        trie.descend(ROOT, key.as_bytes())
            .and_then(|node| trie.id(node))
    }

    #[test]
    fn every_entry_is_found_and_nothing_else() {
        let entries = [
            ("a", 1),
            ("ab", 2),
            ("abc", 3),
            ("b", 4),
            ("##c", 5),
            ("##cd", 6),
            ("zz", 7),
            ("!", 8),
        ];
        let trie = trie(&entries);
        for (key, id) in entries {
            assert_eq!(lookup(&trie, key), Some(id), "{key}");
        }
        for absent in ["", "z", "abcd", "#", "##", "##d", "c", "bb", "!!"] {
            assert_eq!(lookup(&trie, absent), None, "{absent}");
        }
        let continuation = trie.descend(ROOT, b"##").unwrap();
        assert_eq!(
            trie.descend(continuation, b"cd").and_then(|n| trie.id(n)),
            Some(6)
        );
    }

    #[test]
    fn an_empty_trie_has_no_children() {
        let trie = trie(&[]);
        assert!((0..=u8::MAX).all(|byte| trie.child(ROOT, byte).is_none()));
    }

    #[test]
    fn entries_with_every_byte_do_not_collide() {
        let keys: Vec<Vec<u8>> = (0..=u8::MAX)
            .flat_map(|a| [vec![a], vec![a, a], vec![a, u8::MAX - a, 7]])
            .collect();
        let trie = VocabTrie::new(keys.iter().zip(0..).map(|(key, id)| (key.as_slice(), id)));
        for (key, id) in keys.iter().zip(0..) {
            let node = trie.descend(ROOT, key);
            assert_eq!(node.and_then(|n| trie.id(n)), Some(id), "{key:?}");
        }
        assert_eq!(trie.descend(ROOT, &[1, 2]), None);
    }
}
