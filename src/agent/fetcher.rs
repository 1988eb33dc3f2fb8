//! The agent's API requests, on a thread of their own. A request can take
//! long (a slow service, the client's back-off after errors); the agent's
//! loop waits for it in short steps and can walk away when asked to stop,
//! so a SIGTERM never waits for an answer. Nothing of an abandoned page was
//! sent, so walking away loses nothing. Buffers travel to the thread and
//! back: no allocation per request.

use crate::api::{ApiClient, ApiError, ClientStats, Endpoint};
use crate::stop::Stop;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

struct Job {
    endpoint: Endpoint,
    body: Vec<u8>,
    page: Vec<u8>,
}

struct Done {
    result: Result<usize, ApiError>,
    body: Vec<u8>,
    page: Vec<u8>,
    stats: ClientStats,
    server_clock: Option<(i64, Instant)>,
}

/// Runs an [`ApiClient`] on its own thread.
pub struct Fetcher {
    jobs: Sender<Job>,
    done: Receiver<Done>,
    stats: ClientStats,
    server_clock: Option<(i64, Instant)>,
}

impl Fetcher {
    /// Moves `client` to a new thread.
    pub fn start(mut client: ApiClient) -> std::io::Result<Self> {
        let (jobs, job_rx) = crossbeam_channel::bounded::<Job>(1);
        let (done_tx, done) = crossbeam_channel::bounded::<Done>(1);
        std::thread::Builder::new().name("api".into()).spawn(move || {
            for mut job in job_rx {
                let result = client.fetch_page(job.endpoint, &job.body, &mut job.page);
                let done = Done {
                    result,
                    body: job.body,
                    page: job.page,
                    stats: client.stats(),
                    server_clock: client.server_clock(),
                };
                if done_tx.send(done).is_err() {
                    return;
                }
            }
        })?;
        Ok(Self { jobs, done, stats: ClientStats::default(), server_clock: None })
    }

    /// POSTs `body` to `endpoint` and reads the answer into `page` (padded,
    /// as [`ApiClient::fetch_page`] does). `None` when `stop` was set
    /// before the answer came: the request is abandoned.
    pub fn fetch(
        &mut self,
        endpoint: Endpoint,
        body: &mut Vec<u8>,
        page: &mut Vec<u8>,
        stop: &Stop,
    ) -> Option<Result<usize, ApiError>> {
        let job = Job { endpoint, body: std::mem::take(body), page: std::mem::take(page) };
        if self.jobs.send(job).is_err() {
            return None;
        }
        loop {
            match self.done.recv_timeout(Duration::from_millis(100)) {
                Ok(done) => {
                    *body = done.body;
                    *page = done.page;
                    self.stats = done.stats;
                    self.server_clock = done.server_clock.or(self.server_clock);
                    return Some(done.result);
                }
                Err(RecvTimeoutError::Timeout) if !stop.is_requested() => {}
                Err(_) => return None,
            }
        }
    }

    /// The client's counters as of its last answer.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The server's time now, from the `Date` of its last answer.
    pub fn server_now_ms(&self) -> Option<i64> {
        self.server_clock.map(|(date, at)| date + at.elapsed().as_millis() as i64)
    }
}
