//! `xmpp-bridge-node`: a bus node (docs/PROTOCOL.md §5) as a program, for
//! shells, scripts and tests: `serve` runs a node with a few methods and
//! prints what it receives as JSON lines; `send`, `call` and `monitor`
//! do one thing against another node and exit with a code that says how
//! it went. `--help` documents it all (the text is `help.txt`).
//!
//! The modules: [`args`] reads the command line, [`json`] and [`convert`]
//! turn JSON text into terms and back, [`bigint`] does the integer work,
//! [`serve`], [`methods`] and [`oneshot`] are the subcommands, [`out`]
//! and [`exit`] what they print and return.

mod args;
mod bigint;
mod convert;
mod exit;
mod json;
mod methods;
mod oneshot;
mod out;
mod serve;
mod session;
mod signals;

use args::{Command, Invocation, Parsed};
use std::io::Write;

async fn run(inv: Invocation) -> i32 {
    match inv.command {
        Command::Serve(opts) => serve::run(&inv.conn, opts).await,
        Command::Send(opts) => oneshot::send(&inv.conn, opts).await,
        Command::Call(opts) => oneshot::call(&inv.conn, opts).await,
        Command::Monitor(opts) => oneshot::monitor(&inv.conn, opts).await,
        Command::Broadcast(opts) => oneshot::broadcast(&inv.conn, opts).await,
        Command::Members(opts) => oneshot::members(&inv.conn, opts).await,
    }
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn main_code() -> i32 {
    let mut argv = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(a) => argv.push(a),
            Err(a) => {
                out::diag(format!("an argument is not UTF-8: {a:?}"));
                return exit::USAGE;
            }
        }
    }
    let env = |name: &str| std::env::var(name).ok();
    match args::parse(argv, &env) {
        Err(e) => {
            out::diag(e);
            eprintln!("Run `{} --help` for the subcommands and flags.", out::NAME);
            exit::USAGE
        }
        Ok(Parsed::Help) => {
            print(args::HELP);
            exit::OK
        }
        Ok(Parsed::Version) => {
            print(&format!("{} {}\n", out::NAME, env!("CARGO_PKG_VERSION")));
            exit::OK
        }
        Ok(Parsed::Run(inv)) => {
            let inv = *inv;
            // One line per panic: the `panic` method panics on purpose.
            std::panic::set_hook(Box::new(|info| {
                out::diag(format!("panic: {info}").replace('\n', " "))
            }));
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => rt.block_on(run(inv)),
                Err(e) => {
                    out::diag(format!("cannot start the runtime: {e}"));
                    exit::FAILURE
                }
            }
        }
    }
}

fn main() {
    std::process::exit(main_code());
}
