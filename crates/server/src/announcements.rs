//! The announcements in force, held once per process for every
//! WatchAnnouncements stream: one task reads the new ones when a publisher on
//! any replica wakes it (and every `refresh` in case a wake-up was lost, and
//! to let expired ones go), so a publication costs one database read per
//! replica, not one per watcher.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use foodfast_domain::announcement::Announcement;
use foodfast_store::announcements::Announcements;
use foodfast_store::fanout::{ANNOUNCEMENTS_TOPIC, Fanout};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Most announcements held in force; past it the oldest are let go (their
/// watchers have them already, new ones miss only the oldest).
pub const MAX_IN_FORCE: usize = 1_000;
/// Rows read per round trip.
const READ_BATCH: u32 = 200;

/// The announcements in force, oldest first (by `seq`).
pub type Board = Arc<[Announcement]>;

#[derive(Clone)]
pub struct AnnouncementBoard {
    board: watch::Receiver<Board>,
}

impl AnnouncementBoard {
    /// Starts the task keeping the board until `stop`.
    pub fn start(store: Announcements, fanout: Fanout, refresh: Duration, stop: CancellationToken) -> Self {
        let (sender, board) = watch::channel(Board::from([]));
        tokio::spawn(keep(store, fanout, sender, refresh, stop));
        Self { board }
    }

    /// The board now, and a receiver that hears of every change.
    pub fn subscribe(&self) -> watch::Receiver<Board> {
        self.board.clone()
    }
}

async fn keep(
    store: Announcements,
    fanout: Fanout,
    sender: watch::Sender<Board>,
    refresh: Duration,
    stop: CancellationToken,
) {
    // Subscribed before the first read, so no publication falls in between.
    let mut wake = fanout.subscribe(ANNOUNCEMENTS_TOPIC);
    let mut held: Vec<Announcement> = Vec::new();
    let mut read_to = 0;
    loop {
        let before = held.len();
        let last_before = held.last().map(|a| a.seq);
        if let Err(err) = read_new(&store, &mut held, &mut read_to).await {
            tracing::warn!(error = %foodfast_store::Chain(&err), "could not read new announcements; retrying");
        }
        let now = Utc::now();
        held.retain(|announcement| announcement.in_force(now));
        if held.len() > MAX_IN_FORCE {
            held.drain(..held.len() - MAX_IN_FORCE);
        }
        if held.len() != before || held.last().map(|a| a.seq) != last_before {
            sender.send_replace(Board::from(held.as_slice()));
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            // Changed, lagged or reconnected: all mean "read again".
            woken = wake.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = woken {
                    wake = fanout.subscribe(ANNOUNCEMENTS_TOPIC);
                }
            }
            _ = tokio::time::sleep(refresh) => {}
        }
    }
}

/// Adds the announcements in force published after `read_to`, and moves it on.
async fn read_new(
    store: &Announcements,
    held: &mut Vec<Announcement>,
    read_to: &mut i64,
) -> Result<(), foodfast_store::StoreError> {
    loop {
        let read = store.in_force_after(*read_to, READ_BATCH).await?;
        held.extend(read.announcements);
        *read_to = read.read_to.unwrap_or(*read_to).max(*read_to);
        if !read.more {
            return Ok(());
        }
    }
}
