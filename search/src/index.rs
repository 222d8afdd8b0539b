//! The tantivy index: one document per inode number, holding the searchable fields of a live
//! entry (name, kind, size, owner, times, xattrs, free text) and the whole [`Entry`] as a
//! stored blob, so the namespace model can be reloaded from the index alone. The shard
//! positions the index reflects ride in the commit payload, so documents and positions are
//! committed atomically: after a crash the index restarts exactly at its last commit.
//!
//! Documents hold no paths: a document names its parent inode, and paths (and the path
//! filter) go through the directory map at query time, so a directory rename is visible in
//! results at once whatever the depth below it.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use arbor_namenode::keys::{Ino, ROOT_INO};
use arbor_proto::search::Hit;
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    BooleanQuery, Occur, Query as TQuery, RangeQuery, RegexQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, Value,
};
use tantivy::{
    Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument, Term,
};

use crate::error::{Error, Result};
use crate::model::{DirMap, Entry};
use crate::query::{Cmp, Query, Term as QTerm, glob_to_regex};

/// What the index reflects: the cluster it belongs to and, per shard, the last sequence
/// applied (resume from the next one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub cluster_id: String,
    pub shards: BTreeMap<u32, u64>,
}

#[derive(Clone, Copy, Debug)]
pub struct Fields {
    pub ino: Field,
    pub parent: Field,
    pub live: Field,
    pub name: Field,
    pub text: Field,
    pub kind: Field,
    pub size: Field,
    pub uid: Field,
    pub gid: Field,
    pub mtime: Field,
    pub atime: Field,
    pub ctime: Field,
    pub btime: Field,
    pub xkey: Field,
    pub xkv: Field,
    pub state: Field,
}

pub fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let f = Fields {
        ino: b.add_u64_field("ino", INDEXED | STORED | FAST),
        parent: b.add_u64_field("parent", INDEXED),
        live: b.add_u64_field("live", INDEXED),
        name: b.add_text_field("name", STRING),
        text: b.add_text_field("text", TEXT),
        kind: b.add_u64_field("kind", INDEXED),
        size: b.add_u64_field("size", INDEXED | FAST),
        uid: b.add_u64_field("uid", INDEXED),
        gid: b.add_u64_field("gid", INDEXED),
        mtime: b.add_i64_field("mtime", INDEXED | FAST),
        atime: b.add_i64_field("atime", INDEXED | FAST),
        ctime: b.add_i64_field("ctime", INDEXED | FAST),
        btime: b.add_i64_field("btime", INDEXED | FAST),
        xkey: b.add_text_field("xkey", STRING),
        xkv: b.add_text_field("xkv", STRING),
        state: b.add_bytes_field("state", STORED),
    };
    (b.build(), f)
}

/// The names an xattr answers to in queries: its full name and, for `user.` ones, the name
/// without the prefix.
fn xattr_names(name: &str) -> Vec<&str> {
    let mut out = vec![name];
    if let Some(short) = name.strip_prefix("user.") {
        out.push(short);
    }
    out
}

/// The document of an entry.
pub fn document(f: &Fields, e: &Entry) -> Result<TantivyDocument> {
    let mut doc = TantivyDocument::new();
    doc.add_u64(f.ino, e.ino);
    let state = serde_json::to_vec(e).map_err(|err| Error::Index(err.to_string()))?;
    doc.add_bytes(f.state, &state);
    let (Some(d), true) = (e.dentry(), e.live()) else {
        doc.add_u64(f.live, 0);
        return Ok(doc);
    };
    doc.add_u64(f.live, 1);
    let a = e.attrs();
    doc.add_u64(f.parent, d.parent);
    doc.add_text(f.name, &d.name);
    doc.add_text(f.text, &d.name);
    doc.add_u64(f.kind, e.kind() as i32 as u64);
    doc.add_u64(f.size, a.size);
    doc.add_u64(f.uid, u64::from(a.uid));
    doc.add_u64(f.gid, u64::from(a.gid));
    doc.add_i64(f.mtime, a.mtime_ns);
    doc.add_i64(f.atime, a.atime_ns);
    doc.add_i64(f.ctime, a.ctime_ns);
    doc.add_i64(f.btime, a.btime_ns);
    for (name, (value, _)) in &e.xattrs {
        let value = String::from_utf8_lossy(value);
        for n in xattr_names(name) {
            doc.add_text(f.xkey, n);
            doc.add_text(f.xkv, format!("{n}={value}"));
        }
        doc.add_text(f.text, value.as_ref());
    }
    Ok(doc)
}

