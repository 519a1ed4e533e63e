//! The Rust player of the game demo (`make demo-game`, demos/go_game.exs):
//! white in a game of Go on a 9x9 board against an Elixir player, over the
//! bus alone. It has the rules of its own (the `go` module below, the same
//! rules as demos/go_game/rules.exs) and checks every move it is sent.
//!
//! `cargo run --release -p xmpp_bridge --example go_player -- --jid J
//! --opponent J --port N [--host 127.0.0.1] [--group go-game] [--seed N]
//! [--probe-at N]`, the password in `GO_PLAYER_PASSWORD`.
//!
//! - serves `move(game, n, color, move, hash)`: move `n` of the game (a
//!   point such as `"D4"`, or `"pass"`) with the position hash after it;
//!   answers `{:ok, n, hash}` once the move is checked and applied, or
//!   fails the call (a `crashed` RPC error) with a sentence saying why:
//!   out of sequence, not that colour's turn, occupied, suicide, ko, or a
//!   position that differs from its own;
//! - on its turn calls the opponent's `move` the same way; with
//!   `--probe-at N`, at its first turn from move N on it first sends an
//!   illegal move, which the opponent must refuse;
//! - serves `state()`: its view of the game (moves, hash, board, captures,
//!   area, moves replayed from messages, refused probes);
//! - messages `{:resume, game, total, hash}` then `{:move, game, n, color,
//!   move, hash}` (stored by the server while it was away): it starts from
//!   an empty board, checks and applies the moves in order, compares the
//!   hash after the last one, and plays on. It keeps nothing on disk: a
//!   restarted player knows only what it is sent;
//! - publishes its status (text `to move: black, move 24`, a term with the
//!   move number, captures and area score) and joins the group (the
//!   spectators' room); leaves and exits 0 on a broadcast `{:game_over,
//!   result}` or at the end of stdin.
//!
//! The session runs without stream management: a killed player's session
//! ends when its socket closes, so what is sent to it from then on goes to
//! the server's offline storage at once (with resumption the server would
//! hold the dead session, and its queue, for 300 s).
//!
//! It prints one JSON line per event on stdout (logs only).
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use xmpp_bridge::bus::{self, Args, CallError, Event, Payload, Status};
use xmpp_bridge::connection::TlsMode;
use xmpp_bridge::etf::{self, Atom, Term};

/// Go on a 9x9 board: captures, no suicide, simple ko, two passes end the
/// game, area scoring with komi 7.5.
mod go {
    pub const SIZE: usize = 9;
    pub const POINTS: usize = SIZE * SIZE;
    const COLS: &[u8; 9] = b"ABCDEFGHJ";
    const STARS: [usize; 5] = [20, 24, 40, 56, 60];
    pub const KOMI: f64 = 7.5;
    const MAX_MOVES: u32 = 300;

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum Color {
        Black,
        White,
    }

    impl Color {
        pub fn other(self) -> Color {
            match self {
                Color::Black => Color::White,
                Color::White => Color::Black,
            }
        }

        pub fn name(self) -> &'static str {
            match self {
                Color::Black => "black",
                Color::White => "white",
            }
        }

