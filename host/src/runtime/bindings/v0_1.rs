//! Bindings for contract line 0.1 (`webcare:connector@0.1.x`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "channel-connector",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "webcare:connector/socket.connection": crate::capabilities::socket::Connection,
    },
});

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Func, InstancePre, Resource, TypedFunc};

use self::webcare::connector::{clock, config, http, log, socket, state, types};
use super::{Call, Reply};
use crate::capabilities::StateError as CapStateError;
use crate::capabilities::http as cap_http;
use crate::capabilities::log::{Level, Source};
use crate::capabilities::socket::{Connection, SocketError as CapSocketError};
use crate::model;
use crate::runtime::error::PanicReport;
use crate::runtime::store::StoreState;

/// Pre-linked factory for v0.1 instances.
///
/// The generated `ChannelConnectorPre` type-checks all four exports on every
/// instantiation, which costs several microseconds for records this size.
/// The types of a component's exports never change, so they are checked on
/// the first instance of each plugin only; later instances look the
/// functions up by pre-computed index.
#[derive(Clone)]
pub struct Pre {
    instance_pre: InstancePre<StoreState>,
    describe: ComponentExportIndex,
    poll: ComponentExportIndex,
    handle_webhook: ComponentExportIndex,
    perform: ComponentExportIndex,
    typechecked: Arc<OnceLock<()>>,
}

/// The exported functions of one live instance.
pub struct Exports {
    describe: Func,
    poll: Func,
    handle_webhook: Func,
    perform: Func,
}

type DescribeFn = TypedFunc<(), (types::PluginInfo,)>;
type PollFn = TypedFunc<(Option<String>,), (Result<types::Batch, types::ConnectorError>,)>;
type WebhookFn =
    TypedFunc<(types::WebhookRequest,), (Result<types::WebhookOutcome, types::ConnectorError>,)>;
type PerformFn = TypedFunc<
    (types::Action, types::ActionTarget),
    (Result<types::ActionResult, types::ConnectorError>,),
>;

impl Pre {
    /// `export` is the plugin's connector export as it named it
    /// (`webcare:connector/connector@0.1.x`).
    pub fn new(instance_pre: InstancePre<StoreState>, export: &str) -> wasmtime::Result<Pre> {
        let component = instance_pre.component();
        let interface = component
            .get_export_index(None, export)
            .ok_or_else(|| wasmtime::format_err!("no exported instance named `{export}`"))?;
        let lookup = |name: &str| {
            component
                .get_export_index(Some(&interface), name)
                .ok_or_else(|| wasmtime::format_err!("`{export}` does not export `{name}`"))
        };
        Ok(Pre {
            describe: lookup("describe")?,
            poll: lookup("poll")?,
            handle_webhook: lookup("handle-webhook")?,
            perform: lookup("perform")?,
            instance_pre,
            typechecked: Arc::default(),
        })
    }

    pub async fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Exports> {
        let instance = self.instance_pre.instantiate_async(&mut *store).await?;
        if self.typechecked.get().is_none() {
            instance.get_typed_func::<(), (types::PluginInfo,)>(&mut *store, &self.describe)?;
            instance
                .get_typed_func::<(Option<&str>,), (Result<types::Batch, types::ConnectorError>,)>(
                    &mut *store,
                    &self.poll,
                )?;
            instance.get_typed_func::<(&types::WebhookRequest,), (Result<types::WebhookOutcome, types::ConnectorError>,)>(
                &mut *store,
                &self.handle_webhook,
            )?;
            instance.get_typed_func::<(&types::Action, &types::ActionTarget), (Result<types::ActionResult, types::ConnectorError>,)>(
                &mut *store,
                &self.perform,
            )?;
            let _ = self.typechecked.set(());
        }
        let func = |store: &mut Store<StoreState>, index: &ComponentExportIndex| {
            instance.get_func(&mut *store, index).ok_or_else(|| {
                wasmtime::format_err!("instance lost an export it was checked to have")
            })
        };
        Ok(Exports {
            describe: func(store, &self.describe)?,
            poll: func(store, &self.poll)?,
            handle_webhook: func(store, &self.handle_webhook)?,
            perform: func(store, &self.perform)?,
        })
    }
}