/// The index on disk, its single writer and a reader reloaded at each commit.
pub struct IndexStore {
    index: Index,
    writer: IndexWriter<TantivyDocument>,
    reader: IndexReader,
    fields: Fields,
}

/// Memory the writer may buffer before it flushes a segment.
const WRITER_BUDGET: usize = 64 << 20;

impl IndexStore {
    /// Opens the index in `dir` (creating it, or recreating it when it cannot be read with
    /// this schema). Returns the store, the payload of its last commit (None: empty or
    /// unusable, rebuild) and every entry it holds.
    pub fn open(dir: &Path) -> Result<(IndexStore, Option<Payload>, Vec<Entry>)> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let index = match Self::open_dir(dir, schema.clone()) {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "index unreadable; recreating it");
                for entry in std::fs::read_dir(dir)? {
                    let path = entry?.path();
                    if path.is_dir() {
                        std::fs::remove_dir_all(&path)?;
                    } else {
                        std::fs::remove_file(&path)?;
                    }
                }
                Self::open_dir(dir, schema)?
            }
        };
        let payload = index
            .load_metas()?
            .payload
            .and_then(|p| serde_json::from_str::<Payload>(&p).ok());
        let writer = index.writer_with_num_threads(1, WRITER_BUDGET)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let store = IndexStore {
            index,
            writer,
            reader,
            fields,
        };
        let entries = store.load_entries()?;
        Ok((store, payload, entries))
    }

    fn open_dir(dir: &Path, schema: Schema) -> Result<Index> {
        let mmap = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| Error::Index(e.to_string()))?;
        let index = Index::open_or_create(mmap, schema.clone())?;
        if index.schema() != schema {
            return Err(Error::Index("schema differs".into()));
        }
        Ok(index)
    }

    fn load_entries(&self) -> Result<Vec<Entry>> {
        let searcher = self.reader.searcher();
        let mut out = Vec::new();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(16)?;
            for doc in store.iter::<TantivyDocument>(segment.alive_bitset()) {
                out.push(entry_of(&self.fields, &doc?)?);
            }
        }
        Ok(out)
    }

    pub fn fields(&self) -> Fields {
        self.fields
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// Replaces the documents of changed entries (None: the entry is gone).
    pub fn write(&mut self, changed: Vec<(Ino, Option<Entry>)>) -> Result<()> {
        for (ino, entry) in changed {
            self.writer
                .delete_term(Term::from_field_u64(self.fields.ino, ino));
            if let Some(e) = entry {
                self.writer.add_document(document(&self.fields, &e)?)?;
            }
        }
        Ok(())
    }

    /// Drops every document (a rebuild starts from nothing).
    pub fn clear(&mut self) -> Result<()> {
        self.writer.delete_all_documents()?;
        Ok(())
    }

    /// Commits what was written with `payload`, durably, and makes it searchable.
    pub fn commit(&mut self, payload: &Payload) -> Result<Searcher> {
        let text = serde_json::to_string(payload).map_err(|e| Error::Index(e.to_string()))?;
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&text);
        prepared.commit()?;
        self.reader.reload()?;
        Ok(self.reader.searcher())
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Drops uncommitted changes; returns the last commit's payload and entries.
    pub fn rollback(&mut self) -> Result<(Option<Payload>, Vec<Entry>)> {
        self.writer.rollback()?;
        self.reader.reload()?;
        let payload = self
            .index
            .load_metas()?
            .payload
            .and_then(|p| serde_json::from_str::<Payload>(&p).ok());
        Ok((payload, self.load_entries()?))
    }
}

