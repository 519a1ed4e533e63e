//! The bus for threaded programs: a [`Node`] that owns its tokio runtime,
//! with blocking calls and plain-function handlers.
//!
//! ```no_run
//! use std::time::Duration;
//! use xmpp_bridge::bus::{self, blocking, Event};
//! use xmpp_bridge::etf::Term;
//!
//! let node = blocking::Node::connect(bus::Config::new("alice@example.com", "secret"))
//!     .expect("online");
//! node.serve("echo", |args: bus::Args| Ok(args.get(0).cloned().unwrap_or(Term::nil())));
//! let answer = node.call_term("bob@example.com", "echo", vec![Term::from(1)], Duration::from_secs(5));
//! println!("{answer:?}");
//! while let Some(event) = node.recv() {
//!     if let Event::Message { from, payload } = event {
//!         println!("{from}: {payload:?}");
//!     }
//! }
//! node.close();
//! ```
//!
//! Its methods block the calling thread; they must not be called from
//! inside an async runtime.

use super::{
    Args, CallError, Config, Error, Event, ExitKind, JoinOptions, Member, MonitorRef, NameEvent,
    NameSender, SendOptions, SendRef, Status,
};
use crate::etf::Term;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A bus node with a runtime of its own.
pub struct Node {
    node: super::Node,
    events: Mutex<super::Events>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Node")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a runtime and the node on it; returns once online.
    pub fn connect(config: Config) -> Result<Node, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("xmpp-bridge-bus")
            .enable_all()
            .build()
            .map_err(|e| Error::Connect(crate::connection::ConnError::Internal(e.to_string())))?;
        let (node, events) = runtime.block_on(super::Node::connect(config))?;
        Ok(Node {
            node,
            events: Mutex::new(events),
            runtime: Some(runtime),
        })
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("present until dropped")
    }

    /// The async node underneath (to hand to async code).
    pub fn as_async(&self) -> &super::Node {
        &self.node
    }

    /// The node's full JID.
    pub fn jid(&self) -> String {
        self.node.jid()
    }

    /// The node's incarnation.
    pub fn incarnation(&self) -> &str {
        self.node.incarnation()
    }

    /// See [`super::Node::send_term`].
    pub fn send_term(&self, to: &str, term: Term, options: SendOptions) -> Result<SendRef, Error> {
        self.node.send_term(to, term, options)
    }

    /// See [`super::Node::send`].
    pub fn send<T: Serialize + ?Sized>(
        &self,
        to: &str,
        value: &T,
        options: SendOptions,
    ) -> Result<SendRef, Error> {
        self.node.send(to, value, options)
    }

    /// See [`super::Node::call_term`]; blocks until the answer or the
    /// timeout.
    pub fn call_term(
        &self,
        to: &str,
        method: &str,
        args: Vec<Term>,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        self.rt()
            .block_on(self.node.call_term(to, method, args, timeout))
    }

    /// See [`super::Node::call`].
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        to: &str,
        method: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<R, CallError> {
        self.rt()
            .block_on(self.node.call(to, method, args, timeout))
    }

    /// Serves `method` with a plain function, run on a blocking thread.
    /// At the caller's timeout the answer goes at once, but the function
    /// runs to its end (a thread cannot be stopped).
    pub fn serve<F>(&self, method: impl Into<String>, handler: F)
    where
        F: Fn(Args) -> Result<Term, String> + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        self.node.serve(method, move |args| {
            let handler = handler.clone();
            async move {
                match tokio::task::spawn_blocking(move || handler(args)).await {
                    Ok(r) => r,
                    // The serving task catches it and answers `crashed`.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => Err("the handler was cancelled".into()),
                }
            }
        });
    }

    /// See [`super::Node::monitor`].
    pub fn monitor(&self, jid: &str) -> Result<MonitorRef, Error> {
        self.node.monitor(jid)
    }

    /// See [`super::Node::demonitor`].
    pub fn demonitor(&self, monitor: MonitorRef) -> bool {
        self.node.demonitor(monitor)
    }

    /// See [`super::Node::join`]; blocks until the join is complete.
    pub fn join(&self, group: &str) -> Result<(), Error> {
        self.rt().block_on(self.node.join(group))
    }

    /// See [`super::Node::join_with`].
    pub fn join_with(&self, group: &str, options: JoinOptions) -> Result<(), Error> {
        self.rt().block_on(self.node.join_with(group, options))
    }

    /// See [`super::Node::leave`].
    pub fn leave(&self, group: &str) -> Result<(), Error> {
        self.node.leave(group)
    }

    /// See [`super::Node::broadcast`].
    pub fn broadcast<T: Serialize + ?Sized>(
        &self,
        group: &str,
        value: &T,
    ) -> Result<SendRef, Error> {
        self.node.broadcast(group, value)
    }

    /// See [`super::Node::broadcast_term`].
    pub fn broadcast_term(&self, group: &str, term: Term) -> Result<SendRef, Error> {
        self.node.broadcast_term(group, term)
    }

    /// See [`super::Node::broadcast_json`].
    pub fn broadcast_json(&self, group: &str, value: serde_json::Value) -> Result<SendRef, Error> {
        self.node.broadcast_json(group, value)
    }

    /// See [`super::Node::members`].
    pub fn members(&self, group: &str) -> Vec<Member> {
        self.node.members(group)
    }

    /// See [`super::Node::nodes`].
    pub fn nodes(&self) -> Vec<Member> {
        self.node.nodes()
    }

    /// See [`super::Node::set_status`].
    pub fn set_status(&self, status: Status) -> Result<(), Error> {
        self.node.set_status(status)
    }

    /// See [`super::Node::methods`]; blocks until the answer or the
    /// timeout.
    pub fn methods(&self, jid: &str) -> Result<Vec<String>, Error> {
        self.rt().block_on(self.node.methods(jid))
    }

    /// The next event; `None` once the node is closed.
    pub fn recv(&self) -> Option<Event> {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        self.rt().block_on(events.next())
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        match self
            .rt()
            .block_on(async { tokio::time::timeout(timeout, events.next()).await })
        {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(RecvTimeoutError::Disconnected),
            Err(_) => Err(RecvTimeoutError::Timeout),
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_next()
    }

    /// Registers `name` with this name host (see [`super::Node::register`]).
    pub fn register(&self, name: &str) -> Result<Name, Error> {
        Ok(Name {
            name: self.node.register(name)?,
            runtime: self.rt().handle().clone(),
        })
    }

    /// Stops the node cleanly (see [`super::Node::close`]) and its runtime.
    pub fn close(mut self) {
        self.rt().block_on(self.node.close());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// A registered name with blocking calls (see [`super::Name`]): a
/// thread takes its messages and calls with [`Name::recv`] and answers
/// each [`super::Request`] (its `reply` and `fail` do not block).
/// Dropping it releases the name (`exit='normal'`, or `exit='error'`
/// while the thread panics).
#[derive(Debug)]
pub struct Name {
    name: super::Name,
    runtime: tokio::runtime::Handle,
}

impl Name {
    /// The name's address.
    pub fn jid(&self) -> &str {
        self.name.jid()
    }

    /// This registration's incarnation.
    pub fn incarnation(&self) -> &str {
        self.name.incarnation()
    }

    /// The next message or call; `None` once the host is closed.
    pub fn recv(&mut self) -> Option<NameEvent> {
        self.runtime.block_on(self.name.recv())
    }

    /// The next message or call, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<NameEvent, RecvTimeoutError> {
        let name = &mut self.name;
        match self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, name.recv()).await })
        {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(RecvTimeoutError::Disconnected),
            Err(_) => Err(RecvTimeoutError::Timeout),
        }
    }

    /// The next message or call if one is waiting.
    pub fn try_recv(&mut self) -> Option<NameEvent> {
        self.name.try_recv()
    }

    /// See [`super::Name::sender`].
    pub fn sender(&self) -> NameSender {
        self.name.sender()
    }

    /// See [`super::Name::send`].
    pub fn send<T: Serialize + ?Sized>(
        &self,
        to: &str,
        value: &T,
        options: SendOptions,
    ) -> Result<SendRef, Error> {
        self.name.send(to, value, options)
    }

    /// See [`super::Name::send_term`].
    pub fn send_term(&self, to: &str, term: Term, options: SendOptions) -> Result<SendRef, Error> {
        self.name.send_term(to, term, options)
    }

    /// See [`super::Name::call`]; blocks until the answer or the timeout.
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        to: &str,
        method: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<R, CallError> {
        self.runtime
            .block_on(self.name.call(to, method, args, timeout))
    }

    /// See [`super::Name::call_term`]; blocks until the answer or the
    /// timeout.
    pub fn call_term(
        &self,
        to: &str,
        method: &str,
        args: Vec<Term>,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        self.runtime
            .block_on(self.name.call_term(to, method, args, timeout))
    }

    /// Releases the name, telling its watchers `exit`.
    pub fn release(self, exit: ExitKind) {
        self.name.release(exit);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Not closed: the session ends abruptly with the runtime.
            rt.shutdown_background();
        }
    }
}