/// Runs one call on a v0.1 instance.
pub async fn dispatch(
    exports: &Exports,
    store: &mut Store<StoreState>,
    call: Call,
) -> wasmtime::Result<Result<Reply, model::ConnectorError>> {
    // SAFETY (all four): `Pre::instantiate` type-checked these exports with
    // the same Rust types on the plugin's first instance, and a component's
    // export types cannot change between its instances.
    Ok(match call {
        Call::Describe => {
            let f: DescribeFn = unsafe { TypedFunc::new_unchecked(exports.describe) };
            let (info,) = f.call_async(&mut *store, ()).await?;
            Ok(Reply::Describe(info.into()))
        }
        Call::Poll(cursor) => {
            let f: PollFn = unsafe { TypedFunc::new_unchecked(exports.poll) };
            let (result,) = f.call_async(&mut *store, (cursor,)).await?;
            result.map(|b| Reply::Poll(b.into())).map_err(Into::into)
        }
        Call::Webhook(request) => {
            let f: WebhookFn = unsafe { TypedFunc::new_unchecked(exports.handle_webhook) };
            let (result,) = f.call_async(&mut *store, (request.into(),)).await?;
            result.map(|o| Reply::Webhook(o.into())).map_err(Into::into)
        }
        Call::Perform(boxed) => {
            let (action, target) = *boxed;
            let f: PerformFn = unsafe { TypedFunc::new_unchecked(exports.perform) };
            let (result,) = f
                .call_async(&mut *store, (action.into(), target.into()))
                .await?;
            result.map(|r| Reply::Perform(r.into())).map_err(Into::into)
        }
    })
}

// ---- imports -------------------------------------------------------------

impl types::Host for StoreState {}

impl http::Host for StoreState {
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let request = cap_http::Request {
            method: match request.method {
                http::Method::Get => cap_http::Method::Get,
                http::Method::Head => cap_http::Method::Head,
                http::Method::Post => cap_http::Method::Post,
                http::Method::Put => cap_http::Method::Put,
                http::Method::Patch => cap_http::Method::Patch,
                http::Method::Delete => cap_http::Method::Delete,
                http::Method::Options => cap_http::Method::Options,
            },
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout: request
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into())),
        };
        let grants = self.grants.clone();
        let client = self.services.http.clone();
        let result = self
            .host_io(client.send(&grants.allow_list, &grants.io, request))
            .await;
        Ok(match result {
            Ok(r) => Ok(http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(e) => {
                tracing::debug!(brand = %grants.id.brand, connector = %grants.id.connector, "plugin http request failed: {e}");
                Err(match e {
                    cap_http::HttpError::Denied(url) => {
                        tracing::warn!(brand = %grants.id.brand, connector = %grants.id.connector, destination = %url, "allow-list refused an http request");
                        self.call.denied.get_or_insert(url.clone());
                        http::HttpError::Denied(url)
                    }
                    cap_http::HttpError::Timeout => http::HttpError::Timeout,
                    cap_http::HttpError::TooLarge(n) => http::HttpError::TooLarge(n),
                    cap_http::HttpError::Connection(m) => http::HttpError::Connection(m),
                    cap_http::HttpError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
                    cap_http::HttpError::TooManyRedirects => http::HttpError::TooManyRedirects,
                })
            }
        })
    }
}

fn socket_error(e: CapSocketError) -> socket::SocketError {
    match e {
        CapSocketError::Denied(m) => socket::SocketError::Denied(m),
        CapSocketError::Timeout => socket::SocketError::Timeout,
        CapSocketError::Connection(m) => socket::SocketError::Connection(m),
        CapSocketError::InvalidState(m) => socket::SocketError::InvalidState(m),
    }
}

