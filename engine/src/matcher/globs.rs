//! The globs of one field (path, filesystem type or anon-inode name), numbered and indexed so that
//! matching one string against thousands of globs tests only the few that could match it. The strings
//! matched are bytes (a path need not be UTF-8): the literal and prefix lookups compare bytes, and
//! `globset` matches bytes too.
//!
//! A glob with no metacharacter is a literal: a hash map answers it. Every other glob is filed under
//! the directory part (up to and including the last `/`) of its literal prefix, the text before its
//! first metacharacter, which every string it matches starts with; a string is then tested only against
//! the globs filed under its own `/`-terminated prefixes (`/`, `/var/`, `/var/log/`...) and those with no
//! literal directory. Globs of one directory are tested one by one when few, or as one `GlobSet` when
//! many. (One `GlobSet` over all globs was measured first: `globset` buckets `/var/log/appN/*.log` by
//! its extension and then runs every such glob's regex on each `.log` path, about 3 us per fd at 10,000
//! rules.)

use super::index::{IntHasher, IntMap, Lists};
use crrules_rules::rule::Glob;
use globset::{Candidate, GlobSet, GlobSetBuilder};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::Hasher;
use std::os::unix::ffi::OsStrExt;

/// Buckets with more globs than this that need a regex are compiled into one `GlobSet`.
const FEW: usize = 6;

/// The globs of one field.
#[derive(Debug, Default)]
pub(super) struct GlobIndex {
    /// Glob text -> its number.
    ids: HashMap<String, usize>,
    globs: Vec<Glob>,
    /// The rules anchored on each glob, ascending, of every kind, while building.
    anchoring: Vec<Vec<u32>>,
    /// The same, packed by [`GlobIndex::build`].
    anchored: Lists,
    /// [`text_hash`] of an entry's text -> the last entry with that hash. (Entries held in the map
    /// itself were measured: the larger slots made 10,000 rules a quarter slower.)
    table: IntMap<u32>,
    /// Literal globs and directory prefixes, found through `table`.
    entries: Vec<Entry>,
    /// Bit `(hash >> 32) & mask` set for the hash of every entry (16 bits per entry, a few kilobytes that stay
    /// in cache): most strings that are no entry are turned away without reaching the map.
    seen: Vec<u64>,
    /// The entries' texts, one after another.
    texts: String,
    /// The lists of glob numbers and of rules the entries' [`Span`]s point at.
    items: Vec<u32>,
    /// The globs filed under an entry's text, by [`Entry::dir`].
    buckets: Vec<Bucket>,
    /// Globs with no literal directory prefix.
    rest: Bucket,
    /// Bit `n` set when some directory prefix is `n` bytes long (`n < 256`; longer ones are always
    /// looked up): most prefixes of a path are then skipped without a hash lookup.
    dir_lengths: [u64; 4],
    /// The length of the longest directory prefix: a string's later `/`s are not looked at.
    longest_dir: usize,
    /// The same for literal globs: a string whose length no literal has is not looked up.
    literal_lengths: [u64; 4],
}

/// Whether bit `n` of a length set is set; lengths past the set are always taken as present.
fn has_length(lengths: &[u64; 4], n: usize) -> bool {
    lengths.get(n / 64).is_none_or(|word| word & (1 << (n % 64)) != 0)
}

/// Adds length `n` to a length set (lengths past it need no bit).
fn add_length(lengths: &mut [u64; 4], n: usize) {
    if let Some(word) = lengths.get_mut(n / 64) {
        *word |= 1 << (n % 64);
    }
}

/// A string that is a literal glob, a directory prefix of globs, or both; small, so that the entries
/// of thousands of rules stay in cache.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The text, as a range of [`GlobIndex::texts`].
    text: Span,
    /// The next entry with the same hash (`u32::MAX`: none).
    next: u32,
    /// The globs that are exactly this text.
    literal: Span,
    /// The rules anchored on those globs.
    literal_rules: Span,
    /// The rules anchored on the `**` globs of this directory (`TEXT**`), which match every string
    /// that starts with the text: read from here, not found by testing the bucket.
    anything_rules: Span,
    /// The globs whose literal directory prefix is this text (which ends with `/`): an index into
    /// [`GlobIndex::buckets`], `u32::MAX` for none.
    dir: u32,
}