        pub fn parse(s: &str) -> Result<Color, String> {
            match s {
                "black" => Ok(Color::Black),
                "white" => Ok(Color::White),
                other => Err(format!("not a colour: {other:?}")),
            }
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum Last {
        Nothing,
        Pass,
        Point(usize),
    }

    #[derive(Clone, Debug)]
    pub struct Game {
        pub board: [Option<Color>; POINTS],
        pub to_move: Color,
        pub n: u32,
        /// Stones captured by black, by white.
        pub captures: (u32, u32),
        pub ko: Option<usize>,
        pub passes: u32,
        pub last: Last,
        pub over: bool,
    }

    /// A stone placed: the board after it, what it took, the ko point it
    /// makes and its group's liberties.
    struct Placed {
        board: [Option<Color>; POINTS],
        captured: u32,
        ko: Option<usize>,
        libs: usize,
    }

    /// `"D4"` -> its index (A1 = 0, J9 = 80); `None` for `"pass"`.
    pub fn parse(mv: &str) -> Result<Option<usize>, String> {
        if mv == "pass" {
            return Ok(None);
        }
        let bad = || format!("not a point: {mv:?}");
        let mut chars = mv.chars();
        let col = chars.next().ok_or_else(bad)?;
        let c = COLS
            .iter()
            .position(|&b| char::from(b) == col)
            .ok_or_else(bad)?;
        let r: usize = chars.as_str().parse().map_err(|_| bad())?;
        if !(1..=SIZE).contains(&r) {
            return Err(bad());
        }
        Ok(Some((r - 1) * SIZE + c))
    }

    pub fn coord(i: usize) -> String {
        format!("{}{}", char::from(COLS[i % SIZE]), i / SIZE + 1)
    }

    fn neighbours(i: usize) -> impl Iterator<Item = usize> {
        let (r, c) = (i / SIZE, i % SIZE);
        [
            (c > 0).then(|| i - 1),
            (c < SIZE - 1).then(|| i + 1),
            (r > 0).then(|| i - SIZE),
            (r < SIZE - 1).then(|| i + SIZE),
        ]
        .into_iter()
        .flatten()
    }

    /// The stones of the group at `i` and how many liberties it has.
    fn group(board: &[Option<Color>; POINTS], i: usize) -> (Vec<usize>, usize) {
        let color = board[i];
        let mut seen = [false; POINTS];
        let mut libs = [false; POINTS];
        let mut stones = vec![i];
        seen[i] = true;
        let mut k = 0;
        while k < stones.len() {
            for n in neighbours(stones[k]) {
                match board[n] {
                    None => libs[n] = true,
                    c if c == color && !seen[n] => {
                        seen[n] = true;
                        stones.push(n);
                    }
                    _ => {}
                }
            }
            k += 1;
        }
        (stones, libs.iter().filter(|&&l| l).count())
    }

    impl Game {
        pub fn new() -> Game {
            Game {
                board: [None; POINTS],
                to_move: Color::Black,
                n: 0,
                captures: (0, 0),
                ko: None,
                passes: 0,
                last: Last::Nothing,
                over: false,
            }
        }

        fn try_place(&self, color: Color, i: usize) -> Result<Placed, String> {
            if self.board[i].is_some() {
                return Err(format!("{} is occupied", coord(i)));
            }
            if self.ko == Some(i) {
                return Err(format!(
                    "{} takes the ko back at once (simple ko)",
                    coord(i)
                ));
            }
            let mut board = self.board;
            board[i] = Some(color);
            let mut dead = [false; POINTS];
            for n in neighbours(i) {
                if board[n] == Some(color.other()) {
                    let (stones, libs) = group(&board, n);
                    if libs == 0 {
                        for s in stones {
                            dead[s] = true;
                        }
                    }
                }
            }
            let mut captured = 0;
            let mut taken = None;
            for (s, d) in dead.iter().enumerate() {
                if *d {
                    board[s] = None;
                    captured += 1;
                    taken = Some(s);
                }
            }
            let (own, libs) = group(&board, i);
            if libs == 0 {
                return Err(format!("{} is suicide", coord(i)));
            }
            let ko = if captured == 1 && own.len() == 1 && libs == 1 {
                taken
            } else {
                None
            };
            Ok(Placed {
                board,
                captured,
                ko,
                libs,
            })
        }

        /// Plays `mv` for `color`; the stones it captured, or why it is illegal.
        pub fn play(&mut self, color: Color, mv: &str) -> Result<u32, String> {
            if self.over {
                return Err("the game is over".into());
            }
            if color != self.to_move {
                return Err(format!(
                    "it is {}'s turn, not {}'s",
                    self.to_move.name(),
                    color.name()
                ));
            }
            let captured = match parse(mv)? {
                None => {
                    self.passes += 1;
                    self.over = self.passes >= 2;
                    self.ko = None;
                    self.last = Last::Pass;
                    0
                }
                Some(i) => {
                    let p = self.try_place(color, i)?;
                    self.board = p.board;
                    self.ko = p.ko;
                    self.passes = 0;
                    self.last = Last::Point(i);
                    match color {
                        Color::Black => self.captures.0 += p.captured,
                        Color::White => self.captures.1 += p.captured,
                    }
                    p.captured
                }
            };
            self.to_move = color.other();
            self.n += 1;
            Ok(captured)
        }

        fn own_eye(&self, i: usize) -> bool {
            neighbours(i).all(|n| self.board[n] == Some(self.to_move))
        }

        /// The policy: a random legal move, a capture when there is one,
        /// never filling its own eye nor putting its own group in atari
        /// without capturing; "pass" when nothing is left. `uniform(n)` is
        /// a random integer in 1..=n.
        pub fn choose(&self, mut uniform: impl FnMut(usize) -> usize) -> String {
            let mut candidates = Vec::new();
            for i in 0..POINTS {
                if self.board[i].is_some() || self.own_eye(i) {
                    continue;
                }
                if let Ok(p) = self.try_place(self.to_move, i) {
                    if p.captured > 0 || p.libs > 1 {
                        candidates.push((i, p.captured));
                    }
                }
            }
            let captures: Vec<_> = candidates.iter().filter(|c| c.1 > 0).copied().collect();
            let pool = if captures.is_empty() {
                candidates
            } else {
                captures
            };
            if pool.is_empty() || self.n >= MAX_MOVES {
                return "pass".into();
            }
            coord(pool[uniform(pool.len()) - 1].0)
        }

        /// A move the player to move may not make: the ko point, else a
        /// suicide, else an occupied point.
        pub fn illegal(&self) -> Option<String> {
            let suicide = (0..POINTS)
                .find(|&i| self.board[i].is_none() && self.try_place(self.to_move, i).is_err());
            let occupied = (0..POINTS).find(|&i| self.board[i].is_some());
            self.ko.or(suicide).or(occupied).map(coord)
        }

        pub fn position(&self) -> String {
            self.board
                .iter()
                .map(|p| match p {
                    None => '.',
                    Some(Color::Black) => 'X',
                    Some(Color::White) => 'O',
                })
                .collect()
        }

        /// FNV-1a, 64 bits, of the position, as 16 hex digits.
        pub fn hash(&self) -> String {
            let h = self
                .position()
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
            format!("{h:016x}")
        }

        /// Area scoring: (black, white).
        pub fn area(&self) -> (u32, u32) {
            let (mut b, mut w) = (0, 0);
            let mut seen = [false; POINTS];
            for i in 0..POINTS {
                match self.board[i] {
                    Some(Color::Black) => b += 1,
                    Some(Color::White) => w += 1,
                    None if !seen[i] => {
                        let mut region = vec![i];
                        seen[i] = true;
                        let (mut by_b, mut by_w) = (false, false);
                        let mut k = 0;
                        while k < region.len() {
                            for n in neighbours(region[k]) {
                                match self.board[n] {
                                    None if !seen[n] => {
                                        seen[n] = true;
                                        region.push(n);
                                    }
                                    None => {}
                                    Some(Color::Black) => by_b = true,
                                    Some(Color::White) => by_w = true,
                                }
                            }
                            k += 1;
                        }
                        let size = u32::try_from(region.len()).unwrap_or(0);
                        match (by_b, by_w) {
                            (true, false) => b += size,
                            (false, true) => w += size,
                            _ => {}
                        }
                    }
                    None => {}
                }
            }
            (b, w)
        }

        /// "B+3.5" or "W+0.5".
        pub fn result(&self) -> String {
            let (b, w) = self.area();
            let diff = f64::from(b) - (f64::from(w) + KOMI);
            if diff > 0.0 {
                format!("B+{diff:.1}")
            } else {
                format!("W+{:.1}", -diff)
            }
        }

        /// The board as text, character for character what the Elixir
        /// side draws: coordinates on four sides, X black, O white, + the
        /// star points, the last stone in parentheses.
        pub fn grid(&self) -> String {
            let header: String =
                std::iter::once("    ".to_string())
                    .chain(COLS.iter().enumerate().map(|(k, &c)| {
                        format!("{}{}", if k > 0 { " " } else { "" }, char::from(c))
                    }))
                    .collect();
            let last = match self.last {
                Last::Point(i) => Some(i),
                _ => None,
            };
            let mut lines = vec![header.clone()];
            for r in (0..SIZE).rev() {
                let mut line = format!("{:>2} ", r + 1);
                for c in 0..SIZE {
                    let i = r * SIZE + c;
                    line.push(if last == Some(i) {
                        '('
                    } else if c > 0 && last == Some(i - 1) {
                        ')'
                    } else {
                        ' '
                    });
                    line.push(match self.board[i] {
                        Some(Color::Black) => 'X',
                        Some(Color::White) => 'O',
                        None if STARS.contains(&i) => '+',
                        None => '.',
                    });
                }
                line.push(if last == Some(r * SIZE + SIZE - 1) {
                    ')'
                } else {
                    ' '
                });
                line.push_str(&(r + 1).to_string());
                lines.push(line);
            }
            lines.push(header);
            lines.join("\n")
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn play_all(moves: &[&str]) -> Game {
            let mut g = Game::new();
            for m in moves {
                let c = g.to_move;
                g.play(c, m).unwrap();
            }
            g
        }

        #[test]
        fn capture_and_simple_ko() {
            // White's B2 is taken by black's C2, which white may not take back at once.
            let mut g = play_all(&["B1", "C1", "A2", "D2", "B3", "C3", "pass", "B2"]);
            assert_eq!(g.play(Color::Black, "C2"), Ok(1));
            assert_eq!(g.ko, parse("B2").unwrap());
            assert_eq!(
                g.play(Color::White, "B2"),
                Err("B2 takes the ko back at once (simple ko)".into())
            );
            assert_eq!(g.illegal().as_deref(), Some("B2"));
            // Elsewhere first, then the ko may be taken.
            g.play(Color::White, "J9").unwrap();
            g.play(Color::Black, "J1").unwrap();
            assert_eq!(g.play(Color::White, "B2"), Ok(1));
        }

        #[test]
        fn suicide_occupied_turn_and_points() {
            let mut g = play_all(&["B1", "pass", "A2", "pass"]);
            assert_eq!(
                g.play(Color::White, "A1"),
                Err("it is black's turn, not white's".into())
            );
            g.play(Color::Black, "J9").unwrap();
            assert_eq!(g.play(Color::White, "A1"), Err("A1 is suicide".into()));
            assert_eq!(g.play(Color::White, "B1"), Err("B1 is occupied".into()));
            assert_eq!(
                g.play(Color::White, "I5"),
                Err("not a point: \"I5\"".into())
            );
            assert_eq!(
                g.play(Color::White, "A10"),
                Err("not a point: \"A10\"".into())
            );
        }

        #[test]
        fn two_passes_end_and_area() {
            let mut g = play_all(&["E5", "pass"]);
            assert!(!g.over);
            g.play(Color::Black, "pass").unwrap();
            assert!(g.over);
            assert_eq!(g.area(), (81, 0));
            assert_eq!(g.result(), "B+73.5");
            assert_eq!(g.play(Color::White, "A1"), Err("the game is over".into()));
        }

        #[test]
        fn hash_is_fnv1a_of_the_position() {
            // FNV-1a 64 of 81 dots, as the Elixir side computes it.
            let g = Game::new();
            assert_eq!(g.position(), ".".repeat(81));
            assert_eq!(g.hash().len(), 16);
            let mut h = 0xcbf2_9ce4_8422_2325_u64;
            for _ in 0..81 {
                h = (h ^ u64::from(b'.')).wrapping_mul(0x0100_0000_01b3);
            }
            assert_eq!(g.hash(), format!("{h:016x}"));
        }

        #[test]
        fn grid_marks_the_last_stone() {
            let g = play_all(&["A1", "J1"]);
            let grid = g.grid();
            assert!(grid.starts_with("    A B C D E F G H J\n 9  . . . . . . . . . 9\n"));
            assert!(grid.contains("\n 1  X . . . . . . .(O)1\n"), "{grid}");
            assert!(grid.contains("\n 5  . . . . + . . . . 5\n"), "{grid}");
        }
    }
}

use go::{Color, Game};

fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// A small deterministic generator (splitmix64): the same seed, the same
/// game, run after run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0) + 1
    }
}

