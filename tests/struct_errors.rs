//! The struct codec's error messages say what is wrong and where: a record
//! too large to allocate is not "bytes of memory: expected …", and every
//! "total struct size too long" points at the item that makes it too long
//! (its repeat count), whichever check caught it.

use reactor::Error;
use reactor::codec::Struct;

#[test]
fn a_record_too_large_to_allocate_says_so() {
    // Valid (Python's struct.calcsize says 1000000000000), but no machine
    // here has a terabyte to pack it into.
    let st = Struct::new("1000000000000x").expect("a valid format");
    let err = st.pack(&[]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::StructAlloc {
                what: "bytes",
                size: 1_000_000_000_000
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "cannot allocate memory for a struct record of 1000000000000 bytes"
    );
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::OutOfMemory);
}

/// The `position` of the error `format` gives.
fn position(format: &str) -> usize {
    match Struct::new(format) {
        Err(Error::StructFormat {
            position, reason, ..
        }) => {
            assert_eq!(reason, "total struct size too long", "{format}");
            position
        }
        other => panic!("{format}: {other:?}"),
    }
}

#[test]
fn too_long_points_at_the_item_that_makes_it_too_long() {
    // The count itself overflows while it is read.
    assert_eq!(position("<3q99999999999999999999x"), 3);
    // The count fits, count × size does not.
    assert_eq!(position("9223372036854775807q"), 0);
    assert_eq!(position("xi4611686018427387904h"), 2);
    // The total passes isize::MAX when this item is added.
    assert_eq!(position("@i9223372036854775807s"), 2);
    assert_eq!(position("<i 9223372036854775804x"), 3);
    // Character positions, not bytes, after a byte-order prefix.
    assert_eq!(position("!9223372036854775807d"), 1);
}
