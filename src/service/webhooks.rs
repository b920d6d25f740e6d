//! Webhook notifications (`[[webhooks]]`): authd POSTs events as JSON —
//! today `approval.created`, with its signed approve and deny links — to
//! the URLs in the config. Delivery never happens on the request path: an
//! event goes into a bounded queue and a background worker sends it, with a
//! timeout per attempt and a doubling pause between attempts. A dead
//! receiver costs at most the queue and the in-flight permits: when both
//! are full new events are dropped (and audited), never buffered without
//! bound. Every attempt is audited (`webhook.delivered`, `webhook.failed`)
//! with the receiver's host only, since webhook URLs often embed secrets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{mpsc, Semaphore};

use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
use crate::clock::{self, Clock, UnixSeconds};
use crate::config::WebhookConfig;
use crate::store::Store;
use crate::swappable::Swappable;

/// Events waiting for the worker.
const QUEUE_CAPACITY: usize = 256;
/// Deliveries in flight (sending or waiting to retry) at once.
const MAX_IN_FLIGHT: usize = 16;
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
pub const SIGNATURE_HEADER: &str = "x-authd-signature";

/// One event for every webhook that subscribed to it.
#[derive(Debug)]
struct Event {
    kind: &'static str,
    payload: serde_json::Value,
}

/// The sending side, held by the services.
pub struct Webhooks {
    /// The receivers now; a config reload replaces the list and the worker
    /// reads it for every event.
    hooks: Arc<Swappable<Arc<Vec<WebhookConfig>>>>,
    /// Started with the first receiver (at start, or by a reload).
    queue: Mutex<Option<mpsc::Sender<Event>>>,
    store: Arc<Store>,
    clock: Clock,
    dropped: std::sync::atomic::AtomicU64,
}

/// `sha256=<hex>`: HMAC-SHA-256 of the exact body bytes with the webhook's secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The host of a webhook URL: what the audit records instead of the URL.
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Webhooks {
    /// Starts the worker (none when no webhook is configured).
    pub fn start(
        hooks: Vec<WebhookConfig>,
        store: Arc<Store>,
        clock: Clock,
    ) -> anyhow::Result<Webhooks> {
        let webhooks = Webhooks {
            hooks: Arc::default(),
            queue: Mutex::new(None),
            store,
            clock,
            dropped: Default::default(),
        };
        webhooks.replace(hooks)?;
        Ok(webhooks)
    }

    /// The receivers from now on (a config reload); events already queued
    /// go to the new list. The worker starts with the first receiver.
    pub fn replace(&self, hooks: Vec<WebhookConfig>) -> anyhow::Result<()> {
        let any = !hooks.is_empty();
        self.hooks.set(Arc::new(hooks));
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if any && queue.is_none() {
            let client = reqwest::Client::builder()
                .user_agent(concat!("authd/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            tokio::spawn(run_worker(
                receiver,
                self.hooks.clone(),
                client,
                self.store.clone(),
                self.clock.clone(),
            ));
            *queue = Some(sender);
        }
        Ok(())
    }

    /// Events dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queues an event; returns at once. A full queue drops it, audited.
    pub fn notify(&self, kind: &'static str, payload: serde_json::Value) {
        if self.hooks.get().is_empty() {
            return;
        }
        let Some(queue) = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
        else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(event)) = queue.try_send(Event { kind, payload })
        {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(event = event.kind, "webhook queue full; event dropped");
            let store = self.store.clone();
            let now = self.clock.now();
            tokio::task::spawn_blocking(move || {
                audit_attempt(
                    &store,
                    now,
                    AuditKind::WebhookFailed,
                    event.kind,
                    "",
                    0,
                    serde_json::json!({"reason": "queue_full"}),
                )
            });
        }
    }
}

fn audit_attempt(
    store: &Store,
    now: UnixSeconds,
    kind: AuditKind,
    event: &str,
    host: &str,
    attempt: u32,
    extra: serde_json::Value,
) {
    let mut details = serde_json::json!({"event": event, "host": host, "attempt": attempt});
    if let (Some(details), Some(extra)) = (details.as_object_mut(), extra.as_object()) {
        details.extend(extra.clone());
    }
    let record = AuditRecord::new(kind, now, &RequestOrigin::default()).details(details);
    if let Err(error) = store.write(|txn| txn.audit(record)) {
        tracing::warn!(%error, "could not audit a webhook attempt");
    }
}

