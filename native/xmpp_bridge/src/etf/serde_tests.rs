//! The serde mapping, both ways, row by row (docs/PROTOCOL.md).

use super::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn atom(s: &str) -> Term {
    Term::atom(s)
}

fn bin(s: &str) -> Term {
    Term::binary(s)
}

fn int(i: i64) -> Term {
    Term::Int(i)
}

fn big(negative: bool, magnitude: &[u8]) -> Term {
    Term::BigInt {
        negative,
        magnitude: magnitude.to_vec(),
    }
}

fn map(pairs: Vec<(Term, Term)>) -> Term {
    Term::Map(pairs)
}

/// `value` serializes to `term`, and `term` deserializes to `value`.
#[track_caller]
fn both<T>(value: T, term: Term)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(to_term(&value).as_ref(), Ok(&term), "{value:?}");
    assert_eq!(
        from_term::<T>(term.clone()).as_ref(),
        Ok(&value),
        "{term:?}"
    );
    // And through bytes.
    let bytes = to_vec(&value).unwrap();
    assert_eq!(decode(&bytes).as_ref(), Ok(&term));
    assert_eq!(from_slice::<T>(&bytes).as_ref(), Ok(&value));
}

#[track_caller]
fn read<T: serde::de::DeserializeOwned>(term: Term) -> Result<T, Error> {
    from_term(term)
}

