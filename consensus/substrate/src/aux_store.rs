//! The core's persisted state in the node's database (aux storage, ParityDb).
//!
//! Each core record lives at `bsmr/core/<epoch>/r/<SCALE(Key)>`; because aux storage cannot be
//! iterated, the set of live keys is kept in an index, split into [`INDEX_BUCKETS`] buckets by a
//! hash of the key (`bsmr/core/<epoch>/index/<bucket>`). A write rewrites only the buckets of
//! the keys it touches, in the same atomic write as the records: one index value rewritten
//! whole on every write cost a validator about 9 MB/s of disk writes at 300 tx/s
//! (docs/performance.md, "What leaderless costs more below saturation"). A set is stored as
//! SCALE encodes it, the same bytes as a sorted `Vec`. Blocks the core handed out but the chain
//! does not have yet are kept under `bsmr/pending/<b>` until imported, so a crash between
//! "block ready" and import loses nothing. The engine sends nothing that depends on a write
//! before [`AuxStorage::apply`] returns (persist before send); how durable a returned write is
//! is the database's: ParityDb queues a commit and writes its log on a background thread.

use bsmr_consensus_core::{Epoch, FinishedBlock, Key, Record, Storage, StorageOp};
use codec::{Decode, Encode};
use sc_client_api::AuxStore;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const PENDING_INDEX: &[u8] = b"bsmr/pending/index";

/// Buckets of the key index: a write rewrites about 1/256 of the index per key it touches.
pub const INDEX_BUCKETS: usize = 256;

/// Why the persisted state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuxError {
    /// The database failed.
    #[error("aux storage: {0}")]
    Db(#[from] sp_blockchain::Error),
    /// A stored value does not decode: the database is corrupt or from an incompatible version.
    #[error("corrupt bsmr record under key {0}")]
    Corrupt(String),
}

/// The core's storage for one epoch, on top of a client's aux store.
pub struct AuxStorage<A> {
    aux: Arc<A>,
    epoch: Epoch,
    /// The live keys, by index bucket.
    index: BTreeMap<u8, BTreeSet<Key>>,
    pending: BTreeSet<u64>,
}

impl<A: AuxStore> AuxStorage<A> {
    /// Open the storage of `epoch`, reading its key index. An index written whole by an
    /// earlier version (`bsmr/core/<epoch>/index`) is split into buckets here.
    pub fn open(aux: Arc<A>, epoch: Epoch) -> Result<Self, AuxError> {
        let mut index: BTreeMap<u8, BTreeSet<Key>> = BTreeMap::new();
        for bucket in 0..INDEX_BUCKETS {
            let key = bucket_key(epoch, bucket as u8);
            if let Some(keys) = read_list::<Key, _>(&*aux, &key)? {
                index.insert(bucket as u8, keys.into_iter().collect());
            }
        }
        let legacy = legacy_index_key(epoch);
        let legacy_keys = read_list::<Key, _>(&*aux, &legacy)?;
        let pending = read_list::<u64, _>(&*aux, PENDING_INDEX)?
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut storage = AuxStorage {
            aux,
            epoch,
            index,
            pending,
        };
        if let Some(keys) = legacy_keys {
            let mut touched = BTreeSet::new();
            for k in keys {
                touched.insert(storage.insert_key(k));
            }
            let mut w = storage.buckets(&touched);
            w.insert(legacy, None);
            storage.write(w)?;
        }
        Ok(storage)
    }

    /// Add `k` to the index; its bucket.
    fn insert_key(&mut self, k: Key) -> u8 {
        let b = bucket(&k);
        self.index.entry(b).or_default().insert(k);
        b
    }

    /// Remove `k` from the index; its bucket.
    fn remove_key(&mut self, k: &Key) -> u8 {
        let b = bucket(k);
        if let Some(keys) = self.index.get_mut(&b) {
            keys.remove(k);
            if keys.is_empty() {
                self.index.remove(&b);
            }
        }
        b
    }

