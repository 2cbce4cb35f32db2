//! A call's arguments on their way to a task: encoded as the one positional
//! MessagePack array the contract runs a task with ([`encode`]), bound from
//! keyword arguments as Python binds a call to a signature ([`bind`]), and
//! checked against the task's arity and the payload limit ([`check`]). The
//! host functions' arguments come back the other way ([`decode`]). Pure: no
//! I/O, no pool.

pub(crate) mod bind;

use serde::Serialize;

use crate::channel::ParamInfo;

/// MessagePack's nil, which is how `()` encodes.
const NIL: u8 = 0xc0;
/// MessagePack's empty array: the arguments of a task without parameters.
const EMPTY_ARRAY: u8 = 0x90;

/// Appends `args`, a tuple of positional arguments, to `out` as the
/// MessagePack array the contract wants.
pub(crate) fn encode<A: Serialize + ?Sized>(out: &mut Vec<u8>, args: &A) -> Result<(), String> {
    let start = out.len();
    rmp_serde::encode::write_named(out, args).map_err(|err| format!("bad arguments: {err}"))?;
    // `()` encodes as nil; no arguments are the empty array.
    if out[start..] == [NIL] {
        out[start] = EMPTY_ARRAY;
    }
    Ok(())
}

/// Appends the positional arguments that `call`, a pair (positional
/// arguments, keyword arguments), binds to `params` to `out`.
pub(crate) fn encode_call<C: Serialize + ?Sized>(
    params: &[ParamInfo],
    call: &C,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let encoded =
        rmp_serde::encode::to_vec_named(call).map_err(|err| format!("bad arguments: {err}"))?;
    bind::bind(params, &encoded, out).map_err(|err| err.to_string())
}

/// Decodes a MessagePack array of positional arguments (a host call's) into
/// `A`, a tuple: the inverse of [`encode`], so no arguments, the empty
/// array, are `()`, which serde reads from nil.
pub(crate) fn decode<A: serde::de::DeserializeOwned>(
    args: &[u8],
) -> Result<A, rmp_serde::decode::Error> {
    rmp_serde::from_slice(args).or_else(|err| match args {
        [EMPTY_ARRAY] => rmp_serde::from_slice(&[NIL]).map_err(|_| err),
        _ => Err(err),
    })
}

/// Checks one task's encoded arguments: a MessagePack array of `arity`
/// elements, no larger than `max_payload` bytes.
pub(crate) fn check(bytes: &[u8], arity: u32, max_payload: usize) -> Result<(), String> {
    if bytes.len() > max_payload {
        return Err(format!(
            "the arguments take {} bytes, over the payload limit of {max_payload} bytes",
            bytes.len()
        ));
    }
    let len = match bytes {
        [b @ 0x90..=0x9f, ..] => u32::from(b & 0x0f),
        [0xdc, hi, lo, ..] => u32::from(u16::from_be_bytes([*hi, *lo])),
        [0xdd, a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => {
            return Err(
                "the arguments must be a sequence of positional arguments (a tuple), \
                 not a single value"
                    .to_string(),
            );
        }
    };
    if len != arity {
        return Err(format!(
            "the task takes {arity} argument{}, but {len} were given",
            if arity == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_value_is_not_an_argument_list() {
        assert!(check(&rmp_serde::to_vec(&5).unwrap(), 1, 100).is_err());
        assert!(check(&rmp_serde::to_vec(&(5,)).unwrap(), 1, 100).is_ok());
        assert!(check(&rmp_serde::to_vec(&(5,)).unwrap(), 1, 1).is_err());
    }
}