fn entry_of(f: &Fields, doc: &TantivyDocument) -> Result<Entry> {
    let bytes = doc
        .get_first(f.state)
        .and_then(|v| v.as_bytes())
        .ok_or_else(|| Error::Corrupt("document without state".into()))?;
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("document state: {e}")))
}

fn range_u64(field: Field, cmp: Cmp, n: u64) -> Box<dyn TQuery> {
    let t = Term::from_field_u64(field, n);
    range(t, cmp)
}

fn range_i64(field: Field, cmp: Cmp, n: i64) -> Box<dyn TQuery> {
    let t = Term::from_field_i64(field, n);
    range(t, cmp)
}

fn range(t: Term, cmp: Cmp) -> Box<dyn TQuery> {
    let (lo, hi) = match cmp {
        Cmp::Lt => (Bound::Unbounded, Bound::Excluded(t)),
        Cmp::Le => (Bound::Unbounded, Bound::Included(t)),
        Cmp::Gt => (Bound::Excluded(t), Bound::Unbounded),
        Cmp::Ge => (Bound::Included(t), Bound::Unbounded),
        Cmp::Eq => (Bound::Included(t.clone()), Bound::Included(t)),
    };
    Box::new(RangeQuery::new(lo, hi))
}

fn term(_field: Field, t: Term) -> Box<dyn TQuery> {
    Box::new(TermQuery::new(t, IndexRecordOption::Basic))
}

/// The words free text is split into, as the `text` field's tokenizer splits them.
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn term_query(f: &Fields, t: &QTerm) -> Result<Box<dyn TQuery>> {
    Ok(match t {
        QTerm::Name(glob) => Box::new(
            RegexQuery::from_pattern(&glob_to_regex(glob)?, f.name)
                .map_err(|e| Error::BadQuery(format!("glob {glob:?}: {e}")))?,
        ),
        QTerm::Kind(k) => term(f.kind, Term::from_field_u64(f.kind, *k as i32 as u64)),
        QTerm::Size(cmp, n) => range_u64(f.size, *cmp, *n),
        QTerm::Time(tf, cmp, ns) => {
            let field = match tf.field_name() {
                "mtime" => f.mtime,
                "atime" => f.atime,
                "ctime" => f.ctime,
                _ => f.btime,
            };
            range_i64(field, *cmp, *ns)
        }
        QTerm::Uid(u) => term(f.uid, Term::from_field_u64(f.uid, u64::from(*u))),
        QTerm::Gid(g) => term(f.gid, Term::from_field_u64(f.gid, u64::from(*g))),
        QTerm::XattrKey(k) => term(f.xkey, Term::from_field_text(f.xkey, k)),
        QTerm::XattrValue(k, v) => term(f.xkv, Term::from_field_text(f.xkv, &format!("{k}={v}"))),
        QTerm::Word(w) => {
            let parts = words(w);
            if parts.is_empty() {
                return Err(Error::BadQuery(format!("no word in {w:?}")));
            }
            let clauses = parts
                .iter()
                .map(|p| (Occur::Must, term(f.text, Term::from_field_text(f.text, p))))
                .collect();
            Box::new(BooleanQuery::new(clauses))
        }
    })
}

