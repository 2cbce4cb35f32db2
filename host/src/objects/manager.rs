//! The [`Manager`]'s shared [`Dict`], [`List`] and [`Value`]: plain data
//! tasks and host threads read and update in place, each bounded in bytes,
//! with atomic read-modify-writes (`add`, `compare_and_set`) so that a
//! counter shared by many tasks needs no lock.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::channel::Failure;
use crate::error::{Error, ErrorKind};
use crate::objects::handle::serialize_as_handle;
use crate::objects::wait::Wait;
use crate::objects::{Holder, Kind, Object, args, encode, next_id, unknown_op};

/// The most bytes of keys and values one dict, list or value holds.
pub const MANAGED_BYTES: usize = 64 << 20;

/// A number, for `add`: an integer stays one, as long as it fits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn add(self, delta: Number) -> Result<Number, Failure> {
        match (self, delta) {
            (Number::Int(a), Number::Int(b)) => a
                .checked_add(b)
                .map(Number::Int)
                .ok_or_else(|| Failure::Refused(format!("{a} + {b} overflows an i64"))),
            (a, b) => Ok(Number::Float(a.float() + b.float())),
        }
    }

    fn float(self) -> f64 {
        match self {
            Number::Int(n) => n as f64,
            Number::Float(x) => x,
        }
    }
}

/// Adds `delta` (encoded) to the number `value` (encoded); the new value.
fn add(value: &[u8], delta: &[u8]) -> Result<Vec<u8>, Failure> {
    let not_number = |what: &str| Failure::Refused(format!("add: the {what} is not a number"));
    let value: Number = rmp_serde::from_slice(value).map_err(|_| not_number("value"))?;
    let delta: Number = rmp_serde::from_slice(delta).map_err(|_| not_number("delta"))?;
    encode(&value.add(delta)?)
}

/// What a managed object holds: entries (a dict's keys, a list's indices, a
/// value's one slot) as MessagePack bytes.
#[derive(Debug, Default)]
struct Data {
    entries: IndexMap<Vec<u8>, Vec<u8>>,
    items: Vec<Vec<u8>>,
    bytes: usize,
}

impl Data {
    fn charge(&mut self, more: usize, less: usize) -> Result<(), Failure> {
        let bytes = self.bytes + more - less.min(self.bytes + more);
        if bytes > MANAGED_BYTES {
            return Err(Failure::Refused(format!(
                "it would hold {bytes} bytes, over its limit of {MANAGED_BYTES} bytes"
            )));
        }
        self.bytes = bytes;
        Ok(())
    }

    fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), Failure> {
        let old = self
            .entries
            .get(&key)
            .map_or(0, |old| key.len() + old.len());
        self.charge(key.len() + value.len(), old)?;
        self.entries.insert(key, value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> bool {
        match self.entries.shift_remove(key) {
            Some(value) => {
                self.bytes -= key.len() + value.len();
                true
            }
            None => false,
        }
    }

    fn index(&self, index: i64) -> Result<usize, Failure> {
        let len = self.items.len() as i64;
        let at = if index < 0 { len + index } else { index };
        if !(0..len).contains(&at) {
            return Err(Failure::Refused(format!(
                "list index {index} out of range (length {len})"
            )));
        }
        Ok(at as usize)
    }
}

/// A dict, a list or a value.
#[derive(Debug)]
pub(crate) struct Managed {
    id: u64,
    kind: Kind,
    data: Mutex<Data>,
}

impl Managed {
    fn new(kind: Kind) -> Arc<Self> {
        Arc::new(Managed {
            id: next_id(),
            kind,
            data: Mutex::new(Data::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dict(&self, op: &str, bytes: &[u8]) -> Result<Vec<u8>, Failure> {
        let kind = self.kind;
        let mut data = self.lock();
        match op {
            "get" => {
                let (key,): (ByteBuf,) = args(kind, op, bytes)?;
                encode(
                    &data
                        .entries
                        .get(key.as_slice())
                        .map(|v| ByteBuf::from(v.clone())),
                )
            }
            "set" => {
                let (key, value): (ByteBuf, ByteBuf) = args(kind, op, bytes)?;
                data.set(key.into_vec(), value.into_vec())?;
                encode(&())
            }
            "delete" => {
                let (key,): (ByteBuf,) = args(kind, op, bytes)?;
                encode(&data.delete(&key))
            }
            "len" => {
                let () = args(kind, op, bytes)?;
                encode(&data.entries.len())
            }
            "items" => {
                let () = args(kind, op, bytes)?;
                let items: Vec<(ByteBuf, ByteBuf)> = data
                    .entries
                    .iter()
                    .map(|(k, v)| (ByteBuf::from(k.clone()), ByteBuf::from(v.clone())))
                    .collect();
                encode(&items)
            }
            "update" => {
                let (items,): (Vec<(ByteBuf, ByteBuf)>,) = args(kind, op, bytes)?;
                for (key, value) in items {
                    data.set(key.into_vec(), value.into_vec())?;
                }
                encode(&())
            }
            "add" => {
                let (key, delta): (ByteBuf, ByteBuf) = args(kind, op, bytes)?;
                let Some(value) = data.entries.get(key.as_slice()) else {
                    return Err(Failure::Refused("add: the dict has no such key".into()));
                };
                let new = add(value, &delta)?;
                data.set(key.into_vec(), new.clone())?;
                Ok(new)
            }
            "compare-and-set" => {
                let (key, expected, new): (ByteBuf, Option<ByteBuf>, ByteBuf) =
                    args(kind, op, bytes)?;
                let current = data.entries.get(key.as_slice()).map(Vec::as_slice);
                if current != expected.as_deref().map(|e| e.as_slice()) {
                    return encode(&false);
                }
                data.set(key.into_vec(), new.into_vec())?;
                encode(&true)
            }
            _ => Err(unknown_op(kind, op)),
        }
    }

    fn list(&self, op: &str, bytes: &[u8], wait: &Wait) -> Result<Vec<u8>, Failure> {
        let kind = self.kind;
        let mut data = self.lock();
        match op {
            "append" => {
                let (item,): (ByteBuf,) = args(kind, op, bytes)?;
                data.charge(item.len(), 0)?;
                data.items.push(item.into_vec());
                encode(&())
            }
            "get" => {
                let (index,): (i64,) = args(kind, op, bytes)?;
                let at = data.index(index)?;
                encode(&ByteBuf::from(data.items[at].clone()))
            }
            "set" => {
                let (index, item): (i64, ByteBuf) = args(kind, op, bytes)?;
                let at = data.index(index)?;
                let old = data.items[at].len();
                data.charge(item.len(), old)?;
                data.items[at] = item.into_vec();
                encode(&())
            }
            "pop" => {
                let () = args(kind, op, bytes)?;
                let Some(last) = data.items.last() else {
                    return Err(Failure::Refused("pop from an empty list".into()));
                };
                wait.fits(last.len())?;
                let item = data.items.pop().expect("checked");
                data.bytes -= item.len();
                encode(&ByteBuf::from(item))
            }
            "len" => {
                let () = args(kind, op, bytes)?;
                encode(&data.items.len())
            }
            "items" => {
                let () = args(kind, op, bytes)?;
                let items: Vec<ByteBuf> = data.items.iter().cloned().map(ByteBuf::from).collect();
                encode(&items)
            }
            _ => Err(unknown_op(kind, op)),
        }
    }

    fn value(&self, op: &str, bytes: &[u8]) -> Result<Vec<u8>, Failure> {
        const SLOT: &[u8] = &[];
        let kind = self.kind;
        let mut data = self.lock();
        let current = |data: &Data| data.entries.get(SLOT).cloned().unwrap_or(vec![0xc0]);
        match op {
            "get" => {
                let () = args(kind, op, bytes)?;
                encode(&ByteBuf::from(current(&data)))
            }
            "set" => {
                let (value,): (ByteBuf,) = args(kind, op, bytes)?;
                data.set(SLOT.to_vec(), value.into_vec())?;
                encode(&())
            }
            "add" => {
                let (delta,): (ByteBuf,) = args(kind, op, bytes)?;
                let new = add(&current(&data), &delta)?;
                data.set(SLOT.to_vec(), new.clone())?;
                Ok(new)
            }
            "compare-and-set" => {
                let (expected, new): (ByteBuf, ByteBuf) = args(kind, op, bytes)?;
                if current(&data) != *expected {
                    return encode(&false);
                }
                data.set(SLOT.to_vec(), new.into_vec())?;
                encode(&true)
            }
            _ => Err(unknown_op(kind, op)),
        }
    }

    /// Runs `op` for the host, encoding and decoding its typed values.
    fn host<R: DeserializeOwned>(&self, op: &str, args: impl Serialize) -> Result<R, Error> {
        let mut bytes = Vec::new();
        crate::args::encode(&mut bytes, &args)
            .map_err(|why| Error::new(ErrorKind::BadArguments, why))?;
        let result = self
            .invoke(Holder::this_thread(), op, &bytes, &Wait::forever())
            .map_err(|failure| Error::new(ErrorKind::Failed, failure.to_string()))?;
        rmp_serde::from_slice(&result).map_err(|err| {
            Error::new(
                ErrorKind::BadResult,
                format!("the result of `{op}` does not decode: {err}"),
            )
        })
    }
}

impl Object for Managed {
    fn id(&self) -> u64 {
        self.id
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn may_wait(&self, _op: &str) -> bool {
        false
    }

    fn invoke(
        &self,
        _holder: Holder,
        op: &str,
        bytes: &[u8],
        wait: &Wait,
    ) -> Result<Vec<u8>, Failure> {
        match self.kind {
            Kind::Dict => self.dict(op, bytes),
            Kind::List => self.list(op, bytes, wait),
            _ => self.value(op, bytes),
        }
    }

    fn give_back(&self, _holder: Holder, op: &str, result: &[u8], _took: u64) {
        if self.kind == Kind::List
            && op == "pop"
            && let Ok(item) = rmp_serde::from_slice::<ByteBuf>(result)
        {
            let mut data = self.lock();
            data.bytes += item.len();
            data.items.push(item.into_vec());
        }
    }
}

/// Encodes a value as MessagePack, for the host's typed calls.
fn packed<T: Serialize + ?Sized>(value: &T) -> Result<ByteBuf, Error> {
    rmp_serde::to_vec_named(value)
        .map(ByteBuf::from)
        .map_err(|err| Error::new(ErrorKind::BadArguments, format!("does not encode: {err}")))
}

/// Decodes a value the host stored or a task wrote.
fn unpacked<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    rmp_serde::from_slice(bytes).map_err(|err| {
        Error::new(
            ErrorKind::BadResult,
            format!(
                "a stored value does not decode to {}: {err}",
                std::any::type_name::<T>()
            ),
        )
    })
}

/// Makes shared data: Python's `multiprocessing.Manager()`, without a server
/// process — the host holds the data, and tasks reach it through handles.
#[derive(Clone, Copy, Debug, Default)]
pub struct Manager;

impl Manager {
    /// A manager.
    pub fn new() -> Self {
        Manager
    }

    /// A new shared dict holding `entries`.
    ///
    /// # Errors
    ///
    /// An entry that does not encode, or over [`MANAGED_BYTES`].
    pub fn dict<K, V>(&self, entries: impl IntoIterator<Item = (K, V)>) -> Result<Dict<K, V>, Error>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        let dict = Dict {
            object: Managed::new(Kind::Dict),
            types: PhantomData,
        };
        for (key, value) in entries {
            dict.set(&key, &value)?;
        }
        Ok(dict)
    }

    /// A new shared list holding `items`.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn list<T>(&self, items: impl IntoIterator<Item = T>) -> Result<List<T>, Error>
    where
        T: Serialize + DeserializeOwned,
    {
        let list = List {
            object: Managed::new(Kind::List),
            types: PhantomData,
        };
        for item in items {
            list.append(&item)?;
        }
        Ok(list)
    }

    /// A new shared value holding `value`: Python's `Manager().Value`.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn value<T>(&self, value: &T) -> Result<Value<T>, Error>
    where
        T: Serialize + DeserializeOwned,
    {
        let shared = Value {
            object: Managed::new(Kind::Value),
            types: PhantomData,
        };
        shared.set(value)?;
        Ok(shared)
    }
}

macro_rules! managed_type {
    ($name:ident<$($param:ident),+>) => {
        impl<$($param),+> Clone for $name<$($param),+> {
            fn clone(&self) -> Self {
                $name { object: self.object.clone(), types: PhantomData }
            }
        }

        impl<$($param),+> fmt::Debug for $name<$($param),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("id", &self.object.id).finish()
            }
        }

        serialize_as_handle!($name<$($param),+>, object);
    };
}

/// A dict shared by tasks and host threads, in insertion order: a
/// `Manager().dict()`. Keys and values are any serde values.
pub struct Dict<K, V> {
    object: Arc<Managed>,
    types: PhantomData<Entries<K, V>>,
}

/// What a dict's type parameters mark: it takes and gives keys and values.
type Entries<K, V> = fn(K, V) -> (K, V);

managed_type!(Dict<K, V>);

impl<K, V> Dict<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// The value of `key`, if any.
    ///
    /// # Errors
    ///
    /// A key that does not encode, or a value that does not decode to `V`.
    pub fn get(&self, key: &K) -> Result<Option<V>, Error> {
        let value: Option<ByteBuf> = self.object.host("get", (packed(key)?,))?;
        value.map(|bytes| unpacked(&bytes)).transpose()
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    ///
    /// A value that does not encode, or a dict over [`MANAGED_BYTES`].
    pub fn set(&self, key: &K, value: &V) -> Result<(), Error> {
        self.object.host("set", (packed(key)?, packed(value)?))
    }

    /// Removes `key`; whether it was there.
    ///
    /// # Errors
    ///
    /// A key that does not encode.
    pub fn delete(&self, key: &K) -> Result<bool, Error> {
        self.object.host("delete", (packed(key)?,))
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.object.lock().entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its entries now, in insertion order.
    ///
    /// # Errors
    ///
    /// An entry that does not decode.
    pub fn items(&self) -> Result<Vec<(K, V)>, Error> {
        let data = self.object.lock();
        data.entries
            .iter()
            .map(|(k, v)| Ok((unpacked(k)?, unpacked(v)?)))
            .collect()
    }

    /// Sets every entry of `entries`.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn update<'a>(&self, entries: impl IntoIterator<Item = (&'a K, &'a V)>) -> Result<(), Error>
    where
        K: 'a,
        V: 'a,
    {
        let entries = entries
            .into_iter()
            .map(|(k, v)| Ok((packed(k)?, packed(v)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        self.object.host("update", (entries,))
    }

    /// Adds `delta` to the number at `key`, atomically; the new number.
    ///
    /// # Errors
    ///
    /// No such key, or not numbers.
    pub fn add<N: Serialize + DeserializeOwned>(&self, key: &K, delta: N) -> Result<N, Error> {
        self.object.host("add", (packed(key)?, packed(&delta)?))
    }

    /// Sets `key` to `new` if it holds `expected` now (`None`: if it is
    /// absent), atomically; whether it did.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn compare_and_set(&self, key: &K, expected: Option<&V>, new: &V) -> Result<bool, Error> {
        let expected = expected.map(packed).transpose()?;
        self.object
            .host("compare-and-set", (packed(key)?, expected, packed(new)?))
    }
}

/// A list shared by tasks and host threads: a `Manager().list()`.
pub struct List<T> {
    object: Arc<Managed>,
    types: PhantomData<fn(T) -> T>,
}

managed_type!(List<T>);

impl<T: Serialize + DeserializeOwned> List<T> {
    /// Appends `item`.
    ///
    /// # Errors
    ///
    /// An item that does not encode, or a list over [`MANAGED_BYTES`].
    pub fn append(&self, item: &T) -> Result<(), Error> {
        self.object.host("append", (packed(item)?,))
    }

    /// The item at `index` (negative: from the end).
    ///
    /// # Errors
    ///
    /// An index out of range, or an item that does not decode.
    pub fn get(&self, index: i64) -> Result<T, Error> {
        let item: ByteBuf = self.object.host("get", (index,))?;
        unpacked(&item)
    }

    /// Replaces the item at `index`.
    ///
    /// # Errors
    ///
    /// An index out of range, or an item that does not encode.
    pub fn set(&self, index: i64, item: &T) -> Result<(), Error> {
        self.object.host("set", (index, packed(item)?))
    }

    /// Removes and returns the last item.
    ///
    /// # Errors
    ///
    /// An empty list, or an item that does not decode.
    pub fn pop(&self) -> Result<T, Error> {
        let item: ByteBuf = self.object.host("pop", ())?;
        unpacked(&item)
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.object.lock().items.len()
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its items now.
    ///
    /// # Errors
    ///
    /// An item that does not decode.
    pub fn items(&self) -> Result<Vec<T>, Error> {
        self.object
            .lock()
            .items
            .iter()
            .map(|item| unpacked(item))
            .collect()
    }
}

/// One value shared by tasks and host threads: Python's `Value`.
pub struct Value<T> {
    object: Arc<Managed>,
    types: PhantomData<fn(T) -> T>,
}

managed_type!(Value<T>);

impl<T: Serialize + DeserializeOwned> Value<T> {
    /// The value now.
    ///
    /// # Errors
    ///
    /// A value (a task wrote) that does not decode to `T`.
    pub fn get(&self) -> Result<T, Error> {
        let bytes: ByteBuf = self.object.host("get", ())?;
        unpacked(&bytes)
    }

    /// Sets the value.
    ///
    /// # Errors
    ///
    /// A value that does not encode, or over [`MANAGED_BYTES`].
    pub fn set(&self, value: &T) -> Result<(), Error> {
        self.object.host("set", (packed(value)?,))
    }

    /// Adds `delta` to the number, atomically; the new number.
    ///
    /// # Errors
    ///
    /// Not a number.
    pub fn add(&self, delta: T) -> Result<T, Error> {
        self.object.host("add", (packed(&delta)?,))
    }

    /// Sets the value to `new` if it is `expected` now, atomically; whether
    /// it did.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn compare_and_set(&self, expected: &T, new: &T) -> Result<bool, Error> {
        self.object
            .host("compare-and-set", (packed(expected)?, packed(new)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dict_counts_down_exactly_from_many_threads() {
        let dict = Manager::new()
            .dict([("count".to_string(), 100i64)])
            .unwrap();
        std::thread::scope(|scope| {
            for _ in 0..10 {
                scope.spawn(|| dict.add(&"count".to_string(), -1i64).unwrap());
            }
        });
        assert_eq!(dict.get(&"count".to_string()).unwrap(), Some(90));
        assert_eq!(dict.items().unwrap(), [("count".to_string(), 90)]);
        assert!(dict.delete(&"count".to_string()).unwrap());
        assert!(dict.is_empty());
    }

    #[test]
    fn lists_and_values_keep_what_they_are_given() {
        let manager = Manager::new();
        let list = manager.list([1, 2]).unwrap();
        list.append(&3).unwrap();
        list.set(-1, &4).unwrap();
        assert_eq!(list.items().unwrap(), [1, 2, 4]);
        assert_eq!(list.pop().unwrap(), 4);
        assert_eq!(list.get(0).unwrap(), 1);
        assert!(list.get(5).is_err());
        let value = manager.value(&1.5f64).unwrap();
        assert_eq!(value.add(1.0).unwrap(), 2.5);
        assert!(!value.compare_and_set(&1.0, &7.0).unwrap());
        assert!(value.compare_and_set(&2.5, &7.0).unwrap());
        assert_eq!(value.get().unwrap(), 7.0);
        let (a, b) = ("a".to_string(), "b".to_string());
        let dict = manager.dict([(a.clone(), 1)]).unwrap();
        dict.update([(&b, &2)]).unwrap();
        assert!(!dict.compare_and_set(&a, None, &5).unwrap());
        assert!(dict.compare_and_set(&a, Some(&1), &5).unwrap());
        assert_eq!(dict.items().unwrap(), [(a, 5), (b, 2)]);
    }
}
