//! API pages → records: the one page pipeline of `backfill` and the agent.
//!
//! [`PageSource`] owns the fetch thread (which owns the [`ApiClient`]), the
//! pagers of the windows it walks (built by [`WindowQuery`]) and the page
//! feedback: the caller parses each page once ([`PageSource::convert_page`]
//! runs it through the shared record loop), and the paging fields of that
//! parse go straight back to the thread, which builds the next request from
//! them. Pages travel in circulating buffers, handed to the thread when the
//! caller asks for the next page: with three ([`PageSource::pipelined`],
//! backfill) the next request is in flight while a page is converted; with
//! one ([`PageSource::on_demand`], the agent) nothing is fetched before the
//! caller asks (the agent first waits until syslog took the last page). A
//! wait for a page can be abandoned when a stop is asked for, so a stop
//! never waits for a slow answer; nothing of an abandoned page was
//! converted, so walking away loses nothing.
//!
//! It does not decide the windows, the cursors or where messages go, and
//! does no conversion of its own beyond handing pages to
//! [`RecordConverter::convert_page`].
//!
//! [`WindowQuery`]: crate::api::WindowQuery

use crate::api::{ApiClient, ApiError, ClientStats, Endpoint, PageInfo, Pager, PagingError, RateLimit, TimeKey};
use crate::json::JsonValue;
use crate::records::{MessageSink, Origin, PageError, RecordConverter, RecordGate};
use crate::rejects::RejectLog;
use crate::stop::Stop;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A fetched page, in a buffer padded for the parser.
pub struct Page {
    pub endpoint: Endpoint,
    /// The time field its pager sorts and cuts on.
    pub key: TimeKey,
    /// 1 for the first page of its pager.
    pub number: u64,
    pub buffer: Vec<u8>,
    /// Length of the answer in `buffer` (the padding follows).
    pub len: usize,
}

/// What [`PageSource::next_page`] found.
pub enum PageEvent {
    Page(Page),
    /// Every pager of the walk is done.
    Done,
    /// The walk ended on an error.
    Failed(SourceError),
}

/// Why a walk ended early.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("paging through {endpoint}: {source}")]
    Paging { endpoint: &'static str, source: PagingError },
    #[error("the fetch thread stopped unexpectedly")]
    ThreadGone,
}

/// From the caller to the fetch thread.
enum Command {
    /// Walk these pagers in order, dropping a walk in progress.
    Walk { walk: u64, pagers: Vec<Box<dyn Pager>> },
    /// What the page answering the last request said; `None`: it was not
    /// a page, the walk ends.
    Feedback { walk: u64, info: Option<PageInfo> },
    /// A buffer to fetch into.
    Buffer(Vec<u8>),
}

/// From the fetch thread to the caller, with the client's state as of it.
struct Event {
    walk: u64,
    fetched: Fetched,
    stats: ClientStats,
    server_clock: Option<(i64, Instant)>,
}

enum Fetched {
    Page(Page),
    Done,
    Failed(SourceError),
}

/// Pages in flight when pipelined: one being fetched, one being
/// converted, one spare.
const PIPELINED_BUFFERS: usize = 3;

/// How often an abandonable wait looks at the stop.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Pages of one walk after another, fetched on a thread of their own.
pub struct PageSource {
    commands: Option<Sender<Command>>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
    /// Buffers back from the caller, handed to the thread by the next
    /// [`next_page`](Self::next_page) (so with one buffer nothing is
    /// fetched before the caller asks).
    idle: Vec<Vec<u8>>,
    /// The current walk; events of earlier ones are dropped.
    walk: u64,
    /// A wait was abandoned: the thread may still be busy with it.
    abandoned: bool,
    rate_limit: RateLimit,
    stats: ClientStats,
    server_clock: Option<(i64, Instant)>,
}

impl PageSource {
    /// Backfill's flow: the next request goes out as soon as the current
    /// page's paging fields are read, while it is converted.
    pub fn pipelined(client: ApiClient) -> io::Result<Self> {
        Self::start(client, PIPELINED_BUFFERS)
    }

    /// The agent's flow: one page at a time, fetched when asked for.
    pub fn on_demand(client: ApiClient) -> io::Result<Self> {
        Self::start(client, 1)
    }

    fn start(client: ApiClient, buffers: usize) -> io::Result<Self> {
        let rate_limit = client.rate_limit();
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new().name("api".into()).spawn(move || {
            FetchThread { client, commands: command_rx, events: event_tx, pool: Vec::new(), walk: None }.run()
        })?;
        Ok(Self {
            commands: Some(commands),
            events,
            thread: Some(thread),
            idle: (0..buffers).map(|_| Vec::new()).collect(),
            walk: 0,
            abandoned: false,
            rate_limit,
            stats: ClientStats::default(),
            server_clock: None,
        })
    }