async fn run_worker(
    mut receiver: mpsc::Receiver<Event>,
    live_hooks: Arc<Swappable<Arc<Vec<WebhookConfig>>>>,
    client: reqwest::Client,
    store: Arc<Store>,
    clock: Clock,
) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(event) = receiver.recv().await {
        let delivery_id = ulid::Ulid::new().to_string();
        let mut payload = event.payload;
        if let Some(object) = payload.as_object_mut() {
            object.insert("event".into(), event.kind.into());
            object.insert("delivery_id".into(), delivery_id.clone().into());
            object.insert("sent_at".into(), clock::rfc3339(clock.now()).into());
        }
        let body = match serde_json::to_vec(&payload) {
            Ok(body) => Arc::new(body),
            Err(error) => {
                tracing::warn!(%error, "could not encode a webhook event");
                continue;
            }
        };
        let hooks = live_hooks.get();
        for (index, hook) in hooks.iter().enumerate() {
            if !hook.events.iter().any(|e| e == event.kind) {
                continue;
            }
            // Waiting here is the back-pressure: the queue fills behind it.
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let delivery = Delivery {
                client: client.clone(),
                store: store.clone(),
                clock: clock.clone(),
                hooks: hooks.clone(),
                index,
                event: event.kind,
                delivery_id: delivery_id.clone(),
                body: body.clone(),
            };
            tokio::spawn(async move {
                delivery.send().await;
                drop(permit);
            });
        }
    }
}

struct Delivery {
    client: reqwest::Client,
    store: Arc<Store>,
    clock: Clock,
    hooks: Arc<Vec<WebhookConfig>>,
    index: usize,
    event: &'static str,
    delivery_id: String,
    body: Arc<Vec<u8>>,
}

impl Delivery {
    async fn send(self) {
        let Some(hook) = self.hooks.get(self.index) else {
            return;
        };
        let host = host_of(&hook.url);
        let mut pause = hook.backoff.as_std();
        for attempt in 1..=hook.max_attempts {
            let outcome = self.attempt(hook).await;
            let last = attempt == hook.max_attempts;
            let (kind, details) = match &outcome {
                Ok(status) => (
                    AuditKind::WebhookDelivered,
                    serde_json::json!({"status": status, "delivery_id": self.delivery_id}),
                ),
                Err(reason) => (
                    AuditKind::WebhookFailed,
                    serde_json::json!({"reason": reason, "delivery_id": self.delivery_id, "final": last}),
                ),
            };
            let store = self.store.clone();
            let (event, audited_host, now) = (self.event, host.clone(), self.clock.now());
            let _ = tokio::task::spawn_blocking(move || {
                audit_attempt(&store, now, kind, event, &audited_host, attempt, details)
            })
            .await;
            if outcome.is_ok() {
                return;
            }
            if last {
                tracing::warn!(event = self.event, %host, attempts = attempt, "webhook delivery failed");
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    /// One POST; `Ok(status)` for a 2xx answer.
    async fn attempt(&self, hook: &WebhookConfig) -> Result<u16, String> {
        let mut request = self
            .client
            .post(&hook.url)
            .timeout(hook.timeout.as_std())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-authd-event", self.event)
            .header("x-authd-delivery", &self.delivery_id)
            .body(self.body.as_ref().clone());
        if let Some(secret) = &hook.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &self.body));
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
            Ok(response) => Err(format!("http_{}", response.status().as_u16())),
            Err(error) if error.is_timeout() => Err("timeout".to_owned()),
            Err(error) if error.is_connect() => Err("connect".to_owned()),
            Err(_) => Err("request".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_the_body() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[tokio::test]
    async fn a_dead_receiver_fills_a_bounded_queue_and_then_events_are_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, _) =
            Store::open(&dir.path().join("authd.redb"), 1 << 20, 1_700_000_000).expect("open");
        let store = Arc::new(store);
        let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let hook = WebhookConfig {
            url: format!("http://127.0.0.1:{dead_port}/"),
            events: vec!["approval.created".into()],
            secret: None,
            timeout: crate::config::HumanDuration::from_secs(1),
            max_attempts: 2,
            // Failed deliveries sit in their pause and keep their permits.
            backoff: crate::config::HumanDuration::from_secs(3600),
        };
        let webhooks = Webhooks::start(vec![hook], store.clone(), Clock::manual(1_700_000_000))
            .expect("start");
        let started = std::time::Instant::now();
        let sent = 1000;
        for n in 0..sent {
            webhooks.notify("approval.created", serde_json::json!({ "n": n }));
            tokio::task::yield_now().await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "notify never waits"
        );
        // At most the queue, the in-flight permits and the one event the
        // worker holds are kept; everything else was dropped, not buffered.
        let dropped = webhooks.dropped() as usize;
        let kept = sent - dropped;
        assert!(dropped > 0, "nothing dropped");
        assert!(kept <= QUEUE_CAPACITY + MAX_IN_FLIGHT + 1, "kept {kept}");
        // Each drop is audited (off the caller's path, so give it time).
        let audited = || {
            store
                .read(|txn| {
                    use crate::store::Queries;
                    txn.audit(&crate::store::AuditQuery {
                        kind: Some(AuditKind::WebhookFailed),
                        limit: 2000,
                        ..Default::default()
                    })
                })
                .expect("audit")
                .iter()
                .filter(|record| record.details["reason"] == "queue_full")
                .count()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while audited() < dropped && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(audited(), dropped);
    }

    #[test]
    fn the_audit_sees_the_host_never_the_path_or_query() {
        assert_eq!(
            host_of("https://hooks.slack.com/services/T000/B000/XXXXSECRET?x=1"),
            "hooks.slack.com"
        );
        assert_eq!(host_of("not a url"), "");
    }
}