impl socket::Host for StoreState {
    async fn connect(
        &mut self,
        host: String,
        port: u16,
        tls: socket::TlsMode,
        timeout_ms: Option<u32>,
    ) -> wasmtime::Result<Result<Resource<Connection>, socket::SocketError>> {
        if self.sockets_open >= self.grants.io.max_sockets {
            return Ok(Err(socket::SocketError::InvalidState(format!(
                "at most {} sockets may be open at once",
                self.grants.io.max_sockets
            ))));
        }
        let grants = self.grants.clone();
        let tls_settings = self.services.tls.clone();
        let timeout = timeout_ms.map_or(grants.io.io_timeout, |ms| {
            Duration::from_millis(ms.into()).min(grants.io.io_timeout)
        });
        let implicit = matches!(tls, socket::TlsMode::Implicit);
        let result = self
            .host_io(Connection::connect(
                &grants.allow_list,
                &tls_settings,
                &host,
                port,
                implicit,
                timeout,
            ))
            .await;
        match result {
            Ok(conn) => {
                self.sockets_open += 1;
                Ok(Ok(self.table().push(conn)?))
            }
            Err(e) => {
                if let CapSocketError::Denied(dest) = &e {
                    tracing::warn!(brand = %grants.id.brand, connector = %grants.id.connector, destination = %dest, "allow-list refused a socket");
                    self.call.denied.get_or_insert(format!("tcp://{dest}"));
                }
                Ok(Err(socket_error(e)))
            }
        }
    }
}

impl socket::HostConnection for StoreState {
    async fn read(
        &mut self,
        conn: Resource<Connection>,
        max_bytes: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, socket::SocketError>> {
        let start = std::time::Instant::now();
        let result = self.table().get_mut(&conn)?.read(max_bytes).await;
        self.call.host_wait += start.elapsed();
        Ok(result.map_err(socket_error))
    }

    async fn write(
        &mut self,
        conn: Resource<Connection>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), socket::SocketError>> {
        let start = std::time::Instant::now();
        let result = self.table().get_mut(&conn)?.write(&data).await;
        self.call.host_wait += start.elapsed();
        Ok(result.map_err(socket_error))
    }

    async fn start_tls(
        &mut self,
        conn: Resource<Connection>,
    ) -> wasmtime::Result<Result<(), socket::SocketError>> {
        let start = std::time::Instant::now();
        let result = self.table().get_mut(&conn)?.start_tls().await;
        self.call.host_wait += start.elapsed();
        Ok(result.map_err(socket_error))
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.table().delete(conn)?;
        self.sockets_open = self.sockets_open.saturating_sub(1);
        Ok(())
    }
}

impl log::Host for StoreState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        self.log.line(level, Source::Log, &message);
        Ok(())
    }

    async fn report_panic(
        &mut self,
        message: String,
        location: Option<String>,
    ) -> wasmtime::Result<()> {
        let redact = |s: &str| self.grants.redactor.redact(s);
        let report = PanicReport {
            message: redact(&message),
            location: location.as_deref().map(redact),
        };
        self.call.panic.get_or_insert(report);
        Ok(())
    }
}

impl state::Host for StoreState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, state::StateError>> {
        Ok(self
            .grants
            .state
            .get(&self.grants.id, &key)
            .map_err(state_error))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), state::StateError>> {
        Ok(self
            .grants
            .state
            .set(&self.grants.id, &key, &value)
            .map_err(state_error))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), state::StateError>> {
        Ok(self
            .grants
            .state
            .delete(&self.grants.id, &key)
            .map_err(state_error))
    }
}

fn state_error(e: CapStateError) -> state::StateError {
    match e {
        CapStateError::TooLarge(m) => state::StateError::TooLarge(m),
        CapStateError::Unavailable(m) => state::StateError::Unavailable(m),
    }
}