    /// Starts walking the pages of `pagers`, one after the other; a walk in
    /// progress is dropped (its pages are not delivered).
    pub fn walk(&mut self, pagers: Vec<Box<dyn Pager>>) {
        self.walk += 1;
        self.send(Command::Walk { walk: self.walk, pagers });
    }

    /// The next page of the walk, or its end. Waits while `stop` is not
    /// set; `None` when it was set first: the wait is abandoned (the
    /// request in flight is left to finish on its own) and the source is
    /// not to be used any more.
    pub fn next_page(&mut self, stop: Option<&Stop>) -> Option<PageEvent> {
        if self.abandoned {
            return None;
        }
        for buffer in std::mem::take(&mut self.idle) {
            self.send(Command::Buffer(buffer));
        }
        loop {
            let event = match self.receive(stop) {
                Ok(event) => event,
                Err(NoEvent::Stopped) => {
                    self.abandoned = true;
                    return None;
                }
                Err(NoEvent::ThreadGone) => return Some(PageEvent::Failed(SourceError::ThreadGone)),
            };
            self.stats = event.stats;
            self.server_clock = event.server_clock.or(self.server_clock);
            if event.walk != self.walk {
                // A dropped walk: only its buffer is of use.
                if let Fetched::Page(page) = event.fetched {
                    self.send(Command::Buffer(page.buffer));
                }
                continue;
            }
            return Some(match event.fetched {
                Fetched::Page(page) => PageEvent::Page(page),
                Fetched::Done => PageEvent::Done,
                Fetched::Failed(err) => PageEvent::Failed(err),
            });
        }
    }

    fn receive(&self, stop: Option<&Stop>) -> Result<Event, NoEvent> {
        let Some(stop) = stop else {
            return self.events.recv().map_err(|_| NoEvent::ThreadGone);
        };
        loop {
            match self.events.recv_timeout(STOP_POLL) {
                Ok(event) => return Ok(event),
                Err(RecvTimeoutError::Timeout) if !stop.is_requested() => {}
                Err(RecvTimeoutError::Timeout) => return Err(NoEvent::Stopped),
                Err(RecvTimeoutError::Disconnected) => return Err(NoEvent::ThreadGone),
            }
        }
    }

    /// Tells the fetch thread what the current page said, so it can build
    /// the next request; `None`: it was not a page, and the walk ends
    /// there (no further event comes for it).
    pub fn page_read(&mut self, info: Option<&PageInfo>) {
        self.send(Command::Feedback { walk: self.walk, info: info.cloned() });
    }

    /// Runs `page` through the shared record loop and `gate` into `sink`,
    /// its records located as `file:PAGE: record N`. The paging fields go
    /// back to the fetch thread as soon as they are read, before the
    /// records are converted; `also` sees the parsed page too (backfill
    /// archives it). The buffer stays with the page: give it back with
    /// [`recycle`](Self::recycle).
    #[allow(clippy::too_many_arguments)]
    pub fn convert_page<G: RecordGate>(
        &mut self,
        page: &mut Page,
        file: &str,
        converter: &mut RecordConverter,
        sink: &mut dyn MessageSink,
        rejects: &mut RejectLog,
        gate: &mut G,
        also: impl FnOnce(JsonValue<'_, '_>),
    ) -> Result<PageInfo, PageError> {
        let origin = Origin { file, line: page.number, multi_line: false };
        let key = page.key;
        let mut told = false;
        let converted = converter.convert_page(origin, &mut page.buffer, page.len, sink, rejects, gate, |root| {
            let info = PageInfo::from_page(root, key)?;
            self.page_read(Some(&info));
            told = true;
            also(root);
            Some(info)
        });
        if !told {
            self.page_read(None);
        }
        converted
    }

    /// Gives a page's buffer back for the next fetch.
    pub fn recycle(&mut self, page: Page) {
        self.idle.push(page.buffer);
    }

    /// The client's counters as of its last answer.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    pub fn rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    /// The server's time now, from the `Date` of its last answer.
    pub fn server_now_ms(&self) -> Option<i64> {
        self.server_clock.map(|(date, at)| date + at.elapsed().as_millis() as i64)
    }

