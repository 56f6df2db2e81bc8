extern crate self as webcare_plugin;
#[doc(hidden)]
pub use wit_bindgen;
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "channel-connector",
        pub_export_macro: true,
        export_macro_name: "__export_channel_connector",
        default_bindings_module: "::webcare_plugin::bindings",
        runtime_path: "::webcare_plugin::wit_bindgen::rt",
        debug: true,
    });
}