/// What the served methods hand to the game loop.
enum Incoming {
    Move {
        game: String,
        n: i64,
        color: String,
        mv: String,
        hash: String,
        reply: oneshot::Sender<Result<Term, String>>,
    },
    State(oneshot::Sender<Result<Term, String>>),
}

/// The player's status term: `%{color: "white", move: 23, ...}`.
#[derive(Serialize)]
struct Published {
    lang: &'static str,
    color: &'static str,
    #[serde(rename = "move")]
    n: u32,
    to_move: &'static str,
    over: bool,
    captures_black: u32,
    captures_white: u32,
    area_black: u32,
    area_white: u32,
    replayed: u32,
}

/// The answer to `state()`.
#[derive(Serialize)]
struct View {
    moves: u32,
    hash: String,
    grid: String,
    over: bool,
    captures_black: u32,
    captures_white: u32,
    area_black: u32,
    area_white: u32,
    result: String,
    replayed: u32,
    by_rpc: u32,
    probes: Vec<String>,
}

struct Player {
    node: bus::Node,
    me: Color,
    opponent: String,
    game: Game,
    game_id: Option<String>,
    /// While rebuilding from queued messages: how many moves, and the hash after the last.
    replay: Option<(u32, String)>,
    replayed: u32,
    by_rpc: u32,
    probe_at: u32,
    probed: bool,
    probes: Vec<String>,
    rng: Rng,
}

