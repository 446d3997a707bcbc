//! The compute worker: a Web Worker that runs the model with [`Lab`] so that the page never
//! blocks, and the loop that answers requests one at a time (also used on the main thread when
//! no worker can start).

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::StreamExt;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::lab::Lab;
use crate::protocol::{Envelope, WorkerMessage};

/// Entry point of the worker script (see `client.rs`): takes requests from `postMessage`.
#[wasm_bindgen(js_name = workerMain)]
pub fn worker_main() {
    let Ok(scope) = js_sys::global().dyn_into::<web_sys::DedicatedWorkerGlobalScope>() else {
        web_sys::console::error_1(&"workerMain() runs only inside a dedicated worker".into());
        return;
    };
    let post = {
        let scope = scope.clone();
        move |message: WorkerMessage| post_json(&scope, &message)
    };
    {
        let scope = scope.clone();
        std::panic::set_hook(Box::new(move |info| {
            console_error_panic_hook::hook(info);
            post_json(&scope, &WorkerMessage::Panicked(info.to_string()));
        }));
    }
    let (tx, rx) = futures_channel::mpsc::unbounded::<String>();
    let onmessage = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
        if let Some(text) = e.data().as_string() {
            let _ = tx.unbounded_send(text);
        }
    });
    scope.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget(); // lives as long as the worker
    wasm_bindgen_futures::spawn_local(serve(rx, post.clone()));
    post(WorkerMessage::Ready);
}

fn post_json(scope: &web_sys::DedicatedWorkerGlobalScope, message: &WorkerMessage) {
    match serde_json::to_string(message) {
        Ok(text) => {
            let _ = scope.post_message(&text.into());
        }
        Err(e) => web_sys::console::error_1(&format!("cannot encode a worker message: {e}").into()),
    }
}

/// Answers the JSON-encoded [`Envelope`]s from `requests` in order, one at a time: the engine
/// never sees two calls at once, whatever the page sends.
pub async fn serve(mut requests: UnboundedReceiver<String>, post: impl Fn(WorkerMessage)) {
    let mut lab = Lab::default();
    while let Some(text) = requests.next().await {
        match serde_json::from_str::<Envelope>(&text) {
            Ok(Envelope { id, request }) => {
                let result = lab.handle(request, &mut |done, total| post(WorkerMessage::Progress { id, done, total })).await;
                if let Some((engine, description, reason)) = lab.take_change() {
                    post(WorkerMessage::EngineChanged { engine, description, reason });
                }
                post(WorkerMessage::Done { id, result });
            }
            Err(e) => web_sys::console::error_1(&format!("the compute worker got a malformed request: {e}").into()),
        }
    }
}