/// A range of [`GlobIndex::items`] or [`GlobIndex::texts`].
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// Appends `list` to `items`, returning its span.
    fn push(items: &mut Vec<u32>, list: impl IntoIterator<Item = u32>) -> Span {
        let start = items.len() as u32;
        items.extend(list);
        Span { start, len: items.len() as u32 - start }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }

    fn of(self, items: &[u32]) -> &[u32] {
        items.get(self.range()).unwrap_or(&[])
    }
}

/// Globs tested together on what follows their common directory prefix.
#[derive(Debug, Default)]
struct Bucket {
    /// Globs whose remainder is `**`: they match every string in the bucket.
    anything: Vec<usize>,
    /// Globs whose remainder is a shape tested without a regex.
    simple: Vec<(usize, Shape)>,
    complex: Complex,
}

#[derive(Debug)]
enum Complex {
    Few(Vec<usize>),
    /// A compiled set and the number of each of its globs.
    Set(GlobSet, Vec<usize>),
}

impl Default for Complex {
    fn default() -> Complex {
        Complex::Few(Vec::new())
    }
}

/// What follows a glob's directory prefix, when it is one of the common shapes.
#[derive(Debug)]
enum Shape {
    /// `**`: anything.
    Anything,
    /// `*SUFFIX`: one component ending with the suffix (`*` alone: any one component).
    EndsWith(String),
    /// `PREFIX*`: one component starting with the prefix.
    StartsWith(String),
}

impl Shape {
    /// The shape of a glob's remainder, if it has one of the shapes.
    fn of(rest: &str) -> Option<Shape> {
        let plain = |s: &str| !s.contains(['*', '?', '[', ']', '{', '}', ',', '\\', '/']);
        if rest == "**" {
            Some(Shape::Anything)
        } else if let Some(suffix) = rest.strip_prefix('*').filter(|s| plain(s)) {
            Some(Shape::EndsWith(suffix.to_owned()))
        } else {
            rest.strip_suffix('*').filter(|p| plain(p)).map(|p| Shape::StartsWith(p.to_owned()))
        }
    }

    fn matches(&self, rest: &[u8]) -> bool {
        match self {
            Shape::Anything => true,
            Shape::EndsWith(suffix) => !rest.contains(&b'/') && rest.ends_with(suffix.as_bytes()),
            Shape::StartsWith(prefix) => !rest.contains(&b'/') && rest.starts_with(prefix.as_bytes()),
        }
    }
}

/// Scratch for [`GlobIndex::matches_into`].
#[derive(Debug, Default)]
pub(super) struct GlobScratch {
    set_hits: Vec<usize>,
    ids: Vec<usize>,
}

/// The literal text a glob starts with (escapes resolved), and whether the glob is only that text.
/// Stopping early is always safe (a shorter prefix files the glob under a parent directory), so every
/// character that is special anywhere in the dialect stops it.
fn literal_prefix(text: &str) -> (String, bool) {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => out.push(escaped),
                None => return (out, false),
            },
            '*' | '?' | '[' | ']' | '{' | '}' | ',' => return (out, false),
            c => out.push(c),
        }
    }
    (out, true)
}

/// A hash of a string, eight bytes at a time.
fn text_hash(text: &[u8]) -> u64 {
    let mut hasher = IntHasher::default();
    let mut chunks = text.chunks_exact(8);
    for chunk in &mut chunks {
        hasher.write_u64(chunk.iter().rev().fold(0, |w, &b| w << 8 | u64::from(b)));
    }
    let tail = chunks.remainder().iter().rev().fold(0, |w, &b| w << 8 | u64::from(b));
    hasher.write_u64(tail ^ (text.len() as u64) << 56);
    hasher.finish()
}