impl config::Host for StoreState {
    async fn context(&mut self) -> wasmtime::Result<config::ConnectorContext> {
        Ok(config::ConnectorContext {
            brand_id: self.grants.id.brand.clone(),
            connector_id: self.grants.id.connector.clone(),
        })
    }

    async fn get_setting(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.grants.settings.get(&name).cloned())
    }

    async fn get_secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .grants
            .secrets
            .get(&name)
            .map(|s| s.expose().to_string()))
    }
}

impl clock::Host for StoreState {
    async fn now(&mut self) -> wasmtime::Result<types::TimestampMs> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
    }
}

// ---- conversions: contract 0.1 <-> host model ------------------------------

macro_rules! same_enum {
    ($from:ty => $to:ty { $($v:ident),* $(,)? }) => {
        impl From<$from> for $to {
            fn from(v: $from) -> Self {
                match v { $(<$from>::$v => <$to>::$v),* }
            }
        }
        impl From<$to> for $from {
            fn from(v: $to) -> Self {
                match v { $(<$to>::$v => <$from>::$v),* }
            }
        }
    };
}

/// `From` both ways between two records with the same field names, each
/// field converted with `Into` (identity for same types).
macro_rules! same_record {
    ($a:ty, $b:ty { $($f:ident),* $(,)? }) => {
        impl From<$a> for $b {
            fn from(v: $a) -> Self {
                Self { $($f: v.$f.into()),* }
            }
        }
        impl From<$b> for $a {
            fn from(v: $b) -> Self {
                Self { $($f: v.$f.into()),* }
            }
        }
    };
}

same_record!(
    types::Author,
    model::Author {
        id,
        handle,
        display_name,
        followers,
        verified,
        profile_url,
        email
    }
);
same_record!(
    types::Attachment,
    model::Attachment {
        kind,
        url,
        mime_type,
        name,
        size_bytes,
        alt_text
    }
);
same_record!(
    types::Removal,
    model::Removal {
        external_id,
        thread_id,
        at,
        by
    }
);
same_record!(
    types::ActionResult,
    model::ActionResult {
        external_id,
        permalink
    }
);

same_enum!(types::MessageKind => model::MessageKind { Mention, Comment, Reply, DirectMessage, Post, Email, Review });
same_enum!(types::Visibility => model::Visibility { Public, Private });
same_enum!(types::Direction => model::Direction { Inbound, Outbound });
same_enum!(types::AttachmentKind => model::AttachmentKind { Image, Video, Audio, File, Link });
same_enum!(types::Feature => model::Feature { Poll, Webhook, Reply, PrivateReply, React, Hide, Unhide });
same_enum!(types::SettingType => model::SettingType { Text, Integer, Boolean, Url, TextList });

impl From<types::Message> for model::Message {
    fn from(m: types::Message) -> Self {
        model::Message {
            external_id: m.external_id,
            thread_id: m.thread_id,
            in_reply_to: m.in_reply_to,
            kind: m.kind.into(),
            visibility: m.visibility.into(),
            direction: m.direction.into(),
            addressed_to_brand: m.addressed_to_brand,
            author: m.author.into(),
            text: m.text,
            html: m.html,
            subject: m.subject,
            language: m.language,
            created_at: m.created_at,
            permalink: m.permalink,
            attachments: m.attachments.into_iter().map(Into::into).collect(),
            metrics: model::Engagement {
                likes: m.metrics.likes,
                shares: m.metrics.shares,
                replies: m.metrics.replies,
            },
            properties: m.properties,
        }
    }
}

impl From<types::MessageUpdate> for model::MessageUpdate {
    fn from(u: types::MessageUpdate) -> Self {
        match u {
            types::MessageUpdate::Edited(m) => model::MessageUpdate::Edited(Box::new(m.into())),
            types::MessageUpdate::Deleted(r) => model::MessageUpdate::Deleted(r.into()),
            types::MessageUpdate::Hidden(r) => model::MessageUpdate::Hidden(r.into()),
            types::MessageUpdate::Unhidden(r) => model::MessageUpdate::Unhidden(r.into()),
        }
    }
}

