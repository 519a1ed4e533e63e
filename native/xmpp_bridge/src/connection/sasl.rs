//! SASL for XMPP (RFC 6120 §6): SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802,
//! RFC 7677) without channel binding, and PLAIN (RFC 4616).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The mechanisms we speak, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    ScramSha256,
    ScramSha1,
    Plain,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
        }
    }

    /// The best mechanism the server offers; PLAIN only when `plain_ok`
    /// (over TLS, or to a loopback address).
    pub fn choose(offered: &[String], plain_ok: bool) -> Option<Mechanism> {
        [
            Mechanism::ScramSha256,
            Mechanism::ScramSha1,
            Mechanism::Plain,
        ]
        .into_iter()
        .filter(|m| *m != Mechanism::Plain || plain_ok)
        .find(|m| offered.iter().any(|o| o == m.name()))
    }
}

/// `authzid NUL authcid NUL password`, base64.
pub fn plain(user: &str, password: &str) -> String {
    B64.encode(format!("\0{user}\0{password}"))
}

/// The most PBKDF2 rounds a server may ask for in its SCRAM challenge
/// (servers use 4096 to a few hundred thousand; each round costs about a
/// microsecond, so this bounds the work a lying server can make a client do
/// to about a second). A challenge above it fails authentication.
pub const MAX_SCRAM_ITERATIONS: u32 = 1_000_000;

/// A SCRAM exchange in progress.
pub struct Scram {
    sha256: bool,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

/// RFC 5802 §5.1: `=` and `,` in a user name are escaped.
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn hmac(sha256: bool, key: &[u8], data: &[u8]) -> Vec<u8> {
    if sha256 {
        let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("any key length");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    } else {
        let mut m = <Hmac<Sha1>>::new_from_slice(key).expect("any key length");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
}

fn hash(sha256: bool, data: &[u8]) -> Vec<u8> {
    if sha256 {
        Sha256::digest(data).to_vec()
    } else {
        Sha1::digest(data).to_vec()
    }
}

impl Scram {
    /// Starts an exchange; returns it and the client-first message (base64).
    pub fn start(mech: Mechanism, user: &str, password: &str, nonce: String) -> (Scram, String) {
        let client_first_bare = format!("n={},r={nonce}", saslname(user));
        let first = format!("n,,{client_first_bare}");
        let scram = Scram {
            sha256: mech == Mechanism::ScramSha256,
            password: password.to_owned(),
            client_first_bare,
            nonce,
            server_signature: Vec::new(),
        };
        (scram, B64.encode(first))
    }

    /// Answers the server-first challenge (base64) with client-final (base64).
    pub fn respond(&mut self, challenge_b64: &str) -> Result<String, String> {
        let challenge = B64
            .decode(challenge_b64.trim())
            .map_err(|_| "challenge is not base64".to_owned())?;
        let server_first =
            String::from_utf8(challenge).map_err(|_| "challenge is not UTF-8".to_owned())?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in server_first.split(',') {
            match part.split_once('=') {
                Some(("r", v)) => nonce = Some(v.to_owned()),
                Some(("s", v)) => salt = B64.decode(v).ok(),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (nonce, salt, iterations) = match (nonce, salt, iterations) {
            (Some(n), Some(s), Some(i)) if n.starts_with(&self.nonce) && i > 0 => (n, s, i),
            _ => return Err(format!("bad server-first message {server_first:?}")),
        };
        if iterations > MAX_SCRAM_ITERATIONS {
            return Err(format!(
                "the server asks for {iterations} SCRAM iterations, more than the maximum of {MAX_SCRAM_ITERATIONS}"
            ));
        }
        let mut salted = vec![0u8; if self.sha256 { 32 } else { 20 }];
        if self.sha256 {
            pbkdf2::pbkdf2::<Hmac<Sha256>>(self.password.as_bytes(), &salt, iterations, &mut salted)
        } else {
            pbkdf2::pbkdf2::<Hmac<Sha1>>(self.password.as_bytes(), &salt, iterations, &mut salted)
        }
        .map_err(|_| "key derivation failed".to_owned())?;
        let client_key = hmac(self.sha256, &salted, b"Client Key");
        let stored_key = hash(self.sha256, &client_key);
        // "biws" is base64 of the GS2 header "n,,".
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac(self.sha256, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(self.sha256, &salted, b"Server Key");
        self.server_signature = hmac(self.sha256, &server_key, auth_message.as_bytes());
        Ok(B64.encode(format!("{without_proof},p={}", B64.encode(proof))))
    }

    /// Checks the server's signature in the success message (base64).
    pub fn verify(&self, success_b64: &str) -> Result<(), String> {
        let data = B64
            .decode(success_b64.trim())
            .map_err(|_| "success data is not base64".to_owned())?;
        let text = String::from_utf8_lossy(&data);
        let v = text
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or_else(|| "no server signature".to_owned())?;
        if v == self.server_signature {
            Ok(())
        } else {
            Err("the server's SCRAM signature is wrong".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 5802 §5 test vector (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256).
    #[test]
    fn rfc_vectors() {
        let (mut s, first) = Scram::start(
            Mechanism::ScramSha1,
            "user",
            "pencil",
            "fyko+d2lbbFgONRv9qkxdawL".into(),
        );
        assert_eq!(
            B64.decode(first).unwrap(),
            b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
        );
        let server_first = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
        let fin = s.respond(&B64.encode(server_first)).unwrap();
        assert_eq!(
            String::from_utf8(B64.decode(fin).unwrap()).unwrap(),
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(s
            .verify(&B64.encode("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="))
            .is_ok());
        assert!(s.verify(&B64.encode("v=AAAA")).is_err());

        let (mut s, _) = Scram::start(
            Mechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = s.respond(&B64.encode(server_first)).unwrap();
        assert_eq!(
            String::from_utf8(B64.decode(fin).unwrap()).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert!(s
            .verify(&B64.encode("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
            .is_ok());
    }

    #[test]
    fn an_iteration_count_above_the_maximum_is_refused_before_any_work() {
        let (mut s, _) = Scram::start(Mechanism::ScramSha1, "user", "pencil", "abc".into());
        let bomb = format!("r=abcdef,s={},i=4294967295", B64.encode("salt"));
        // (Were the count obeyed, this test would run for an hour.)
        let e = s.respond(&B64.encode(bomb)).unwrap_err();
        assert!(e.contains("4294967295") && e.contains("1000000"), "{e}");
        // One above the maximum is refused too; the usual counts are not.
        let (mut s, _) = Scram::start(Mechanism::ScramSha256, "user", "pencil", "abc".into());
        let above = format!(
            "r=abcdef,s={},i={}",
            B64.encode("salt"),
            MAX_SCRAM_ITERATIONS + 1
        );
        assert!(s.respond(&B64.encode(above)).is_err());
        let (mut s, _) = Scram::start(Mechanism::ScramSha256, "user", "pencil", "abc".into());
        let usual = format!("r=abcdef,s={},i=4096", B64.encode("salt"));
        assert!(s.respond(&B64.encode(usual)).is_ok());
    }

    #[test]
    fn plain_only_when_allowed() {
        let offered = vec!["PLAIN".to_owned()];
        assert_eq!(Mechanism::choose(&offered, false), None);
        assert_eq!(Mechanism::choose(&offered, true), Some(Mechanism::Plain));
        let offered = vec![
            "PLAIN".to_owned(),
            "SCRAM-SHA-1".to_owned(),
            "SCRAM-SHA-256".to_owned(),
        ];
        assert_eq!(
            Mechanism::choose(&offered, true),
            Some(Mechanism::ScramSha256)
        );
    }
}