impl GlobIndex {
    /// The number of `glob`, adding it when new.
    pub(super) fn id(&mut self, glob: &Glob) -> usize {
        if let Some(&id) = self.ids.get(glob.as_str()) {
            return id;
        }
        let id = self.globs.len();
        self.ids.insert(glob.as_str().to_owned(), id);
        self.globs.push(glob.clone());
        self.anchoring.push(Vec::new());
        id
    }

    /// Files rule `rule` under glob `id`; rules come in ascending order.
    pub(super) fn anchor(&mut self, id: usize, rule: u32) {
        if let Some(list) = self.anchoring.get_mut(id) {
            list.push(rule);
        }
    }

    /// The text of an entry.
    fn text(&self, entry: &Entry) -> &[u8] {
        self.texts.as_bytes().get(entry.text.range()).unwrap_or(&[])
    }

    /// Files every glob; call once, after the last [`GlobIndex::id`].
    pub(super) fn build(&mut self) {
        // Text -> (globs that are exactly it, globs filed under it as their directory).
        let mut texts: HashMap<String, (Vec<usize>, Vec<usize>)> = HashMap::new();
        let mut rest = Vec::new();
        for (id, glob) in self.globs.iter().enumerate() {
            let (prefix, literal) = literal_prefix(glob.as_str());
            if literal {
                texts.entry(prefix).or_default().0.push(id);
            } else {
                match prefix.rfind('/') {
                    Some(end) => texts.entry(prefix[..=end].to_owned()).or_default().1.push(id),
                    None => rest.push(id),
                }
            }
        }
        self.rest = self.bucket("", rest);
        self.anchored = Lists::new(std::mem::take(&mut self.anchoring));
        let mut items = Vec::new();
        for (text, (literal, filed)) in texts {
            let rules_of = |ids: &[usize]| {
                let mut rules: Vec<u32> = ids.iter().flat_map(|&id| self.anchored.get(id)).copied().collect();
                rules.sort_unstable();
                rules.dedup();
                rules
            };
            let literal_rules = Span::push(&mut items, rules_of(&literal));
            if !literal.is_empty() {
                add_length(&mut self.literal_lengths, text.len());
            }
            let literal = Span::push(&mut items, literal.into_iter().map(|id| id as u32));
            let (dir, anything_rules) = if filed.is_empty() {
                (u32::MAX, Span::default())
            } else {
                add_length(&mut self.dir_lengths, text.len());
                self.longest_dir = self.longest_dir.max(text.len());
                let bucket = self.bucket(&text, filed);
                let anything_rules = Span::push(&mut items, rules_of(&bucket.anything));
                self.buckets.push(bucket);
                (self.buckets.len() as u32 - 1, anything_rules)
            };
            let text_span = Span { start: self.texts.len() as u32, len: text.len() as u32 };
            self.texts.push_str(&text);
            let e = self.entries.len() as u32;
            let next = self.table.insert(text_hash(text.as_bytes()), e).unwrap_or(u32::MAX);
            self.entries.push(Entry { text: text_span, next, literal, literal_rules, anything_rules, dir });
        }
        self.items = items;
        let bits = (self.entries.len() * 16).next_power_of_two().max(64);
        self.seen = vec![0; bits / 64];
        for &h in self.table.keys() {
            let bit = (h >> 32) as usize & (bits - 1);
            self.seen[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// A bucket for globs whose literal prefix starts with `dir`. Globs with escapes are tested whole
    /// (their text and their literal prefix differ in length).
    fn bucket(&self, dir: &str, ids: Vec<usize>) -> Bucket {
        let mut bucket = Bucket::default();
        let mut complex = Vec::new();
        for id in ids {
            let text = self.globs[id].as_str();
            match text.strip_prefix(dir).filter(|_| !text.contains('\\')).and_then(Shape::of) {
                Some(Shape::Anything) => bucket.anything.push(id),
                Some(shape) => bucket.simple.push((id, shape)),
                None => complex.push(id),
            }
        }
        bucket.complex = if complex.len() <= FEW {
            Complex::Few(complex)
        } else {
            let mut builder = GlobSetBuilder::new();
            for &id in &complex {
                builder.add(self.globs[id].glob().clone());
            }
            // Should globset refuse the union (it never has for globs that compiled one by one), testing
            // each glob gives the same answers, slower.
            match builder.build() {
                Ok(set) => Complex::Set(set, complex),
                Err(_) => Complex::Few(complex),
            }
        };
        bucket
    }

    /// Fills `into` with the numbers of the globs matching `text`, ascending.
    pub(super) fn matches_into(&self, text: &[u8], into: &mut Vec<usize>, scratch: &mut GlobScratch) {
        into.clear();
        if self.globs.is_empty() {
            return;
        }
        let set_hits = &mut scratch.set_hits;
        self.rest.matches_into(&self.globs, text, 0, true, into, set_hits);
        self.walk(text, |entry, bucket| {
            if let Some(bucket) = bucket {
                bucket.matches_into(&self.globs, text, entry.text.len as usize, true, into, set_hits);
            }
        });
        if let Some(entry) = self.find_literal(text) {
            into.extend(entry.literal.of(&self.items).iter().map(|&id| id as usize));
        }
        if into.len() > 1 {
            into.sort_unstable();
        }
    }

    /// Appends the rules anchored on the globs matching `text` (unsorted, maybe repeated).
    pub(super) fn rules_into(&self, text: &[u8], out: &mut Vec<u32>, scratch: &mut GlobScratch) {
        if self.globs.is_empty() {
            return;
        }
        let GlobScratch { set_hits, ids } = scratch;
        ids.clear();
        self.rest.matches_into(&self.globs, text, 0, true, ids, set_hits);
        self.walk(text, |entry, bucket| {
            out.extend_from_slice(entry.anything_rules.of(&self.items));
            if let Some(bucket) = bucket {
                bucket.matches_into(&self.globs, text, entry.text.len as usize, false, ids, set_hits);
            }
        });
        if let Some(entry) = self.find_literal(text) {
            out.extend_from_slice(entry.literal_rules.of(&self.items));
        }
        for &id in ids.iter() {
            out.extend_from_slice(self.anchored.get(id));
        }
    }

    /// Calls `visit` with each directory entry that is a `/`-terminated prefix of `text`, and its bucket.
    fn walk<'s>(&'s self, text: &[u8], mut visit: impl FnMut(&'s Entry, Option<&'s Bucket>)) {
        if self.buckets.is_empty() {
            return;
        }
        for (i, &b) in text.iter().enumerate().take(self.longest_dir) {
            let end = i + 1;
            if b == b'/'
                && has_length(&self.dir_lengths, end)
                && let Some(entry) = self.find(&text[..end])
                && entry.dir != u32::MAX
            {
                visit(entry, self.buckets.get(entry.dir as usize));
            }
        }
    }

    /// The entry that is exactly `text`, when some literal glob could be.
    fn find_literal(&self, text: &[u8]) -> Option<&Entry> {
        if has_length(&self.literal_lengths, text.len()) { self.find(text) } else { None }
    }

    fn find(&self, text: &[u8]) -> Option<&Entry> {
        let hash = text_hash(text);
        // The high half: the hash is a product, its low bits see only the low bits of the text.
        let bit = (hash >> 32) as usize & (self.seen.len() * 64).wrapping_sub(1);
        if self.seen.get(bit / 64).is_none_or(|word| word & (1 << (bit % 64)) == 0) {
            return None;
        }
        let mut entry = self.entries.get(*self.table.get(&hash)? as usize)?;
        loop {
            if entry.text.len as usize == text.len() && self.text(entry) == text {
                return Some(entry);
            }
            entry = self.entries.get(entry.next as usize)?;
        }
    }
}

impl Bucket {
    /// Adds the globs of this bucket matching `text`, whose directory prefix ends at byte `at`; the
    /// `**` globs only when `anything`.
    fn matches_into(
        &self,
        globs: &[Glob],
        text: &[u8],
        at: usize,
        anything: bool,
        into: &mut Vec<usize>,
        set_hits: &mut Vec<usize>,
    ) {
        let rest = &text[at..];
        if anything {
            into.extend_from_slice(&self.anything);
        }
        into.extend(self.simple.iter().filter(|(_, shape)| shape.matches(rest)).map(|&(id, _)| id));
        match &self.complex {
            Complex::Few(ids) => into.extend(ids.iter().copied().filter(|&id| globs[id].is_match(text))),
            Complex::Set(set, ids) => {
                // A `Path` on unix is its bytes: nothing is lost on the way to globset.
                set.matches_candidate_into(&Candidate::new(OsStr::from_bytes(text)), set_hits);
                into.extend(set_hits.iter().map(|&i| ids[i]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes_stop_at_the_first_special_character() {
        assert_eq!(literal_prefix("/dev/null"), ("/dev/null".to_owned(), true));
        assert_eq!(literal_prefix("/var/log/*.log"), ("/var/log/".to_owned(), false));
        assert_eq!(literal_prefix(r"\[kvm-vm\]"), ("[kvm-vm]".to_owned(), true));
        assert_eq!(literal_prefix("/a{,/b}"), ("/a".to_owned(), false));
        assert_eq!(literal_prefix("x,y"), ("x".to_owned(), false));
        assert_eq!(literal_prefix("trailing\\"), ("trailing".to_owned(), false));
    }

    #[test]
    fn the_index_finds_what_each_glob_finds_alone() {
        let texts = [
            "/dev/null",
            "/var/log/*.log",
            "/var/**",
            "**",
            "/var/log/a/**",
            "/a{,/b}",
            r"\[kvm-vm\]",
            "[kvm-vm]",
            "/srv/*/data",
            "/srv/app1/data",
            "*",
            "/**/x",
            "/t/{a,b}/c",
        ];
        let mut index = GlobIndex::default();
        let globs: Vec<Glob> = texts.iter().map(|t| Glob::new(t).unwrap()).collect();
        // Enough globs under one directory to make a `GlobSet` bucket.
        let many: Vec<Glob> = (0..20).map(|i| Glob::new(&format!("/var/log/a/{i}?*")).unwrap()).collect();
        // Glob `i` anchors rule `3 i`, and `2 i` too when even.
        for g in globs.iter().chain(&many) {
            let id = index.id(g);
            if id % 2 == 0 {
                index.anchor(id, 2 * id as u32);
            }
            index.anchor(id, 3 * id as u32);
        }
        index.id(&globs[0]);
        index.build();
        let subjects: &[&[u8]] = &[
            b"/dev/null",
            b"/var/log/x.log",
            b"/var/log/a/1x",
            b"/var/log/a/19",
            b"/a",
            b"/a/b",
            b"[kvm-vm]",
            b"k",
            b"v",
            b"/srv/app1/data",
            b"/srv/x/data",
            b"",
            b"/",
            b"/q/x",
            b"/t/b/c",
            b"/var",
            // Bytes that are not UTF-8, in every part a lookup looks at.
            b"/var/log/\xff.log",
            b"/var/log/a/1\xff",
            b"/srv/\xfe\xff/data",
            b"/dev/null\xff",
            b"\xff/x",
            b"/var/\xc3/x",
        ];
        let mut hits = Vec::new();
        let mut scratch = GlobScratch::default();
        for &s in subjects {
            index.matches_into(s, &mut hits, &mut scratch);
            let want: Vec<usize> =
                globs.iter().chain(&many).enumerate().filter(|(_, g)| g.is_match(s)).map(|(i, _)| i).collect();
            assert_eq!(hits, want, "{}", s.escape_ascii());
            let mut rules = Vec::new();
            index.rules_into(s, &mut rules, &mut scratch);
            rules.sort_unstable();
            rules.dedup();
            let mut want_rules: Vec<u32> =
                want.iter().flat_map(|&id| [2 * id as u32, 3 * id as u32].into_iter().skip(id % 2)).collect();
            want_rules.sort_unstable();
            want_rules.dedup();
            assert_eq!(rules, want_rules, "rules of {}", s.escape_ascii());
        }
    }
}