/// The clause restricting results to `prefix` (None: nothing is there).
fn prefix_clause(f: &Fields, dirs: &DirMap, prefix: &str) -> Option<Box<dyn TQuery>> {
    let trimmed = prefix.trim_end_matches('/');
    if let Some(dir) = dirs.resolve(if trimmed.is_empty() { "/" } else { trimmed }) {
        let parents = dirs
            .subtree(dir)
            .into_iter()
            .map(|d| Term::from_field_u64(f.parent, d));
        let under: Box<dyn TQuery> = Box::new(TermSetQuery::new(parents));
        if dir == ROOT_INO {
            return Some(under);
        }
        let itself = term(f.ino, Term::from_field_u64(f.ino, dir));
        return Some(Box::new(BooleanQuery::new(vec![
            (Occur::Should, under),
            (Occur::Should, itself),
        ])));
    }
    // Not a directory: at most the one entry of that name.
    let (parent_path, name) = trimmed.rsplit_once('/')?;
    let parent = dirs.resolve(if parent_path.is_empty() {
        "/"
    } else {
        parent_path
    })?;
    Some(Box::new(BooleanQuery::new(vec![
        (
            Occur::Must,
            term(f.parent, Term::from_field_u64(f.parent, parent)),
        ),
        (
            Occur::Must,
            term(f.name, Term::from_field_text(f.name, name)),
        ),
    ])))
}

/// Runs `query` under `prefix`: at most `limit` hits, newest modification first, and the
/// number of matches in all.
pub fn search(
    searcher: &Searcher,
    f: &Fields,
    dirs: &DirMap,
    query: &Query,
    prefix: &str,
    limit: usize,
) -> Result<(Vec<Hit>, u64)> {
    let Some(scope) = prefix_clause(f, dirs, prefix) else {
        return Ok((Vec::new(), 0));
    };
    let mut clauses: Vec<(Occur, Box<dyn TQuery>)> = vec![
        (Occur::Must, term(f.live, Term::from_field_u64(f.live, 1))),
        (Occur::Must, scope),
    ];
    for t in &query.terms {
        clauses.push((Occur::Must, term_query(f, t)?));
    }
    let q = BooleanQuery::new(clauses);
    let top = TopDocs::with_limit(limit.max(1)).order_by_fast_field::<i64>("mtime", Order::Desc);
    let (total, docs) = searcher.search(&q, &(Count, top))?;
    let mut hits = Vec::with_capacity(docs.len());
    for (_, addr) in docs {
        let doc: TantivyDocument = searcher.doc(addr)?;
        let e = entry_of(f, &doc)?;
        let Some(path) = e.dentry().and_then(|d| dirs.child_path(d.parent, &d.name)) else {
            continue;
        };
        let a = e.attrs();
        hits.push(Hit {
            path,
            ino: e.ino,
            kind: e.kind() as i32,
            size: a.size,
            uid: a.uid,
            gid: a.gid,
            mode: a.mode,
            mtime_ns: a.mtime_ns,
            atime_ns: a.atime_ns,
            ctime_ns: a.ctime_ns,
            btime_ns: a.btime_ns,
        });
    }
    Ok((hits, total as u64))
}