    /// The writes that store these buckets as they are now (an empty one is deleted).
    fn buckets(&self, touched: &BTreeSet<u8>) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        touched
            .iter()
            .map(|b| {
                let keys = self.index.get(b).map(Encode::encode);
                (bucket_key(self.epoch, *b), keys)
            })
            .collect()
    }

    /// Apply the core's writes atomically, in order, with the index buckets they change.
    pub fn apply(&mut self, ops: &[StorageOp]) -> Result<(), AuxError> {
        let mut records: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut touched = BTreeSet::new();
        for op in ops {
            match op {
                StorageOp::Put(k, v) => {
                    touched.insert(self.insert_key(k.clone()));
                    records.insert(record_key(self.epoch, k), Some(v.encode()));
                }
                StorageOp::Delete(k) => {
                    touched.insert(self.remove_key(k));
                    records.insert(record_key(self.epoch, k), None);
                }
            }
        }
        let mut w = self.buckets(&touched);
        w.append(&mut records);
        self.write(w)
    }

    /// Remember a block the core handed out until [`AuxStorage::forget_pending`].
    pub fn add_pending(&mut self, block: &FinishedBlock) -> Result<(), AuxError> {
        self.pending.insert(block.index);
        let mut w = BTreeMap::new();
        w.insert(pending_key(block.index), Some(block.encode()));
        w.insert(PENDING_INDEX.to_vec(), Some(self.pending.encode()));
        self.write(w)
    }

    /// Forget pending blocks up to and including `upto` (they are on chain now).
    pub fn forget_pending(&mut self, upto: u64) -> Result<(), AuxError> {
        let gone: Vec<u64> = self.pending.range(..=upto).copied().collect();
        self.remove_pending(gone)
    }

    /// Drop pending blocks from `from` on (void: a new epoch starts there).
    pub fn drop_pending_from(&mut self, from: u64) -> Result<(), AuxError> {
        let gone: Vec<u64> = self.pending.range(from..).copied().collect();
        self.remove_pending(gone)
    }

    fn remove_pending(&mut self, gone: Vec<u64>) -> Result<(), AuxError> {
        if gone.is_empty() {
            return Ok(());
        }
        let mut w = BTreeMap::new();
        for b in gone {
            self.pending.remove(&b);
            w.insert(pending_key(b), None);
        }
        w.insert(PENDING_INDEX.to_vec(), Some(self.pending.encode()));
        self.write(w)
    }

    /// Blocks handed out by the core that were not imported before a restart, in index order.
    pub fn pending_blocks(&self) -> Result<Vec<FinishedBlock>, AuxError> {
        let mut out = vec![];
        for b in &self.pending {
            let key = pending_key(*b);
            if let Some(bytes) = self.aux.get_aux(&key)? {
                out.push(
                    FinishedBlock::decode(&mut &bytes[..])
                        .map_err(|_| AuxError::Corrupt(format!("bsmr/pending/{b}")))?,
                );
            }
        }
        Ok(out)
    }

    /// Number of live core records.
    pub fn len(&self) -> usize {
        self.index.values().map(BTreeSet::len).sum()
    }

    /// Whether no core record is stored.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Read every record (for [`Storage::load`]), failing loudly on corruption.
    pub fn load_checked(&self) -> Result<Vec<(Key, Record)>, AuxError> {
        // In key order, as the core wrote them.
        let keys: BTreeSet<&Key> = self.index.values().flatten().collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let key = record_key(self.epoch, k);
            let Some(bytes) = self.aux.get_aux(&key)? else {
                continue;
            };
            let r =
                Record::decode(&mut &bytes[..]).map_err(|_| AuxError::Corrupt(format!("{k:?}")))?;
            out.push((k.clone(), r));
        }
        Ok(out)
    }

    fn write(&self, w: BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Result<(), AuxError> {
        let inserts: Vec<(&[u8], &[u8])> = w
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.as_slice(), v.as_slice())))
            .collect();
        let deletes: Vec<&[u8]> = w
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.as_slice())
            .collect();
        self.aux.insert_aux(inserts.iter(), deletes.iter())?;
        Ok(())
    }
}

impl<A: AuxStore> Storage for AuxStorage<A> {
    fn load(&self) -> Vec<(Key, Record)> {
        // `open` + `load_checked` is the checked path the engine uses; this one cannot report
        // errors through the core's trait, so corruption here is fatal by design.
        self.load_checked()
            .expect("bsmr aux records decode (checked at start-up by load_checked); qed")
    }
}

