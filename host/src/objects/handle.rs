//! How a shared object travels in a task's arguments: as a MessagePack
//! `ext` of type 87 holding its kind and id (see `wit/wasmpool.wit`). While
//! a task's arguments are encoded ([`collecting`]), every object encoded is
//! also collected, so that its chunk carries it and the worker that runs the
//! task is granted it.

use std::cell::RefCell;

use serde::Serializer;
use serde_bytes::ByteBuf;

use crate::objects::ObjectRef;

/// The MessagePack `ext` type of a handle: `'W'`.
pub(crate) const EXT_TYPE: i8 = 87;

thread_local! {
    /// The objects encoded since [`collecting`] began on this thread.
    static COLLECTED: RefCell<Option<Vec<ObjectRef>>> = const { RefCell::new(None) };
}

/// Runs `encode`, and returns what it returned with the shared objects it
/// encoded.
pub(crate) fn collecting<R>(encode: impl FnOnce() -> R) -> (R, Vec<ObjectRef>) {
    let outer = COLLECTED.with(|collected| collected.borrow_mut().replace(Vec::new()));
    let result = encode();
    let objects =
        COLLECTED.with(|collected| std::mem::replace(&mut *collected.borrow_mut(), outer));
    (result, objects.unwrap_or_default())
}

/// Encodes `object` as a handle, collecting it if arguments are being
/// encoded.
pub(crate) fn serialize<S: Serializer>(
    object: &ObjectRef,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    COLLECTED.with(|collected| {
        if let Some(objects) = collected.borrow_mut().as_mut() {
            objects.push(object.clone());
        }
    });
    let mut bytes = Vec::with_capacity(9);
    bytes.push(object.kind() as u8);
    bytes.extend_from_slice(&object.id().to_be_bytes());
    serializer.serialize_newtype_struct(
        rmp_serde::MSGPACK_EXT_STRUCT_NAME,
        &(EXT_TYPE, ByteBuf::from(bytes)),
    )
}

/// Implements `Serialize` for a host type (generic over `$param`s, if
/// given) whose field `$field` is its object, as a handle.
macro_rules! serialize_as_handle {
    ($type:ident $(<$($param:ident),+>)?, $field:ident) => {
        impl$(<$($param),+>)? serde::Serialize for $type$(<$($param),+>)? {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let object: $crate::objects::ObjectRef = self.$field.clone();
                $crate::objects::handle::serialize(&object, serializer)
            }
        }
    };
}

pub(crate) use serialize_as_handle;
