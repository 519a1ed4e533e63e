//! TCP, plain or under rustls, behind one type.

use super::ConnError;
use rustls::pki_types::ServerName;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Nothing: stands in while the socket is moved into TLS.
    Detached,
    /// One end of an in-memory pipe: the session's unit tests play the
    /// server on the other end, with no socket.
    #[cfg(test)]
    Memory(tokio::io::DuplexStream),
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "socket moved")
}

impl Transport {
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Wraps a plain connection in TLS, verifying the server's certificate
    /// for `name` against `ca_file` (PEM) or the bundled web roots.
    pub async fn upgrade(self, name: &str, ca_file: Option<&str>) -> Result<Transport, ConnError> {
        let tcp = match self {
            Transport::Plain(tcp) => tcp,
            tls @ Transport::Tls(_) => return Ok(tls),
            Transport::Detached => return Err(ConnError::Io(detached().to_string())),
            #[cfg(test)]
            Transport::Memory(_) => {
                return Err(ConnError::Tls("an in-memory pipe has no TLS".into()))
            }
        };
        let config = tls_config(ca_file)?;
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| ConnError::Config(format!("{name:?} is not a valid TLS server name")))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .map_err(handshake_error)?;
        Ok(Transport::Tls(Box::new(tls)))
    }
}

/// A failed handshake, named: a server that answers with something that is
/// not TLS at all (plain XML after `<proceed/>`, say) is told apart from a
/// TLS peer we refuse (a certificate from an unknown CA, ...).
fn handshake_error(e: io::Error) -> ConnError {
    let not_tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidMessage(_)));
    if not_tls {
        ConnError::Tls(format!("what the server sent is not TLS ({e})"))
    } else {
        ConnError::Tls(e.to_string())
    }
}

fn tls_config(ca_file: Option<&str>) -> Result<rustls::ClientConfig, ConnError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| ConnError::Config(format!("cannot read ca_file {path}: {e}")))?;
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert =
                    cert.map_err(|e| ConnError::Config(format!("bad PEM in ca_file {path}: {e}")))?;
                roots.add(cert).map_err(|e| {
                    ConnError::Config(format!("bad certificate in ca_file {path}: {e}"))
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(ConnError::Config(format!(
                    "no certificate in ca_file {path}"
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(test)]
            Transport::Memory(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, data),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
            #[cfg(test)]
            Transport::Memory(s) => Pin::new(s).poll_write(cx, data),
            Transport::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(test)]
            Transport::Memory(s) => Pin::new(s).poll_flush(cx),
            Transport::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(test)]
            Transport::Memory(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Detached => Poll::Ready(Ok(())),
        }
    }
}