    /// Stops the fetch thread and waits for it (a request in flight is
    /// finished first). Dropping the source instead does not wait.
    pub fn finish(mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn send(&self, command: Command) {
        // A failed send means the thread is gone; the next wait says so.
        if let Some(commands) = &self.commands {
            let _ = commands.send(command);
        }
    }
}

/// Why a wait for an event ended without one.
enum NoEvent {
    Stopped,
    ThreadGone,
}

/// The walk the fetch thread is on.
struct Walk {
    id: u64,
    pagers: Vec<Box<dyn Pager>>,
    /// The pager being walked.
    current: usize,
    /// Pages fetched from it so far.
    pages: u64,
    body: Vec<u8>,
    /// A page was sent; its feedback has not come yet.
    awaiting_feedback: bool,
}

/// The fetch thread's side.
struct FetchThread {
    client: ApiClient,
    commands: Receiver<Command>,
    events: Sender<Event>,
    pool: Vec<Vec<u8>>,
    walk: Option<Walk>,
}

impl FetchThread {
    fn run(mut self) {
        loop {
            let can_fetch = !self.pool.is_empty() && self.walk.as_ref().is_some_and(|w| !w.awaiting_feedback);
            // Commands first (a newer walk wins); block only when there is
            // nothing to fetch.
            let command = if can_fetch {
                match self.commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match self.commands.recv() {
                    Ok(command) => Some(command),
                    Err(_) => return,
                }
            };
            let alive = match command {
                Some(command) => self.take(command),
                None => self.fetch(),
            };
            if !alive {
                return;
            }
        }
    }

    /// Returns false when the caller is gone.
    fn take(&mut self, command: Command) -> bool {
        match command {
            Command::Buffer(buffer) => {
                self.pool.push(buffer);
                true
            }
            Command::Walk { walk, pagers } => {
                let body = self.walk.take().map(|w| w.body).unwrap_or_default();
                self.walk = Some(Walk { id: walk, pagers, current: 0, pages: 0, body, awaiting_feedback: false });
                self.next_request()
            }
            Command::Feedback { walk, info } => {
                let Some(current) = self.walk.as_mut().filter(|w| w.id == walk && w.awaiting_feedback) else {
                    return true;
                };
                current.awaiting_feedback = false;
                let Some(info) = info else {
                    self.walk = None;
                    return true;
                };
                let pager = &mut current.pagers[current.current];
                if let Err(source) = pager.page_done(&info) {
                    let err = SourceError::Paging { endpoint: pager.endpoint().name(), source };
                    return self.end_walk(Fetched::Failed(err));
                }
                self.next_request()
            }
        }
    }

    /// Builds the walk's next request, moving on to the next pager when
    /// one is done; the walk ends when the last is.
    fn next_request(&mut self) -> bool {
        let Some(walk) = self.walk.as_mut() else { return true };
        while walk.current < walk.pagers.len() {
            if walk.pagers[walk.current].next_request(&mut walk.body) {
                return true;
            }
            walk.current += 1;
            walk.pages = 0;
        }
        self.end_walk(Fetched::Done)
    }

    fn fetch(&mut self) -> bool {
        let (Some(walk), Some(mut buffer)) = (self.walk.as_mut(), self.pool.pop()) else { return true };
        let pager = &walk.pagers[walk.current];
        let (endpoint, key) = (pager.endpoint(), pager.key());
        match self.client.fetch_page(endpoint, &walk.body, &mut buffer) {
            Ok(len) => {
                walk.awaiting_feedback = true;
                walk.pages += 1;
                let page = Page { endpoint, key, number: walk.pages, buffer, len };
                let id = walk.id;
                self.send(id, Fetched::Page(page))
            }
            Err(err) => {
                self.pool.push(buffer);
                self.end_walk(Fetched::Failed(err.into()))
            }
        }
    }

    fn end_walk(&mut self, last: Fetched) -> bool {
        let Some(walk) = self.walk.take() else { return true };
        self.send(walk.id, last)
    }

    fn send(&self, walk: u64, fetched: Fetched) -> bool {
        let event = Event { walk, fetched, stats: self.client.stats(), server_clock: self.client.server_clock() };
        self.events.send(event).is_ok()
    }
}

impl Drop for PageSource {
    fn drop(&mut self) {
        // Closing the command channel ends the thread once it is idle; a
        // request in flight is not waited for.
        self.commands = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiAuth, ApiConfig, RetryPolicy, TimeWindow, WindowQuery};
    use crate::cef::CefOptions;
    use crate::emulate::{self, EmulatorConfig, EmulatorHandle, FaultConfig, StoreBuilder};
    use crate::generate::{GenerateConfig, GenerateKind};
    use crate::records::NoGate;
    use std::sync::Arc;