#[track_caller]
fn read_err<T: serde::de::DeserializeOwned + std::fmt::Debug>(term: Term) -> String {
    match from_term::<T>(term) {
        Ok(v) => panic!("read {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename_all = "snake_case")]
enum Status {
    Online,
    DoNotDisturb,
    Away { since: u64 },
    Custom(String),
    Pair(i32, i32),
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct User {
    name: String,
    age: u8,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    nick: Option<String>,
    #[serde(skip)]
    cache: u32,
}

#[test]
fn scalars_both_ways() {
    both(true, atom("true"));
    both(false, atom("false"));
    both((), atom("nil"));
    both('é', bin("é"));
    both("Ünïcødé ✓ 🎉".to_string(), bin("Ünïcødé ✓ 🎉"));
    both(String::new(), bin(""));
    both(1.5f64, Term::Float(1.5));
    both(-0.25f32, Term::Float(-0.25));
    both(Some(7u8), int(7));
    both(None::<u8>, atom("nil"));
    both(Some(Some(1)), int(1));
    both(
        serde_bytes::ByteBuf::from(vec![0, 255, 1]),
        Term::binary(vec![0, 255, 1]),
    );
    // Vec<u8> without serde_bytes is a sequence: a list.
    both(vec![1u8, 2], Term::list(vec![int(1), int(2)]));
}

#[test]
fn integers_both_ways() {
    both(i8::MIN, int(-128));
    both(u8::MAX, int(255));
    both(i16::MIN, int(-32768));
    both(u16::MAX, int(65535));
    both(i32::MIN, int(i64::from(i32::MIN)));
    both(u32::MAX, int(i64::from(u32::MAX)));
    both(i64::MIN, int(i64::MIN));
    both(i64::MAX, int(i64::MAX));
    both(i64::MAX as u64, int(i64::MAX));
    // Beyond i64: big integers, little-endian magnitude.
    both(1u64 << 63, big(false, &[0, 0, 0, 0, 0, 0, 0, 128]));
    both(u64::MAX, big(false, &[255; 8]));
    both(7i128, int(7));
    both(i128::from(i64::MIN), int(i64::MIN));
    both(
        i128::from(i64::MIN) - 1,
        big(true, &[1, 0, 0, 0, 0, 0, 0, 128]),
    );
    both(1u128 << 64, big(false, &[0, 0, 0, 0, 0, 0, 0, 0, 1]));
    both(u128::MAX, big(false, &[255; 16]));
    both(
        i128::MAX,
        big(false, &{
            let mut m = [255; 16];
            m[15] = 127;
            m
        }),
    );
    let mut min = [0; 16];
    min[15] = 128;
    both(i128::MIN, big(true, &min));
    both(
        -(1i128 << 100),
        big(true, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16]),
    );
}

#[test]
fn integers_read_into_any_type_that_holds_them() {
    assert_eq!(read::<u8>(int(200)), Ok(200));
    assert_eq!(
        read::<i128>(big(false, &[255; 8])),
        Ok(i128::from(u64::MAX))
    );
    assert_eq!(read::<u64>(big(false, &[255; 8])), Ok(u64::MAX));
    // A big integer with trailing zero bytes (not canonical) still reads.
    assert_eq!(read::<u64>(big(false, &[1, 0, 0])), Ok(1));
    assert_eq!(read::<f64>(int(3)), Ok(3.0));
    assert_eq!(read::<f32>(int(-3)), Ok(-3.0));
    assert_eq!(
        read::<f64>(big(false, &[0, 0, 0, 0, 0, 0, 0, 0, 1])),
        Ok(18446744073709551616.0)
    );
    assert_eq!(read_err::<u8>(int(300)), "integer 300 out of range for u8");
    assert_eq!(read_err::<u32>(int(-1)), "integer -1 out of range for u32");
    assert_eq!(
        read_err::<i64>(big(false, &[255; 8])),
        "integer 18446744073709551615 out of range for i64"
    );
    let mut two_200 = vec![0u8; 25];
    two_200.push(1);
    assert_eq!(
        read_err::<u128>(big(false, &two_200)),
        "integer 1606938044258990275541962092341162602522202993782792835301376 out of range for u128"
    );
    // -(2^127) fits an i128, -(2^127 + 1) does not.
    let mut m = vec![0u8; 16];
    m[15] = 128;
    assert_eq!(read::<i128>(big(true, &m)), Ok(i128::MIN));
    m[0] = 1;
    assert!(read::<i128>(big(true, &m)).is_err());
    assert_eq!(
        read_err::<i32>(Term::Float(1.5)),
        "expected an integer, found float 1.5"
    );
    assert_eq!(
        read_err::<u8>(atom("foo")),
        "expected an integer, found atom `foo`"
    );
    assert!(matches!(
        read::<u16>(int(70000)),
        Err(Error::OutOfRange { target: "u16", .. })
    ));
}

#[test]
fn floats_that_etf_cannot_carry_are_refused() {
    assert!(matches!(to_term(&f64::NAN), Err(Error::NonFinite(x)) if x.is_nan()));
    assert_eq!(
        to_term(&f64::INFINITY),
        Err(Error::NonFinite(f64::INFINITY))
    );
    assert_eq!(
        to_term(&vec![1.0, f64::NEG_INFINITY])
            .unwrap_err()
            .to_string(),
        "float -inf cannot be carried by ETF"
    );
    assert_eq!(
        read_err::<f32>(Term::Float(1e300)),
        "float 1e300 out of range for f32"
    );
    assert_eq!(
        read::<f64>(Term::Float(-0.0)).map(f64::to_bits),
        Ok((-0.0f64).to_bits())
    );
}

#[test]
fn strings_read_from_binaries_and_atoms() {
    assert_eq!(read::<String>(atom("café")), Ok("café".into()));
    assert_eq!(read::<char>(atom("x")), Ok('x'));
    assert_eq!(read::<char>(bin("✓")), Ok('✓'));
    assert_eq!(
        read_err::<char>(bin("xy")),
        "expected a single character (a binary or an atom), found binary \"xy\""
    );
    assert_eq!(
        read_err::<String>(Term::binary(vec![0xff, 0xfe])),
        "binary is not UTF-8"
    );
    assert_eq!(
        read_err::<String>(int(1)),
        "expected a string (a binary or an atom), found integer 1"
    );
    // Borrowed: the &str points into the term.
    let t = Term::tuple(vec![bin("romeo"), Term::binary(vec![1, 2])]);
    let (s, b): (&str, &[u8]) = from_term_ref(&t).unwrap();
    assert_eq!((s, b), ("romeo", &[1u8, 2][..]));
    // Bytes only from binaries.
    assert_eq!(
        read_err::<serde_bytes::ByteBuf>(atom("x")),
        "expected a binary, found atom `x`"
    );
}

#[test]
fn options_and_units() {
    assert_eq!(read::<Option<u8>>(atom("undefined")), Ok(None));
    assert_eq!(read::<Option<String>>(atom("ok")), Ok(Some("ok".into())));
    assert_eq!(read::<()>(atom("undefined")), Ok(()));
    assert_eq!(
        read_err::<()>(atom("ok")),
        "expected `nil`, found atom `ok`"
    );
    assert_eq!(
        read_err::<bool>(bin("true")),
        "expected a boolean (`true` or `false`), found binary \"true\""
    );

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Unit;
    both(Unit, atom("nil"));

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Meters(f64);
    both(Meters(2.5), Term::Float(2.5));
}

#[test]
fn enums_both_ways() {
    both(Status::Online, atom("online"));
    both(Status::DoNotDisturb, atom("do_not_disturb"));
    both(
        Status::Away { since: 12 },
        Term::tuple(vec![atom("away"), map(vec![(atom("since"), int(12))])]),
    );
    both(
        Status::Custom("brb".into()),
        Term::tuple(vec![atom("custom"), bin("brb")]),
    );
    both(
        Status::Pair(1, -2),
        Term::tuple(vec![atom("pair"), int(1), int(-2)]),
    );
    both(
        vec![Ok(1), Err("no".to_string())],
        Term::list(vec![
            Term::tuple(vec![atom("Ok"), int(1)]),
            Term::tuple(vec![atom("Err"), bin("no")]),
        ]),
    );
}

#[test]
fn enums_read_liberally() {
    // Tags may be binaries.
    assert_eq!(read::<Status>(bin("online")), Ok(Status::Online));
    assert_eq!(
        read::<Status>(Term::tuple(vec![bin("custom"), bin("x")])),
        Ok(Status::Custom("x".into()))
    );
    // A 1-entry map, as JSON-minded peers write it.
    assert_eq!(
        read::<Status>(map(vec![(atom("custom"), bin("x"))])),
        Ok(Status::Custom("x".into()))
    );
    assert_eq!(
        read::<Status>(map(vec![(bin("away"), map(vec![(bin("since"), int(1))]))])),
        Ok(Status::Away { since: 1 })
    );
    // {:online} and {:online, nil} for a unit variant.
    assert_eq!(
        read::<Status>(Term::tuple(vec![atom("online")])),
        Ok(Status::Online)
    );
    assert_eq!(
        read::<Status>(Term::tuple(vec![atom("online"), atom("nil")])),
        Ok(Status::Online)
    );
    // A tuple variant's fields in a tuple or list of their own.
    assert_eq!(
        read::<Status>(Term::tuple(vec![
            atom("pair"),
            Term::list(vec![int(3), int(4)])
        ])),
        Ok(Status::Pair(3, 4))
    );

    assert_eq!(
        read_err::<Status>(atom("offline")),
        "unknown variant `offline`, expected one of `online`, `do_not_disturb`, `away`, `custom`, `pair`"
    );
    assert_eq!(
        read_err::<Status>(atom("custom")),
        "expected a tuple `{:custom, value}`, found atom `custom`"
    );
    assert_eq!(
        read_err::<Status>(Term::tuple(vec![atom("pair"), int(1)])),
        "expected a tuple `{:pair, ...}` of 3 elements, found a tuple of 2 elements"
    );
    assert_eq!(
        read_err::<Status>(Term::tuple(vec![atom("away"), int(1)])),
        "expected a tuple `{:away, %{...}}`, found a tuple of 2 elements"
    );
    assert_eq!(
        read_err::<Status>(Term::tuple(vec![atom("online"), int(1)])),
        "expected atom `online` (a unit variant), found a tuple of 2 elements"
    );
    assert_eq!(
        read_err::<Status>(int(1)),
        "expected an atom or a tuple tagged with one (enum `Status`), found integer 1"
    );
}

#[test]
fn structs_are_maps_with_atom_keys() {
    let user = User {
        name: "Élodie".into(),
        age: 33,
        status: Status::Away { since: 5 },
        nick: None,
        cache: 0,
    };
    let term = map(vec![
        (atom("name"), bin("Élodie")),
        (atom("age"), int(33)),
        (
            atom("status"),
            Term::tuple(vec![atom("away"), map(vec![(atom("since"), int(5))])]),
        ),
    ]);
    both(user.clone(), term);

    // What an Elixir struct looks like: __struct__ and unknown keys are
    // ignored, keys may be binaries, order does not matter, and an
    // ignored value may be anything (even an improper list).
    let sent = map(vec![
        (atom("__struct__"), atom("Elixir.User")),
        (bin("status"), atom("online")),
        (
            atom("extra"),
            Term::ImproperList(vec![int(1)], Box::new(int(2))),
        ),
        (atom("age"), int(40)),
        (bin("name"), atom("juliet")),
        (atom("nick"), bin("jules")),
    ]);
    assert_eq!(
        read::<User>(sent),
        Ok(User {
            name: "juliet".into(),
            age: 40,
            status: Status::Online,
            nick: Some("jules".into()),
            cache: 0,
        })
    );

    assert_eq!(
        read_err::<User>(map(vec![(atom("name"), bin("x"))])),
        "missing field `age`"
    );
    assert_eq!(
        read_err::<User>(Term::list(vec![])),
        "expected a map (for struct `User`), found an empty list `[]`"
    );
    assert_eq!(
        read_err::<User>(map(vec![(int(1), bin("x"))])),
        "expected a name (an atom or a binary), found integer 1"
    );
    let too_old = map(vec![
        (atom("name"), bin("x")),
        (atom("age"), int(256)),
        (atom("status"), atom("online")),
    ]);
    assert_eq!(read_err::<User>(too_old), "integer 256 out of range for u8");

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        a: u8,
    }
    assert_eq!(
        read_err::<Strict>(map(vec![
            (atom("a"), int(1)),
            (atom("__struct__"), atom("Elixir.Strict"))
        ])),
        "unknown field `__struct__`, expected `a`"
    );
}

#[test]
fn sequences_tuples_and_maps() {
    both(
        vec!["a".to_string(), "b".to_string()],
        Term::list(vec![bin("a"), bin("b")]),
    );
    both(Vec::<u8>::new(), Term::list(vec![]));
    both(BTreeSet::from([3, 1]), Term::list(vec![int(1), int(3)]));
    both(
        (1u8, "x".to_string(), Status::Online),
        Term::tuple(vec![int(1), bin("x"), atom("online")]),
    );
    both([7u8, 8, 9], Term::tuple(vec![int(7), int(8), int(9)]));

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Point(i32, i32);
    both(Point(1, 2), Term::tuple(vec![int(1), int(2)]));

    both(
        BTreeMap::from([("k".to_string(), vec![1u8]), ("l".to_string(), vec![])]),
        map(vec![
            (bin("k"), Term::list(vec![int(1)])),
            (bin("l"), Term::list(vec![])),
        ]),
    );
    both(
        BTreeMap::from([(Atom::new("a"), 1), (Atom::new("b"), 2)]),
        map(vec![(atom("a"), int(1)), (atom("b"), int(2))]),
    );
    both(
        BTreeMap::from([((1, 2), true)]),
        map(vec![(Term::tuple(vec![int(1), int(2)]), atom("true"))]),
    );
    let h: HashMap<String, u8> = read(map(vec![(atom("x"), int(1))])).unwrap();
    assert_eq!(h, HashMap::from([("x".to_string(), 1)]));

    // Reading is liberal: sequences from tuples, tuples from lists.
    assert_eq!(
        read::<Vec<u8>>(Term::tuple(vec![int(1), int(2)])),
        Ok(vec![1, 2])
    );
    assert_eq!(
        read::<(u8, bool)>(Term::list(vec![int(1), atom("true")])),
        Ok((1, true))
    );
    assert_eq!(
        read_err::<(u8, u8, u8)>(Term::tuple(vec![int(1), int(2)])),
        "expected a tuple of 3 elements, found 2 elements"
    );
    assert_eq!(
        read_err::<Vec<u8>>(Term::ImproperList(vec![int(1)], Box::new(int(2)))),
        "expected a list or a tuple, found an improper list (of 1 element and a tail)"
    );
    assert_eq!(
        read_err::<Vec<u8>>(bin("ab")),
        "expected a list or a tuple, found binary \"ab\""
    );
    assert_eq!(
        read_err::<BTreeMap<String, u8>>(Term::list(vec![])),
        "expected a map, found an empty list `[]`"
    );
}

#[test]
fn nested_values_both_ways() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Roster {
        owner: Option<User>,
        groups: BTreeMap<String, Vec<(Atom, Option<Status>)>>,
        big: Vec<u128>,
        depth: ((i8,), [Option<bool>; 2]),
    }
    let roster = Roster {
        owner: Some(User {
            name: "r".into(),
            age: 1,
            status: Status::Custom("🎭".into()),
            nick: Some("ro".into()),
            cache: 0,
        }),
        groups: BTreeMap::from([(
            "friends".to_string(),
            vec![
                (Atom::new("juliet"), None),
                (Atom::new("nurse"), Some(Status::Pair(1, 2))),
            ],
        )]),
        big: vec![0, u128::MAX],
        depth: ((-1,), [None, Some(false)]),
    };
    let term = map(vec![
        (
            atom("owner"),
            map(vec![
                (atom("name"), bin("r")),
                (atom("age"), int(1)),
                (atom("status"), Term::tuple(vec![atom("custom"), bin("🎭")])),
                (atom("nick"), bin("ro")),
            ]),
        ),
        (
            atom("groups"),
            map(vec![(
                bin("friends"),
                Term::list(vec![
                    Term::tuple(vec![atom("juliet"), atom("nil")]),
                    Term::tuple(vec![
                        atom("nurse"),
                        Term::tuple(vec![atom("pair"), int(1), int(2)]),
                    ]),
                ]),
            )]),
        ),
        (
            atom("big"),
            Term::list(vec![int(0), big(false, &[255; 16])]),
        ),
        (
            atom("depth"),
            Term::tuple(vec![
                Term::tuple(vec![int(-1)]),
                Term::tuple(vec![atom("nil"), atom("false")]),
            ]),
        ),
    ]);
    both(roster, term);
}

#[test]
fn the_atom_newtype() {
    both(Atom::new("ok"), atom("ok"));
    both(Atom::new("Elixir.Foo.Bar"), atom("Elixir.Foo.Bar"));
    both(Atom::new("nil"), atom("nil"));
    both(Atom::new("true"), atom("true"));
    assert_eq!(
        read_err::<Atom>(bin("ok")),
        "expected an atom, found binary \"ok\""
    );
    let long = "a".repeat(256);
    assert_eq!(to_term(&Atom::new(long)), Err(Error::AtomTooLong(256)));
    assert!(to_term(&Atom::new("é".repeat(255))).is_ok());
    assert_eq!(Atom::from("x"), "x");
    assert_eq!(Atom::new("x").to_string(), "x");
    assert_eq!(Term::from(Atom::new("x")), atom("x"));
    // Other formats see a string (booleans and null for true, false, nil).
    assert_eq!(
        serde_json::to_string(&Atom::new("away")).unwrap(),
        "\"away\""
    );
    assert_eq!(serde_json::to_string(&Atom::new("nil")).unwrap(), "null");
    assert_eq!(
        serde_json::from_str::<Vec<Atom>>("[\"a\", true, null]").unwrap(),
        vec![Atom::new("a"), Atom::new("true"), Atom::new("nil")]
    );
}

/// Every kind of term, and tricky corners of each.
fn every_kind() -> Term {
    let mut two_200 = vec![0u8; 25];
    two_200.push(1);
    map(vec![
        (
            atom("ints"),
            Term::list(vec![int(0), int(-1), int(i64::MIN), int(i64::MAX)]),
        ),
        (
            atom("bigs"),
            Term::list(vec![
                big(false, &[255; 8]),
                big(true, &[0, 0, 0, 0, 0, 0, 0, 128, 0, 1]),
                big(false, &[255; 16]),
                big(true, &[255; 16]),
                big(false, &two_200),
                big(true, &[7; 600]),
            ]),
        ),
        (
            atom("floats"),
            Term::tuple(vec![
                Term::Float(-0.0),
                Term::Float(1e308),
                Term::Float(5e-324),
            ]),
        ),
        (
            Term::tuple(vec![
                atom("true"),
                atom("false"),
                atom("nil"),
                atom("undefined"),
            ]),
            Term::tuple(vec![]),
        ),
        (bin("utf8 ✓"), Term::binary(vec![0xff, 0, 0xc3])),
        (Term::binary(vec![]), Term::list(vec![])),
        (
            Term::list(vec![int(1), int(2)]),
            Term::ImproperList(vec![atom("a"), bin("b")], Box::new(Term::tuple(vec![]))),
        ),
        (
            atom("nested"),
            map(vec![(
                map(vec![]),
                map(vec![(int(1), int(2)), (int(1), int(3))]),
            )]),
        ),
        (atom(&"é".repeat(255)), atom("Elixir.Some.Module")),
    ])
}

#[test]
fn terms_pass_through_untouched() {
    let t = every_kind();
    assert_eq!(to_term(&t).as_ref(), Ok(&t));
    assert_eq!(from_term::<Term>(t.clone()).as_ref(), Ok(&t));
    assert_eq!(from_term_ref::<Term>(&t).as_ref(), Ok(&t));
    assert_eq!(from_slice::<Term>(&to_vec(&t).unwrap()).as_ref(), Ok(&t));

    // As a field, in an Option, in a Vec, as a map key.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Envelope {
        kind: Atom,
        payload: Term,
        extra: Option<Term>,
        all: Vec<Term>,
        keyed: BTreeMap<String, Term>,
    }
    let e = Envelope {
        kind: Atom::new("event"),
        payload: t.clone(),
        extra: Some(atom("x")),
        all: vec![t.clone(), atom("nil"), bin("nil")],
        keyed: BTreeMap::from([(
            "k".into(),
            Term::ImproperList(vec![int(1)], Box::new(int(2))),
        )]),
    };
    let term = to_term(&e).unwrap();
    assert_eq!(
        term,
        map(vec![
            (atom("kind"), atom("event")),
            (atom("payload"), t.clone()),
            (atom("extra"), atom("x")),
            (atom("all"), Term::list(vec![t, atom("nil"), bin("nil")])),
            (
                atom("keyed"),
                map(vec![(
                    bin("k"),
                    Term::ImproperList(vec![int(1)], Box::new(int(2)))
                )])
            ),
        ])
    );
    assert_eq!(from_term::<Envelope>(term).as_ref(), Ok(&e));

    // Option<Term>: nil is None, as for any Option.
    assert_eq!(read::<Option<Term>>(atom("nil")), Ok(None));

    // Non-canonical terms (built by hand, never decoded): to_term gives
    // the canonical form, as decode would; from_term keeps them.
    let odd = big(false, &[5, 0]);
    assert_eq!(to_term(&odd), Ok(int(5)));
    assert_eq!(from_term::<Term>(odd.clone()), Ok(odd));
    // Atoms ETF cannot carry, and NaN, are refused.
    assert_eq!(
        to_term(&atom(&"a".repeat(300))),
        Err(Error::AtomTooLong(300))
    );
    assert!(matches!(
        to_term(&Term::Float(f64::NAN)),
        Err(Error::NonFinite(_))
    ));
}