impl Player {
    fn publish(&self) {
        let (ab, aw) = self.game.area();
        let g = &self.game;
        let text = if g.over {
            format!("game over after {} moves: {}", g.n, g.result())
        } else {
            format!("to move: {}, move {}", g.to_move.name(), g.n + 1)
        };
        let term = Published {
            lang: "rust",
            color: self.me.name(),
            n: g.n,
            to_move: g.to_move.name(),
            over: g.over,
            captures_black: g.captures.0,
            captures_white: g.captures.1,
            area_black: ab,
            area_white: aw,
            replayed: self.replayed,
        };
        let _ = self.node.set_status(Status {
            show: None,
            text: Some(text),
            payload: etf::to_term(&term).ok().map(Payload::Term),
        });
    }

    /// Checks and applies move `n`: the same checks for a call and for a
    /// move replayed from a message (`replay`: the moves of both colours).
    fn accept(
        &mut self,
        replay: bool,
        game: &str,
        n: i64,
        color: &str,
        mv: &str,
        hash: &str,
    ) -> Result<u32, String> {
        if let Some(id) = &self.game_id {
            if id != game {
                return Err(format!(
                    "move {n}: not this game ({game:?}, playing {id:?})"
                ));
            }
        }
        let expected = i64::from(self.game.n) + 1;
        if n != expected {
            return Err(format!(
                "move {n} out of sequence: expected move {expected}"
            ));
        }
        let c = Color::parse(color)?;
        if c == self.me && !replay {
            return Err(format!("move {n}: {color} is my colour"));
        }
        let mut next = self.game.clone();
        let captured = next
            .play(c, mv)
            .map_err(|why| format!("illegal move {n} ({color} {mv}): {why}"))?;
        if next.hash() != hash {
            return Err(format!(
                "move {n} ({color} {mv}): positions differ, mine {} yours {hash}",
                next.hash()
            ));
        }
        self.game_id.get_or_insert_with(|| game.to_owned());
        self.game = next;
        Ok(captured)
    }