    const TOKEN: &str = "pages-test-token";
    const FAST: RateLimit = RateLimit { requests: 100_000, per: Duration::from_secs(60) };

    /// An emulator holding `count` generated records (activities with 5 %
    /// alerts) over the last two days, and that window.
    fn emulator(count: u64, faults: FaultConfig) -> (EmulatorHandle, TimeWindow) {
        let now = crate::time::now_ms();
        let from = now - 49 * 3_600_000;
        let mut builder = StoreBuilder::new();
        builder.add_generated(GenerateConfig {
            kind: GenerateKind::Mixed,
            count,
            seed: 5,
            late_ratio: 0.0,
            start_ms: from,
            span_ms: 48 * 3_600_000,
        });
        let mut config = EmulatorConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN);
        config.rate_limit = Some(FAST);
        config.faults = faults;
        (emulate::start(config, Arc::new(builder.build())).unwrap(), TimeWindow { from, until: now })
    }

    fn client(emulator: &EmulatorHandle) -> ApiClient {
        let mut config = ApiConfig::new(&emulator.base_url(), ApiAuth::Token(TOKEN.to_owned()));
        config.rate_limit = FAST;
        config.retry = RetryPolicy {
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_attempts: 5,
        };
        ApiClient::new(&config).unwrap()
    }

    fn queries(window: TimeWindow) -> Vec<Box<dyn Pager>> {
        [Endpoint::Alerts, Endpoint::Activities]
            .into_iter()
            .map(|endpoint| WindowQuery::new(endpoint, TimeKey::Created, window, b"", 100).pager())
            .collect()
    }

    /// Counts messages, keeping none.
    struct Count(Vec<u8>, u64);

    impl MessageSink for Count {
        fn buffer(&mut self) -> &mut Vec<u8> {
            &mut self.0
        }

        fn commit(&mut self, _: usize) -> io::Result<()> {
            self.0.clear();
            self.1 += 1;
            Ok(())
        }
    }

    struct Reader {
        converter: RecordConverter,
        sink: Count,
        rejects: RejectLog,
    }

    impl Reader {
        fn new() -> Self {
            Self {
                converter: RecordConverter::new(&CefOptions::default()),
                sink: Count(Vec::new(), 0),
                rejects: RejectLog::with_messages(0, Box::new(io::sink())),
            }
        }

        fn read(&mut self, source: &mut PageSource, page: &mut Page) -> PageInfo {
            let Self { converter, sink, rejects } = self;
            source.convert_page(page, "test", converter, sink, rejects, &mut NoGate, |_| ()).unwrap()
        }
    }

