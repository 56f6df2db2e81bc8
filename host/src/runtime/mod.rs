pub mod bindings;
pub mod error;
pub mod limits;
pub mod store;
pub struct HostServices {
    pub http: crate::capabilities::http::HttpClient,
    pub tls: crate::capabilities::socket::TlsSettings,
}