    fn view(&self) -> View {
        let (ab, aw) = self.game.area();
        View {
            moves: self.game.n,
            hash: self.game.hash(),
            grid: self.game.grid(),
            over: self.game.over,
            captures_black: self.game.captures.0,
            captures_white: self.game.captures.1,
            area_black: ab,
            area_white: aw,
            result: self.game.result(),
            replayed: self.replayed,
            by_rpc: self.by_rpc,
            probes: self.probes.clone(),
        }
    }

    async fn call_move(&self, n: u32, mv: &str, hash: &str) -> Result<Term, CallError> {
        let game = self.game_id.clone().unwrap_or_default();
        let args = (game, n, self.me.name(), mv, hash);
        self.node
            .call(&self.opponent, "move", &args, Duration::from_secs(5))
            .await
    }

    /// Plays while it is this player's turn (once: then it is the opponent's).
    async fn play_turn(&mut self) -> Result<(), String> {
        if self.game.over || self.game.to_move != self.me || self.replay.is_some() {
            return Ok(());
        }
        let n = self.game.n + 1;
        if self.probe_at > 0 && n >= self.probe_at && !self.probed {
            self.probed = true;
            if let Some(bad) = self.game.illegal() {
                // The position hash as if the move had been a pass: only
                // the move itself is wrong.
                match self.call_move(n, &bad, &self.game.hash()).await {
                    Err(CallError::Crashed(text)) => {
                        // The first line of what the Elixir handler raised,
                        // without the exception's name.
                        let first = text.lines().next().unwrap_or("");
                        let why = match first.strip_prefix("** (") {
                            Some(rest) => rest.split_once(") ").map_or(first, |(_, w)| w),
                            None => first,
                        }
                        .to_owned();
                        emit(
                            json!({"event": "probe_refused", "move": n, "point": bad, "error": why}),
                        );
                        self.probes.push(format!("{bad}: {why}"));
                    }
                    Ok(t) => {
                        emit(
                            json!({"event": "probe_accepted", "move": n, "point": bad, "answer": format!("{t:?}")}),
                        );
                        return Err(format!("the opponent accepted the illegal move {n} {bad}"));
                    }
                    Err(e) => return Err(format!("probe {n} {bad}: {e}")),
                }
            }
        }
        let rng = &mut self.rng;
        let mv = self.game.choose(|k| rng.uniform(k));
        let mut next = self.game.clone();
        let captured = next.play(self.me, &mv)?;
        let hash = next.hash();
        let answer = self
            .call_move(n, &mv, &hash)
            .await
            .map_err(|e| format!("move {n} {mv}: {e}"))?;
        let ok = Term::tuple(vec![
            Term::atom("ok"),
            Term::from(i64::from(n)),
            Term::binary(hash.as_str()),
        ]);
        if answer != ok {
            return Err(format!("move {n} {mv}: unexpected answer {answer:?}"));
        }
        self.game = next;
        emit(json!({"event": "moved", "move": n, "point": mv, "captured": captured, "hash": hash}));
        self.publish();
        Ok(())
    }

