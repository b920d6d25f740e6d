//! Outgoing mail (`[smtp]`): password-reset and email-verification links.
//! Like [`super::webhooks`], sending never happens on the request path: a
//! mail goes into a bounded queue and a background worker hands it to the
//! relay, with a timeout per attempt and a doubling pause between attempts.
//! A full queue drops the mail (audited), never buffers without bound.
//! Every attempt is audited (`email.sent`, `email.failed`) with the
//! purpose and the relay's answer class, never the recipient's link, and
//! nothing about it reaches the person who asked.
//!
//! The transport is lettre over rustls (ring, bundled roots), so the static
//! and ARM builds stay free of C.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{mpsc, Semaphore};

use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
use crate::clock::Clock;
use crate::config::{SmtpConfig, SmtpSecurity};
use crate::domain::UserId;
use crate::store::Store;

/// Mails waiting for the worker.
const QUEUE_CAPACITY: usize = 256;
/// Mails in flight (sending or waiting to retry) at once.
const MAX_IN_FLIGHT: usize = 8;
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// One plain-text mail to one person.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// Whom it concerns, for the audit.
    pub user_id: UserId,
    /// `password_reset` or `email_verification`, for the audit.
    pub purpose: &'static str,
}

/// The sending side, held by the services (and cloned into tasks that
/// send later); without `[smtp]` it has no queue and sends nothing.
#[derive(Clone)]
pub struct Mailer {
    queue: Option<mpsc::Sender<Mail>>,
    store: Arc<Store>,
    clock: Clock,
}

struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of message ids, from `server.public_url`.
    domain: String,
    max_attempts: u32,
    backoff: Duration,
}

impl Mailer {
    /// Starts the worker when `[smtp]` names a relay. `public_host` names
    /// this server to the relay (HELO) and in message ids.
    pub fn start(
        config: &SmtpConfig,
        public_host: &str,
        store: Arc<Store>,
        clock: Clock,
    ) -> anyhow::Result<Mailer> {
        let mut mailer = Mailer {
            queue: None,
            store: store.clone(),
            clock: clock.clone(),
        };
        if !config.is_configured() {
            return Ok(mailer);
        }
        let builder = match config.security {
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)?,
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
        };
        let mut builder = builder
            .port(config.effective_port())
            .timeout(Some(config.timeout.as_std()))
            .hello_name(ClientId::Domain(public_host.to_owned()));
        if !config.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.username.clone(),
                config.password.clone(),
            ));
        }
        let relay = Relay {
            transport: builder.build(),
            from: config
                .from
                .parse()
                .map_err(|_| anyhow::anyhow!("smtp.from is not a mail address"))?,
            domain: public_host.to_owned(),
            max_attempts: config.max_attempts.max(1),
            backoff: config.backoff.as_std(),
        };
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run_worker(receiver, Arc::new(relay), store, clock));
        mailer.queue = Some(sender);
        Ok(mailer)
    }

    /// Whether mail goes out at all (`[smtp]` is configured).
    pub fn is_enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues a mail; returns at once. A full queue drops it, audited.
    pub fn send(&self, mail: Mail) {
        let Some(queue) = &self.queue else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(mail)) = queue.try_send(mail) {
            tracing::warn!(purpose = mail.purpose, "mail queue full; mail dropped");
            let (store, now) = (self.store.clone(), self.clock.now());
            tokio::task::spawn_blocking(move || {
                audit_attempt(
                    &store,
                    AuditRecord::new(AuditKind::EmailFailed, now, &RequestOrigin::default()),
                    &mail,
                    0,
                    serde_json::json!({"reason": "queue_full", "final": true}),
                )
            });
        }
    }
}

fn audit_attempt(
    store: &Store,
    record: AuditRecord,
    mail: &Mail,
    attempt: u32,
    extra: serde_json::Value,
) {
    let mut details = serde_json::json!({"purpose": mail.purpose, "attempt": attempt});
    if let (Some(details), Some(extra)) = (details.as_object_mut(), extra.as_object()) {
        details.extend(extra.clone());
    }
    let record = record.user(mail.user_id).details(details);
    if let Err(error) = store.write(|txn| txn.audit(record)) {
        tracing::warn!(%error, "could not audit a mail attempt");
    }
}

async fn run_worker(
    mut receiver: mpsc::Receiver<Mail>,
    relay: Arc<Relay>,
    store: Arc<Store>,
    clock: Clock,
) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(mail) = receiver.recv().await {
        // Waiting here is the back-pressure: the queue fills behind it.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (relay, store, clock) = (relay.clone(), store.clone(), clock.clone());
        tokio::spawn(async move {
            deliver(&relay, &store, &clock, mail).await;
            drop(permit);
        });
    }
}

async fn deliver(relay: &Relay, store: &Arc<Store>, clock: &Clock, mail: Mail) {
    let message = match relay.message(&mail) {
        Ok(message) => message,
        Err(reason) => {
            let store = store.clone();
            let record = AuditRecord::new(
                AuditKind::EmailFailed,
                clock.now(),
                &RequestOrigin::default(),
            );
            let _ = tokio::task::spawn_blocking(move || {
                audit_attempt(
                    &store,
                    record,
                    &mail,
                    0,
                    serde_json::json!({"reason": reason, "final": true}),
                )
            })
            .await;
            return;
        }
    };
    let mail = Arc::new(mail);
    let mut pause = relay.backoff;
    for attempt in 1..=relay.max_attempts {
        let outcome = relay.transport.send(message.clone()).await;
        let last = attempt == relay.max_attempts;
        let (kind, details) = match &outcome {
            Ok(_) => (AuditKind::EmailSent, serde_json::json!({})),
            Err(error) => (
                AuditKind::EmailFailed,
                serde_json::json!({"reason": failure_reason(error), "final": last}),
            ),
        };
        let record = AuditRecord::new(kind, clock.now(), &RequestOrigin::default());
        let (store, audited) = (store.clone(), mail.clone());
        let _ = tokio::task::spawn_blocking(move || {
            audit_attempt(&store, record, &audited, attempt, details)
        })
        .await;
        match outcome {
            Ok(_) => return,
            Err(_) if last => {
                tracing::warn!(
                    purpose = mail.purpose,
                    attempts = attempt,
                    "mail delivery failed"
                );
                return;
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// A short class of an SMTP failure for the audit: never the relay's text,
/// which may quote the recipient.
fn failure_reason(error: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = error.status() {
        return format!("smtp_{code}");
    }
    if error.is_timeout() {
        "timeout".to_owned()
    } else if error.is_tls() {
        "tls".to_owned()
    } else {
        "connection".to_owned()
    }
}

impl Relay {
    fn message(&self, mail: &Mail) -> Result<Message, &'static str> {
        let to: Mailbox = mail.to.parse().map_err(|_| "bad_recipient")?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{}@{}>", ulid::Ulid::new(), self.domain)))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|_| "bad_message")
    }
}