#[test]
fn terms_with_other_formats() {
    // Serialized to JSON as Jason would.
    let t = map(vec![
        (
            atom("a"),
            Term::list(vec![int(1), Term::Float(1.5), atom("true"), atom("nil")]),
        ),
        (
            bin("b"),
            Term::tuple(vec![atom("ok"), big(false, &[0, 0, 0, 0, 0, 0, 0, 0, 1])]),
        ),
        (
            atom("c"),
            Term::ImproperList(vec![int(1)], Box::new(int(2))),
        ),
        (atom("d"), Term::binary(vec![0xff])),
    ]);
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#"{"a":[1,1.5,true,null],"b":["ok",18446744073709551616],"c":[1,2],"d":[255]}"#
    );
    let mut two_200 = vec![0u8; 25];
    two_200.push(1);
    assert_eq!(
        serde_json::to_string(&big(true, &two_200)).unwrap(),
        "\"-1606938044258990275541962092341162602522202993782792835301376\""
    );
    // Read from JSON: strings are binaries, null nil, arrays lists.
    let from_json: Term =
        serde_json::from_str(r#"{"k": [1, -2, 1.5, "s", true, null, 18446744073709551615, {}]}"#)
            .unwrap();
    assert_eq!(
        from_json,
        map(vec![(
            bin("k"),
            Term::list(vec![
                int(1),
                int(-2),
                Term::Float(1.5),
                bin("s"),
                atom("true"),
                atom("nil"),
                big(false, &[255; 8]),
                map(vec![]),
            ])
        )])
    );
    // serde_json's Value to a term, and back through deserialize_any.
    let v: serde_json::Value =
        serde_json::from_str(r#"{"n": 1, "l": [true, null, "x", 2.5], "m": {"k": -1}}"#).unwrap();
    let t = to_term(&v).unwrap();
    assert_eq!(from_term::<serde_json::Value>(t), Ok(v));
}

#[test]
fn deserialize_any_for_untyped_readers() {
    let t = Term::tuple(vec![
        atom("ok"),
        atom("nil"),
        atom("false"),
        int(-3),
        big(false, &[255; 8]),
        Term::Float(0.5),
        bin("s"),
        map(vec![(atom("k"), Term::list(vec![]))]),
    ]);
    assert_eq!(
        read::<serde_json::Value>(t),
        Ok(serde_json::json!([
            "ok",
            null,
            false,
            -3,
            18446744073709551615u64,
            0.5,
            "s",
            {"k": []}
        ]))
    );
    assert!(read::<serde_json::Value>(Term::ImproperList(vec![int(1)], Box::new(int(2)))).is_err());

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Loose {
        Number(i64),
        Text(String),
        Pair(String, i64),
        Many(Vec<Loose>),
    }
    assert_eq!(read::<Loose>(int(1)), Ok(Loose::Number(1)));
    assert_eq!(read::<Loose>(atom("hi")), Ok(Loose::Text("hi".into())));
    assert_eq!(
        read::<Loose>(Term::tuple(vec![atom("ok"), int(2)])),
        Ok(Loose::Pair("ok".into(), 2))
    );
    assert_eq!(
        read::<Loose>(Term::list(vec![bin("a"), int(3)])),
        Ok(Loose::Pair("a".into(), 3))
    );
    assert_eq!(
        read::<Loose>(Term::list(vec![int(1)])),
        Ok(Loose::Many(vec![Loose::Number(1)]))
    );

    // Internally tagged enums work both ways too (through serde's buffer).
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Event {
        Joined {
            room: String,
        },
        Left {
            room: String,
            reason: Option<String>,
        },
    }
    both(
        Event::Joined { room: "r".into() },
        map(vec![
            (atom("type"), bin("joined")),
            (atom("room"), bin("r")),
        ]),
    );
    assert_eq!(
        read::<Event>(map(vec![
            (atom("type"), atom("left")),
            (atom("room"), bin("r")),
            (atom("reason"), atom("nil")),
        ])),
        Ok(Event::Left {
            room: "r".into(),
            reason: None
        })
    );
}

#[test]
fn bytes_are_what_term_to_binary_gives() {
    // All from term_to_binary(T, [{minor_version, 2}]) on OTP 25 (the
    // default on OTP 26 and later: UTF-8 atoms).
    #[derive(Serialize)]
    struct A {
        a: u8,
    }
    // %{a: 1}
    assert_eq!(
        to_vec(&A { a: 1 }).unwrap(),
        vec![131, 116, 0, 0, 0, 1, 119, 1, 97, 97, 1]
    );

    // %{age: 3, id: 2^128 - 1, name: "Élodie", status: {:away, %{since: 12}},
    //   tags: [:admin, :ops]} (fields in the order term_to_binary sorts
    //   map keys, so the bytes are equal).
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Profile {
        age: u8,
        id: u128,
        name: String,
        status: Status,
        tags: Vec<Atom>,
    }
    let otp = vec![
        131, 116, 0, 0, 0, 5, 119, 3, 97, 103, 101, 97, 3, 119, 2, 105, 100, 110, 16, 0, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 119, 4, 110, 97, 109,
        101, 109, 0, 0, 0, 7, 195, 137, 108, 111, 100, 105, 101, 119, 6, 115, 116, 97, 116, 117,
        115, 104, 2, 119, 4, 97, 119, 97, 121, 116, 0, 0, 0, 1, 119, 5, 115, 105, 110, 99, 101, 97,
        12, 119, 4, 116, 97, 103, 115, 108, 0, 0, 0, 2, 119, 5, 97, 100, 109, 105, 110, 119, 3,
        111, 112, 115, 106,
    ];
    let profile = Profile {
        age: 3,
        id: u128::MAX,
        name: "Élodie".into(),
        status: Status::Away { since: 12 },
        tags: vec![Atom::new("admin"), Atom::new("ops")],
    };
    assert_eq!(to_vec(&profile).unwrap(), otp);
    assert_eq!(from_slice::<Profile>(&otp), Ok(profile));

    // {:ok, [1, 2, 3], nil, 1.5, -2^127, <<0, 255>>, true}: a list of bytes
    // is a STRING_EXT.
    let otp = vec![
        131, 104, 7, 119, 2, 111, 107, 107, 0, 3, 1, 2, 3, 119, 3, 110, 105, 108, 70, 63, 248, 0,
        0, 0, 0, 0, 0, 110, 16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 109, 0, 0, 0,
        2, 0, 255, 119, 4, 116, 114, 117, 101,
    ];
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Ok_ {
        Ok,
    }
    type Row = (
        Ok_,
        Vec<u8>,
        Option<u8>,
        f64,
        i128,
        serde_bytes::ByteBuf,
        bool,
    );
    let row: Row = (
        Ok_::Ok,
        vec![1, 2, 3],
        None,
        1.5,
        i128::MIN,
        serde_bytes::ByteBuf::from(vec![0, 255]),
        true,
    );
    assert_eq!(to_vec(&row).unwrap(), otp);
    assert_eq!(from_slice::<Row>(&otp), Ok(row));
}

#[test]
fn bytes_round_trip_and_decode_errors() {
    let user = User {
        name: "n".into(),
        age: 9,
        status: Status::Pair(-1, i32::MAX),
        nick: Some("✓".into()),
        cache: 0,
    };
    let bytes = to_vec(&user).unwrap();
    assert_eq!(bytes[0], VERSION);
    assert_eq!(from_slice::<User>(&bytes), Ok(user));

    assert_eq!(
        from_slice::<u8>(&[131, 88]),
        Err(Error::Decode(EtfError::Refused("pid")))
    );
    assert_eq!(
        from_slice::<u8>(&[1]).unwrap_err().to_string(),
        "not a valid term: not an ETF term: version byte 1, not 131"
    );
    assert!(std::error::Error::source(&Error::Decode(EtfError::Truncated)).is_some());
}

#[test]
fn error_messages() {
    assert_eq!(Error::NotUtf8.to_string(), "binary is not UTF-8");
    assert_eq!(
        Error::AtomTooLong(300).to_string(),
        "an atom of 300 characters (atoms have at most 255)"
    );
    assert_eq!(
        read_err::<u8>(big(true, &[1; 100])),
        "integer -(an integer of 100 bytes) out of range for u8"
    );
    assert_eq!(
        read_err::<u8>(Term::binary(vec![0; 100])),
        "expected an integer, found a binary of 100 bytes"
    );
    assert_eq!(
        read_err::<u8>(map(vec![(int(1), int(1))])),
        "expected an integer, found a map of 1 entry"
    );
    // Serde's own messages pass through.
    assert_eq!(
        read_err::<(u8,)>(Term::tuple(vec![])),
        "expected a tuple of 1 elements, found 0 elements"
    );
}

#[test]
fn convenience_constructors() {
    assert_eq!(Term::from(true), atom("true"));
    assert_eq!(Term::from("x"), bin("x"));
    assert_eq!(Term::from(String::from("x")), bin("x"));
    assert_eq!(Term::from(5u8), int(5));
    assert_eq!(Term::from(u64::MAX), big(false, &[255; 8]));
    assert_eq!(
        Term::from(-1i128 << 64),
        big(true, &[0, 0, 0, 0, 0, 0, 0, 0, 1])
    );
    assert_eq!(Term::from(vec![int(1)]), Term::list(vec![int(1)]));
    assert_eq!(Term::nil().as_atom(), Some("nil"));
    assert!(Term::atom("undefined").is_nil());
    assert_eq!(bin("x").as_str(), Some("x"));
    assert_eq!(Term::binary(vec![0xff]).as_str(), None);
    assert_eq!(int(3).as_i64(), Some(3));
}
