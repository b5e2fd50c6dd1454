//! The bindings `wit-bindgen` generates from `wit/plugin.wit`.
//!
//! Public only because the `export!` macro generated here expands inside plugin crates and
//! must name these types; plugin authors never see them (the whole path is `#[doc(hidden)]`
//! under `weft_sdk::__private`).

wit_bindgen::generate!({
    path: "../wit",
    world: "weft:plugin/task",
    generate_all,
    pub_export_macro: true,
    export_macro_name: "export",
    runtime_path: "weft_sdk::__private::wit_bindgen::rt",
});