/// Live documents in the index.
pub fn live_documents(searcher: &Searcher, f: &Fields) -> Result<u64> {
    let q = TermQuery::new(Term::from_field_u64(f.live, 1), IndexRecordOption::Basic);
    Ok(searcher.search(&q, &Count)? as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Namespace;
    use crate::rows::{Attrs, RowKind};
    use arbor_proto::records::InodeKind;

    fn dentry(parent: Ino, name: &str, ino: Ino, kind: InodeKind) -> RowKind {
        RowKind::Dentry {
            parent,
            name: name.into(),
            value: Some((ino, kind)),
        }
    }

    fn inode(ino: Ino, kind: InodeKind, size: u64, uid: u32, mtime: i64) -> RowKind {
        RowKind::Inode {
            ino,
            value: Some(Attrs {
                kind: kind as i32,
                size,
                uid,
                gid: 100,
                mode: 0o644,
                mtime_ns: mtime,
                ..Attrs::default()
            }),
        }
    }

    fn paths(store: &IndexStore, ns: &Namespace, q: &str, prefix: &str) -> Vec<String> {
        let query = crate::query::parse(q, 1_000_000).unwrap();
        let (hits, total) = search(
            &store.searcher(),
            &store.fields(),
            ns.dirs(),
            &query,
            prefix,
            1000,
        )
        .unwrap();
        assert_eq!(total as usize, hits.len(), "{q}");
        let mut p: Vec<String> = hits.into_iter().map(|h| h.path).collect();
        p.sort();
        p
    }

    #[test]
    fn queries_match_fields_and_paths_follow_renames() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, payload, entries) = IndexStore::open(dir.path()).unwrap();
        assert!(payload.is_none() && entries.is_empty());
        let mut ns = Namespace::new();
        use InodeKind::{Directory as D, File as F};
        let rows = vec![
            dentry(ROOT_INO, "data", 10, D),
            inode(10, D, 0, 0, 5),
            dentry(10, "deep", 11, D),
            inode(11, D, 0, 0, 5),
            dentry(11, "big.csv", 20, F),
            inode(20, F, 5 << 30, 1000, 50),
            dentry(11, "small.csv", 21, F),
            inode(21, F, 10, 1001, 60),
            dentry(ROOT_INO, "notes.txt", 22, F),
            inode(22, F, 2048, 1000, 70),
            RowKind::Xattr {
                ino: 21,
                name: "user.project".into(),
                value: Some(b"fraud".to_vec()),
            },
        ];
        for (i, r) in rows.iter().enumerate() {
            ns.apply(r, i as u64 + 1, i as u64 + 1);
        }
        store.write(ns.take_dirty()).unwrap();
        let payload = Payload {
            cluster_id: "c".into(),
            shards: BTreeMap::from([(0, 11)]),
        };
        store.commit(&payload).unwrap();
        assert_eq!(
            paths(&store, &ns, "*.csv", "/"),
            vec!["/data/deep/big.csv", "/data/deep/small.csv"]
        );
        assert_eq!(
            paths(&store, &ns, "size>1G", "/"),
            vec!["/data/deep/big.csv"]
        );
        assert_eq!(
            paths(&store, &ns, "type:d", "/"),
            vec!["/data", "/data/deep"]
        );
        assert_eq!(
            paths(&store, &ns, "xattr.project=fraud", "/"),
            vec!["/data/deep/small.csv"]
        );
        assert_eq!(
            paths(&store, &ns, "xattr.user.project", "/"),
            vec!["/data/deep/small.csv"]
        );
        assert_eq!(
            paths(&store, &ns, "fraud", "/"),
            vec!["/data/deep/small.csv"]
        );
        assert_eq!(paths(&store, &ns, "notes", "/"), vec!["/notes.txt"]);
        assert_eq!(
            paths(&store, &ns, "uid=1000", "/"),
            vec!["/data/deep/big.csv", "/notes.txt"]
        );
        assert_eq!(
            paths(&store, &ns, "", "/data/deep"),
            vec!["/data/deep", "/data/deep/big.csv", "/data/deep/small.csv"]
        );
        assert_eq!(paths(&store, &ns, "", "/notes.txt"), vec!["/notes.txt"]);
        assert!(paths(&store, &ns, "", "/nope").is_empty());

        // Rename /data -> /archive: only the dentry of /data changes.
        ns.apply(
            &RowKind::Dentry {
                parent: ROOT_INO,
                name: "data".into(),
                value: None,
            },
            20,
            20,
        );
        ns.apply(&dentry(ROOT_INO, "archive", 10, D), 20, 20);
        store.write(ns.take_dirty()).unwrap();
        store.commit(&payload).unwrap();
        assert_eq!(
            paths(&store, &ns, "*.csv", "/archive"),
            vec!["/archive/deep/big.csv", "/archive/deep/small.csv"]
        );
        assert!(paths(&store, &ns, "*.csv", "/data").is_empty());
        drop(store);

        // Reopened: the payload and every entry come back.
        let (_store, payload2, entries) = IndexStore::open(dir.path()).unwrap();
        assert_eq!(payload2, Some(payload));
        let back = Namespace::from_entries(entries);
        assert_eq!(back.path_of(21).as_deref(), Some("/archive/deep/small.csv"));
        assert_eq!(back.len(), ns.len());
    }
}