impl From<types::Batch> for model::Batch {
    fn from(b: types::Batch) -> Self {
        model::Batch {
            messages: b.messages.into_iter().map(Into::into).collect(),
            updates: b.updates.into_iter().map(Into::into).collect(),
            next_cursor: b.next_cursor,
            has_more: b.has_more,
            retry_after_ms: b.retry_after_ms,
        }
    }
}

impl From<model::WebhookRequest> for types::WebhookRequest {
    fn from(r: model::WebhookRequest) -> Self {
        types::WebhookRequest {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl From<types::WebhookOutcome> for model::WebhookOutcome {
    fn from(o: types::WebhookOutcome) -> Self {
        model::WebhookOutcome {
            response: model::WebhookResponse {
                status: o.response.status,
                headers: o.response.headers,
                body: o.response.body,
            },
            messages: o.messages.into_iter().map(Into::into).collect(),
            updates: o.updates.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<model::ActionTarget> for types::ActionTarget {
    fn from(t: model::ActionTarget) -> Self {
        types::ActionTarget {
            external_id: t.external_id,
            thread_id: t.thread_id,
            kind: t.kind.into(),
            visibility: t.visibility.into(),
            author: t.author.into(),
            created_at: t.created_at,
            last_inbound_at: t.last_inbound_at,
            subject: t.subject,
            properties: t.properties,
        }
    }
}

impl From<model::Outgoing> for types::Outgoing {
    fn from(o: model::Outgoing) -> Self {
        types::Outgoing {
            text: o.text,
            attachments: o.attachments.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<model::Action> for types::Action {
    fn from(a: model::Action) -> Self {
        types::Action {
            idempotency_key: a.idempotency_key,
            kind: match a.kind {
                model::ActionKind::Reply(o) => types::ActionKind::Reply(o.into()),
                model::ActionKind::PrivateReply(o) => types::ActionKind::PrivateReply(o.into()),
                model::ActionKind::React(r) => types::ActionKind::React(r),
                model::ActionKind::Hide => types::ActionKind::Hide,
                model::ActionKind::Unhide => types::ActionKind::Unhide,
            },
        }
    }
}

impl From<types::SettingSpec> for model::SettingSpec {
    fn from(s: types::SettingSpec) -> Self {
        model::SettingSpec {
            name: s.name,
            description: s.description,
            setting_type: s.setting_type.into(),
            required: s.required,
            default_value: s.default_value,
            secret: s.secret,
        }
    }
}

impl From<types::PluginInfo> for model::PluginInfo {
    fn from(i: types::PluginInfo) -> Self {
        model::PluginInfo {
            name: i.name,
            version: i.version,
            channel: i.channel,
            description: i.description,
            features: i.features.into_iter().map(Into::into).collect(),
            settings: i.settings.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<types::ConnectorError> for model::ConnectorError {
    fn from(e: types::ConnectorError) -> Self {
        match e {
            types::ConnectorError::RateLimited(r) => model::ConnectorError::RateLimited {
                retry_after_ms: r.retry_after_ms,
                detail: r.detail,
            },
            types::ConnectorError::Unauthorized(a) => model::ConnectorError::Unauthorized {
                detail: a.detail,
                expired: a.expired,
                missing_scope: a.missing_scope,
            },
            types::ConnectorError::Transient(detail) => model::ConnectorError::Transient { detail },
            types::ConnectorError::InvalidInput(detail) => {
                model::ConnectorError::InvalidInput { detail }
            }
            types::ConnectorError::Unsupported(detail) => {
                model::ConnectorError::Unsupported { detail }
            }
            types::ConnectorError::NotAllowed(detail) => {
                model::ConnectorError::NotAllowed { detail }
            }
        }
    }
}
