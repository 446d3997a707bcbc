//! The advlens explorer: pick a model and an image, see what every layer's neurons see, which
//! neurons caused the prediction, what each responds to in real and adversarial images, and
//! attack the image live to watch them change. The model runs in a Web Worker (WebGPU when
//! the browser has it, else the CPU engine), so the page never blocks.
//!
//! - [`app`]: URL state, navigation and what to compute when; [`state`]: the URL's values;
//!   [`listen`]: the page's delegated listeners; [`memo`]: results computed once
//! - [`client`] / [`worker`] / [`lab`]: the worker, its messages ([`protocol`]) and the model
//! - [`compare`]: a second model beside the first, in its own worker
//! - [`own_model`]: a visitor's model file and the page's limits; [`onnx_choices`]: what an ONNX file cannot say
//! - [`panels`]: the views, each building its DOM from results; [`draw`]: pure pixel functions;
//!   [`dom`]: element helpers; [`atlas`]: neuron atlases; [`config`]: every constant
//! - [`session`]: the engine as a JavaScript API for other pages; [`share`]: copy link / embed code

mod app;
mod atlas;
mod attack_params;
mod client;
mod compare;
mod concept_view;
mod config;
mod dom;
mod draw;
mod error;
mod fetch;
mod lab;
mod listen;
mod memo;
mod onnx_choices;
mod open;
mod own_image;
mod own_model;
mod panels;
mod protocol;
mod session;
mod share;
mod state;
mod worker;

pub use session::Session;
pub use worker::worker_main;

use wasm_bindgen::prelude::*;

/// Runs when the module is instantiated: in the explorer page it starts the app; in the
/// compute worker (no document) and in pages that only use [`Session`], it does nothing.
#[wasm_bindgen(start)]
pub fn start() {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    if doc.get_element_by_id("status").is_none() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        // A panic is a bug: make it visible to the user and to the end-to-end test.
        app::set_status("panic", &format!("internal error (please report): {info}"));
    }));
    wasm_bindgen_futures::spawn_local(async {
        // Start in a task of its own: the module's compilation finishes in the task that got us
        // here, and the two together took the main thread past 50 ms on the 2-core machine.
        dom::next_task().await;
        app::start().await
    });
}