    /// A term sent to the player (from the server's offline storage, after a restart).
    async fn on_message(&mut self, from: &str, term: Term) -> Result<(), String> {
        type Resume = (Atom, String, u32, String);
        type Queued = (Atom, String, i64, String, String, String);
        let tag = match &term {
            Term::Tuple(items) => items.first().and_then(Term::as_atom).map(str::to_owned),
            _ => None,
        };
        match tag.as_deref() {
            Some("resume") => {
                let (_, game, total, hash): Resume =
                    etf::from_term(term).map_err(|e| e.to_string())?;
                emit(
                    json!({"event": "resume", "from": from, "game": game, "moves": total, "had": self.game.n}),
                );
                // Whatever it had (nothing, after a restart), it rebuilds from what follows.
                self.game = Game::new();
                self.game_id = Some(game);
                self.replay = Some((total, hash));
                Ok(())
            }
            Some("move") => {
                let (_, game, n, color, mv, hash): Queued =
                    etf::from_term(term).map_err(|e| e.to_string())?;
                self.accept(true, &game, n, &color, &mv, &hash)?;
                self.replayed += 1;
                if let Some((total, end_hash)) = self.replay.clone() {
                    if self.game.n == total {
                        if self.game.hash() != end_hash {
                            return Err(format!(
                                "after the replay: position {} but {end_hash} expected",
                                self.game.hash()
                            ));
                        }
                        self.replay = None;
                        emit(json!({"event": "replayed", "moves": total, "hash": end_hash}));
                        self.publish();
                        return self.play_turn().await;
                    }
                }
                Ok(())
            }
            _ => {
                emit(
                    json!({"event": "unknown_message", "from": from, "term": format!("{term:?}")}),
                );
                Ok(())
            }
        }
    }
}

struct Flags {
    jid: String,
    opponent: String,
    host: String,
    port: u16,
    group: String,
    seed: u64,
    probe_at: u32,
}