    fn next(source: &mut PageSource) -> Page {
        match source.next_page(None) {
            Some(PageEvent::Page(page)) => page,
            Some(PageEvent::Done) => panic!("the walk ended early"),
            Some(PageEvent::Failed(err)) => panic!("the walk failed: {err}"),
            None => panic!("no stop was asked for"),
        }
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn pipelined_walks_every_page_and_fetches_the_next_while_one_is_converted() {
        let (emulator, window) = emulator(1200, FaultConfig::default());
        let mut source = PageSource::pipelined(client(&emulator)).unwrap();
        source.walk(queries(window));
        let mut reader = Reader::new();
        let mut first = next(&mut source);
        assert_eq!((first.endpoint, first.number), (Endpoint::Alerts, 1));
        reader.read(&mut source, &mut first);
        // The page is still held: the next request went out anyway.
        wait_until("the second request", || emulator.stats().api_requests >= 2);
        source.recycle(first);
        let mut pages = vec![(Endpoint::Alerts, 1)];
        loop {
            match source.next_page(None) {
                Some(PageEvent::Page(mut page)) => {
                    reader.read(&mut source, &mut page);
                    pages.push((page.endpoint, page.number));
                    source.recycle(page);
                }
                Some(PageEvent::Done) => break,
                Some(PageEvent::Failed(err)) => panic!("{err}"),
                None => unreachable!(),
            }
        }
        assert_eq!(reader.sink.1, 1200, "every record of both types, once");
        let activity_pages = pages.iter().filter(|(e, _)| *e == Endpoint::Activities).count() as u64;
        assert_eq!(pages.last(), Some(&(Endpoint::Activities, activity_pages)), "numbered per pager: {pages:?}");
        assert!(activity_pages >= 11, "scan pages of 100: {pages:?}");
        assert_eq!(emulator.stats().api_requests, pages.len() as u64, "one request per page, none wasted");
        assert_eq!(source.stats().requests, pages.len() as u64);
        assert!(source.server_now_ms().is_some(), "the server's clock is known");
        source.finish();
    }

    #[test]
    fn on_demand_fetches_only_when_asked() {
        let (emulator, window) = emulator(500, FaultConfig::default());
        let mut source = PageSource::on_demand(client(&emulator)).unwrap();
        source.walk(queries(window));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(emulator.stats().api_requests, 0, "nothing fetched before the first ask");
        let mut reader = Reader::new();
        let mut page = next(&mut source);
        let info = reader.read(&mut source, &mut page);
        assert!(info.records > 0);
        source.recycle(page);
        // Paging fields given, the buffer back: still nothing until asked.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(emulator.stats().api_requests, 1, "the next page waits for next_page");
        let page = next(&mut source);
        assert_eq!((page.endpoint, page.number), (Endpoint::Activities, 1));
        assert_eq!(emulator.stats().api_requests, 2);
        source.recycle(page);
    }

    #[test]
    fn a_stop_walks_away_from_a_slow_answer() {
        let slow = FaultConfig { slow: 1.0, slow_delay: Duration::from_secs(5), ..FaultConfig::default() };
        let (emulator, window) = emulator(100, slow);
        let mut source = PageSource::on_demand(client(&emulator)).unwrap();
        source.walk(queries(window));
        let stop = Stop::new();
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                stop.request();
            })
        };
        assert!(source.next_page(Some(&stop)).is_none(), "the wait is abandoned, not the answer waited for");
        assert_eq!(emulator.stats().injected_slow, 1, "the request was in flight");
        assert!(source.next_page(Some(&stop)).is_none(), "an abandoned source stays abandoned");
        stopper.join().unwrap();
        drop(source);
    }

    #[test]
    fn a_new_walk_drops_the_one_in_progress() {
        let (emulator, window) = emulator(800, FaultConfig::default());
        let mut source = PageSource::on_demand(client(&emulator)).unwrap();
        let activities = WindowQuery::new(Endpoint::Activities, TimeKey::Created, window, b"", 100);
        source.walk(vec![activities.pager()]);
        let mut reader = Reader::new();
        let mut page = next(&mut source);
        reader.read(&mut source, &mut page);
        source.recycle(page);
        // Abandon it mid-way (the agent does after an error) for alerts.
        let alerts = WindowQuery::new(Endpoint::Alerts, TimeKey::Date, window, b"", 100);
        source.walk(vec![alerts.pager()]);
        let mut page = next(&mut source);
        assert_eq!((page.endpoint, page.number), (Endpoint::Alerts, 1), "the new walk's first page");
        reader.read(&mut source, &mut page);
        source.recycle(page);
        assert!(matches!(source.next_page(None), Some(PageEvent::Done)));
        assert_eq!(emulator.stats().api_requests, 2, "nothing more of the dropped walk was fetched");
    }

    /// Fails on the first page's paging fields.
    struct Refusing(crate::api::OneRequest);

    impl Pager for Refusing {
        fn endpoint(&self) -> Endpoint {
            self.0.endpoint()
        }

        fn key(&self) -> TimeKey {
            TimeKey::Date
        }

        fn next_request(&mut self, out: &mut Vec<u8>) -> bool {
            self.0.next_request(out)
        }

        fn page_done(&mut self, _: &PageInfo) -> Result<(), PagingError> {
            Err(PagingError::MissingNextFilters)
        }
    }

    #[test]
    fn paging_errors_and_api_errors_end_the_walk_with_their_cause() {
        let (emulator, _) = emulator(100, FaultConfig::default());
        let mut source = PageSource::on_demand(client(&emulator)).unwrap();
        let body = br#"{"filters":{},"limit":1}"#;
        source.walk(vec![Box::new(Refusing(crate::api::OneRequest::new(Endpoint::Alerts, body)))]);
        let mut reader = Reader::new();
        let mut page = next(&mut source);
        reader.read(&mut source, &mut page);
        source.recycle(page);
        match source.next_page(None) {
            Some(PageEvent::Failed(err @ SourceError::Paging { .. })) => {
                assert_eq!(err.to_string(), "paging through alerts: the API said hasNext but sent no nextQueryFilters")
            }
            _ => panic!("a paging error ends the walk"),
        }
        source.walk(vec![Box::new(crate::api::OneRequest::new(Endpoint::Alerts, b"{\"limit\":\"x\"}"))]);
        match source.next_page(None) {
            Some(PageEvent::Failed(SourceError::Api(err))) => assert!(err.to_string().contains("400"), "{err}"),
            _ => panic!("a refused request ends the walk"),
        }
    }
}