/// The index written whole, by versions before the buckets.
fn legacy_index_key(epoch: Epoch) -> Vec<u8> {
    format!("bsmr/core/{epoch}/index").into_bytes()
}

fn bucket_key(epoch: Epoch, bucket: u8) -> Vec<u8> {
    let mut v = format!("bsmr/core/{epoch}/index/").into_bytes();
    v.push(bucket);
    v
}

/// The index bucket of `k`: a hash of its encoding, stable across versions.
fn bucket(k: &Key) -> u8 {
    sp_crypto_hashing::twox_64(&k.encode())[0]
}

/// The list stored under `key` (an index), if any.
fn read_list<T: Decode, A: AuxStore>(aux: &A, key: &[u8]) -> Result<Option<Vec<T>>, AuxError> {
    match aux.get_aux(key)? {
        Some(bytes) => Vec::<T>::decode(&mut &bytes[..])
            .map(Some)
            .map_err(|_| AuxError::Corrupt(String::from_utf8_lossy(key).into())),
        None => Ok(None),
    }
}

fn record_key(epoch: Epoch, k: &Key) -> Vec<u8> {
    let mut v = format!("bsmr/core/{epoch}/r/").into_bytes();
    v.extend_from_slice(&k.encode());
    v
}

fn pending_key(b: u64) -> Vec<u8> {
    let mut v = b"bsmr/pending/".to_vec();
    v.extend_from_slice(&b.to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsmr_consensus_core::storage::Meta;
    use parking_lot::Mutex;

    /// An in-memory aux store that also records the size of every value written.
    #[derive(Default)]
    struct MemAux {
        map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
        written: Mutex<Vec<usize>>,
    }

    impl AuxStore for MemAux {
        fn insert_aux<
            'a,
            'b: 'a,
            'c: 'a,
            I: IntoIterator<Item = &'a (&'c [u8], &'c [u8])>,
            D: IntoIterator<Item = &'a &'b [u8]>,
        >(
            &self,
            insert: I,
            delete: D,
        ) -> sp_blockchain::Result<()> {
            let mut m = self.map.lock();
            let mut written = self.written.lock();
            for (k, v) in insert {
                written.push(v.len());
                m.insert(k.to_vec(), v.to_vec());
            }
            for k in delete {
                m.remove(*k);
            }
            Ok(())
        }
        fn get_aux(&self, key: &[u8]) -> sp_blockchain::Result<Option<Vec<u8>>> {
            Ok(self.map.lock().get(key).cloned())
        }
    }

    /// Indices of the pending blocks `s` holds.
    fn pending_indices<A: AuxStore>(s: &AuxStorage<A>) -> Vec<u64> {
        s.pending_blocks()
            .unwrap()
            .iter()
            .map(|b| b.index)
            .collect()
    }

    #[test]
    fn records_survive_reopen_and_deletes_stick() {
        let aux = Arc::new(MemAux::default());
        let mut s = AuxStorage::open(aux.clone(), 3).unwrap();
        let meta = Record::Meta(Meta {
            fence: 4,
            next_pos: 9,
            built: 2,
            built_ckpt: [1; 32],
            built_ts: 77,
            next_rotation: Default::default(),
            built_floors: vec![([7; 32], 12)],
        });
        s.apply(&[
            StorageOp::Put(Key::Meta, meta.clone()),
            StorageOp::Put(Key::OwnBatch(0), Record::Marked(true)),
        ])
        .unwrap();
        s.apply(&[StorageOp::Delete(Key::OwnBatch(0))]).unwrap();
        let reopened = AuxStorage::open(aux.clone(), 3).unwrap();
        assert_eq!(reopened.load(), vec![(Key::Meta, meta)]);
        assert!(
            AuxStorage::open(aux.clone(), 4).unwrap().is_empty(),
            "epochs are separate"
        );
    }

    #[test]
    fn pending_blocks_until_forgotten() {
        let aux = Arc::new(MemAux::default());
        let mut s = AuxStorage::open(aux.clone(), 0).unwrap();
        for i in 1..=3 {
            s.add_pending(&FinishedBlock {
                index: i,
                timestamp_ms: i,
                checkpoint: [0; 32],
                checkpoint_view: 0,
                next_rotation: Default::default(),
                floors: vec![],
                batches: vec![],
            })
            .unwrap();
        }
        s.forget_pending(2).unwrap();
        let mut s = AuxStorage::open(aux.clone(), 0).unwrap();
        assert_eq!(pending_indices(&s), vec![3]);
        // Void blocks of an old epoch are dropped from an index on.
        s.add_pending(&FinishedBlock {
            index: 4,
            timestamp_ms: 4,
            checkpoint: [0; 32],
            checkpoint_view: 0,
            next_rotation: Default::default(),
            floors: vec![],
            batches: vec![],
        })
        .unwrap();
        s.drop_pending_from(4).unwrap();
        let s = AuxStorage::open(aux, 0).unwrap();
        assert_eq!(pending_indices(&s), vec![3]);
    }

    #[test]
    fn corruption_is_reported_not_swallowed() {
        for key in [&b"bsmr/core/0/index"[..], &b"bsmr/core/0/index/\x07"[..]] {
            let aux = Arc::new(MemAux::default());
            aux.insert_aux(&[(key, &[0xff, 0xff][..])], &[]).unwrap();
            assert!(matches!(
                AuxStorage::open(aux, 0),
                Err(AuxError::Corrupt(_))
            ));
        }
    }

    /// Bytes of index values (keys with `/index`) in `aux`.
    fn index_bytes(aux: &MemAux) -> usize {
        let m = aux.map.lock();
        m.iter()
            .filter(|(k, _)| k.windows(6).any(|w| w == b"/index"))
            .map(|(_, v)| v.len())
            .sum()
    }

    #[test]
    fn a_write_rewrites_only_the_index_buckets_it_touches() {
        let aux = Arc::new(MemAux::default());
        let mut s = AuxStorage::open(aux.clone(), 0).unwrap();
        let ops: Vec<StorageOp> = (0..4096)
            .map(|i| StorageOp::Put(Key::OwnBatch(i), Record::Marked(true)))
            .collect();
        s.apply(&ops).unwrap();
        let whole = index_bytes(&aux);
        assert!(whole > 4096 * 8, "the index lists every key: {whole} bytes");
        aux.written.lock().clear();
        s.apply(&[StorageOp::Put(Key::OwnBatch(9999), Record::Marked(true))])
            .unwrap();
        s.apply(&[StorageOp::Delete(Key::OwnBatch(7))]).unwrap();
        let rewritten: usize = aux.written.lock().iter().sum();
        assert!(
            rewritten * 32 < whole,
            "two one-key writes rewrote {rewritten} bytes of a {whole}-byte index"
        );
        let reopened = AuxStorage::open(aux.clone(), 0).unwrap();
        assert_eq!(reopened.len(), 4096);
        let keys: Vec<Key> = reopened.load().into_iter().map(|(k, _)| k).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "records load in key order");
        assert!(keys.contains(&Key::OwnBatch(9999)) && !keys.contains(&Key::OwnBatch(7)));
    }

    #[test]
    fn an_index_written_whole_is_split_into_buckets_at_open() {
        let aux = Arc::new(MemAux::default());
        let keys = vec![Key::Meta, Key::OwnBatch(3), Key::OwnBatch(4)];
        for k in &keys {
            aux.insert_aux(
                &[(&record_key(2, k)[..], &Record::Marked(true).encode()[..])],
                &[],
            )
            .unwrap();
        }
        aux.insert_aux(&[(&b"bsmr/core/2/index"[..], &keys.encode()[..])], &[])
            .unwrap();
        let s = AuxStorage::open(aux.clone(), 2).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(aux.get_aux(b"bsmr/core/2/index").unwrap(), None);
        let reopened = AuxStorage::open(aux, 2).unwrap();
        let loaded: Vec<Key> = reopened.load().into_iter().map(|(k, _)| k).collect();
        assert_eq!(loaded, keys);
    }
}