fn flags() -> Flags {
    let mut f = Flags {
        jid: String::new(),
        opponent: String::new(),
        host: "127.0.0.1".into(),
        port: 5222,
        group: "go-game".into(),
        seed: 1,
        probe_at: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--jid" => f.jid = value,
            "--opponent" => f.opponent = value,
            "--host" => f.host = value,
            "--port" => f.port = value.parse().unwrap_or_else(|_| usage("bad --port")),
            "--group" => f.group = value,
            "--seed" => f.seed = value.parse().unwrap_or_else(|_| usage("bad --seed")),
            "--probe-at" => f.probe_at = value.parse().unwrap_or_else(|_| usage("bad --probe-at")),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if f.jid.is_empty() || f.opponent.is_empty() {
        usage("--jid and --opponent are required");
    }
    f
}

fn usage(why: &str) -> ! {
    eprintln!("go_player: {why}");
    eprintln!("usage: go_player --jid J --opponent J --port N [--host H] [--group go-game] [--seed N] [--probe-at N] (password in GO_PLAYER_PASSWORD)");
    std::process::exit(2)
}

/// Hands a served call to the game loop and waits for its verdict.
async fn ask(
    tx: &mpsc::UnboundedSender<Incoming>,
    make: impl FnOnce(oneshot::Sender<Result<Term, String>>) -> Incoming,
) -> Result<Term, String> {
    let (reply, verdict) = oneshot::channel();
    tx.send(make(reply))
        .map_err(|_| "the player is stopping".to_owned())?;
    verdict
        .await
        .map_err(|_| "the player is stopping".to_owned())?
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = flags();
    let password = std::env::var("GO_PLAYER_PASSWORD").unwrap_or_default();
    let mut config = bus::Config::new(f.jid.as_str(), password);
    config.connection.host = Some(f.host.clone());
    config.connection.port = f.port;
    config.connection.tls = TlsMode::Plain;
    config.connection.stream_management = false;
    config.heartbeat = Duration::from_millis(500);
    config.heartbeat_timeout = Duration::from_millis(1000);

    let (node, mut events) = bus::Node::connect(config).await?;
    emit(json!({"event": "online", "jid": node.jid(), "incarnation": node.incarnation()}));

    let (tx, mut rx) = mpsc::unbounded_channel::<Incoming>();
    let t = tx.clone();
    node.serve("move", move |args: Args| {
        let t = t.clone();
        async move {
            let (game, n, color, mv, hash): (String, i64, String, String, String) =
                args.decode()
                    .map_err(|e| format!("bad move arguments: {e}"))?;
            ask(&t, |reply| Incoming::Move {
                game,
                n,
                color,
                mv,
                hash,
                reply,
            })
            .await
        }
    });
    let t = tx.clone();
    node.serve("state", move |_args: Args| {
        let t = t.clone();
        async move { ask(&t, Incoming::State).await }
    });

    let mut p = Player {
        node: node.clone(),
        me: Color::White,
        opponent: f.opponent.clone(),
        game: Game::new(),
        game_id: None,
        replay: None,
        replayed: 0,
        by_rpc: 0,
        probe_at: f.probe_at,
        probed: false,
        probes: Vec::new(),
        rng: Rng(f.seed),
    };
    p.publish();
    node.join(&f.group).await?;
    emit(json!({"event": "joined", "group": f.group}));

    // The end of stdin (the demo is gone) stops the player too.
    let (eof_tx, mut eof_rx) = mpsc::unbounded_channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
        let _ = eof_tx.send(());
    });

    let failed = loop {
        tokio::select! {
            _ = eof_rx.recv() => break None,
            incoming = rx.recv() => match incoming {
                Some(Incoming::Move { game, n, color, mv, hash, reply }) => {
                    let verdict = if p.replay.is_some() {
                        Err(format!("move {n}: still replaying the queued moves"))
                    } else {
                        p.accept(false, &game, n, &color, &mv, &hash)
                    };
                    match verdict {
                        Ok(captured) => {
                            p.by_rpc += 1;
                            let _ = reply.send(Ok(Term::tuple(vec![
                                Term::atom("ok"),
                                Term::from(n),
                                Term::binary(p.game.hash().as_str()),
                            ])));
                            emit(json!({"event": "accepted", "move": n, "point": mv, "captured": captured}));
                            p.publish();
                            if let Err(e) = p.play_turn().await {
                                break Some(e);
                            }
                        }
                        Err(why) => {
                            emit(json!({"event": "refused", "move": n, "point": mv, "error": why}));
                            let _ = reply.send(Err(why));
                        }
                    }
                }
                Some(Incoming::State(reply)) => {
                    let _ = reply.send(etf::to_term(&p.view()).map_err(|e| e.to_string()));
                }
                None => break None,
            },
            event = events.next() => match event {
                Some(Event::Message { from, payload }) => {
                    if let Err(e) = p.on_message(&from, payload.to_term()).await {
                        break Some(e);
                    }
                }
                Some(Event::Broadcast { payload, .. }) => {
                    let term = payload.to_term();
                    if let Term::Tuple(items) = &term {
                        if items.first().and_then(Term::as_atom) == Some("game_over") {
                            emit(json!({"event": "game_over", "term": format!("{term:?}")}));
                            break None;
                        }
                    }
                }
                Some(Event::Closed(e)) => break e.map(|e| e.to_string()),
                None => break None,
                Some(_) => {}
            },
        }
    };
    node.close().await;
    match failed {
        None => {
            emit(json!({"event": "stopped", "moves": p.game.n, "hash": p.game.hash()}));
            Ok(())
        }
        Some(why) => {
            emit(json!({"event": "failed", "error": why}));
            std::process::exit(3)
        }
    }
}
