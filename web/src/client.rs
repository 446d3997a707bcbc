//! The page's handle on the compute worker: `request(..).await` sends a [`Request`] and waits
//! for its [`Reply`]. The worker is a module Web Worker running this same wasm module; when the
//! browser cannot start one, the same request loop runs on the main thread and the page says so.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::{mpsc, oneshot};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::config::WORKER_START_TIMEOUT_MS;
use crate::fetch::js_message;
use crate::protocol::{Envelope, Reply, Request, WorkerMessage};

#[wasm_bindgen]
extern "C" {
    /// The URL of the JavaScript module wasm-bindgen generated for this crate: the worker
    /// imports the same module.
    #[wasm_bindgen(thread_local_v2, js_namespace = ["import", "meta"], js_name = url)]
    static SCRIPT_URL: String;
}

type Pending = RefCell<HashMap<u32, oneshot::Sender<Result<Reply, String>>>>;
/// What to call with `(done, total)` when a request reports progress.
pub type OnProgress = Rc<dyn Fn(usize, usize)>;

enum Transport {
    Worker(web_sys::Worker),
    MainThread(mpsc::UnboundedSender<String>),
}

struct Inner {
    next_id: Cell<u32>,
    pending: Pending,
    progress: RefCell<HashMap<u32, OnProgress>>,
    transport: RefCell<Option<Transport>>,
    /// Set when the worker died: every later request fails with it.
    broken: RefCell<Option<String>>,
    /// Told when the worker moves to another engine (a lost GPU device).
    on_engine_change: RefCell<Option<OnEngineChange>>,
}

/// Called with the new engine (`cpu`), its description and why it changed.
pub type OnEngineChange = Rc<dyn Fn(&str, &str, &str)>;

impl Inner {
    fn deliver(&self, message: WorkerMessage) {
        match message {
            WorkerMessage::Ready => {}
            WorkerMessage::Done { id, result } => {
                self.progress.borrow_mut().remove(&id);
                if let Some(tx) = self.pending.borrow_mut().remove(&id) {
                    let _ = tx.send(result);
                }
            }
            WorkerMessage::Progress { id, done, total } => {
                let report = self.progress.borrow().get(&id).cloned();
                if let Some(report) = report {
                    report(done, total);
                }
            }
            WorkerMessage::EngineChanged { engine, description, reason } => {
                let listener = self.on_engine_change.borrow().clone();
                if let Some(listener) = listener {
                    listener(&engine, &description, &reason);
                }
            }
            WorkerMessage::Panicked(why) => self.break_with(format!("the compute worker hit a bug and stopped ({why}); reload the page")),
        }
    }

    fn break_with(&self, why: String) {
        self.fail_pending(&why);
        *self.broken.borrow_mut() = Some(why);
    }

    /// Answers every waiting request with the error `why`.
    fn fail_pending(&self, why: &str) {
        self.progress.borrow_mut().clear();
        let waiting: Vec<_> = self.pending.borrow_mut().drain().collect();
        for (_, tx) in waiting {
            let _ = tx.send(Err(why.to_string()));
        }
    }
}

/// Where the model runs, and how to ask it.
#[derive(Clone)]
pub struct Compute {
    inner: Rc<Inner>,
    /// `None` in a worker; otherwise why the main thread computes.
    pub main_thread_reason: Option<String>,
}

impl Compute {
    /// Starts the worker, or the main-thread loop when no worker starts.
    pub async fn start() -> Compute {
        let inner = Rc::new(Inner {
            next_id: Cell::new(0),
            pending: RefCell::new(HashMap::new()),
            progress: RefCell::new(HashMap::new()),
            transport: RefCell::new(None),
            broken: RefCell::new(None),
            on_engine_change: RefCell::new(None),
        });
        match start_worker(&inner).await {
            Ok(worker) => {
                *inner.transport.borrow_mut() = Some(Transport::Worker(worker));
                Compute { inner, main_thread_reason: None }
            }
            Err(why) => {
                let (tx, rx) = mpsc::unbounded();
                let sink = inner.clone();
                wasm_bindgen_futures::spawn_local(crate::worker::serve(rx, move |m| sink.deliver(m)));
                *inner.transport.borrow_mut() = Some(Transport::MainThread(tx));
                Compute { inner, main_thread_reason: Some(why) }
            }
        }
    }

    /// Sends `request` and waits for its answer (requests are answered in order).
    pub async fn request(&self, request: Request) -> Result<Reply, String> {
        self.request_with_progress(request, None).await
    }

    /// [`Compute::request`], calling `on_progress` as the worker reports steps.
    pub async fn request_with_progress(&self, request: Request, on_progress: Option<OnProgress>) -> Result<Reply, String> {
        if let Some(why) = self.inner.broken.borrow().clone() {
            return Err(why);
        }
        let id = self.inner.next_id.get();
        self.inner.next_id.set(id.wrapping_add(1));
        if let Some(report) = on_progress {
            self.inner.progress.borrow_mut().insert(id, report);
        }
        let text = serde_json::to_string(&Envelope { id, request }).map_err(|e| format!("cannot encode the request: {e}"))?;
        let (tx, rx) = oneshot::channel();
        self.inner.pending.borrow_mut().insert(id, tx);
        let sent = match self.inner.transport.borrow().as_ref() {
            Some(Transport::Worker(w)) => w.post_message(&text.into()).map_err(|e| js_message(&e)),
            Some(Transport::MainThread(s)) => s.unbounded_send(text).map_err(|e| e.to_string()),
            None => Err("the compute worker has not started".into()),
        };
        if let Err(e) = sent {
            self.inner.pending.borrow_mut().remove(&id);
            return Err(format!("cannot reach the compute worker: {e}"));
        }
        rx.await.unwrap_or_else(|_| Err("the compute worker stopped".into()))
    }
}

impl Compute {
    /// Sends `request` and takes its reply apart with `pick` (which hands back any other reply).
    pub async fn ask<T>(&self, request: Request, pick: fn(Reply) -> Result<T, Reply>) -> Result<T, String> {
        self.ask_with_progress(request, None, pick).await
    }

    /// [`Compute::ask`] with progress reports.
    pub async fn ask_with_progress<T>(&self, request: Request, on_progress: Option<OnProgress>, pick: fn(Reply) -> Result<T, Reply>) -> Result<T, String> {
        let reply = self.request_with_progress(request, on_progress).await?;
        pick(reply).map_err(|other| format!("unexpected answer from the worker: {other:?}"))
    }

    /// Calls `listener` whenever the worker moves to another engine.
    pub fn on_engine_change(&self, listener: OnEngineChange) {
        *self.inner.on_engine_change.borrow_mut() = Some(listener);
    }

    /// Whether [`Compute::restart`] can stop a running computation (only a worker can be).
    pub fn can_cancel(&self) -> bool {
        matches!(self.inner.transport.borrow().as_ref(), Some(Transport::Worker(_)))
    }

    /// Stops whatever the worker computes by replacing it with a fresh one that first answers
    /// `reload` (the model again, if any); only then do the requests that were waiting fail with
    /// `why`, so that whatever the page asks next finds the model loaded.
    pub async fn restart(&self, why: &str, reload: Option<Request>) -> Result<(), String> {
        if !self.can_cancel() {
            return Err("computations on the main thread cannot be stopped".into());
        }
        let stale: Vec<_> = self.inner.pending.borrow_mut().drain().collect();
        self.inner.progress.borrow_mut().clear();
        if let Some(Transport::Worker(worker)) = self.inner.transport.borrow_mut().take() {
            worker.terminate();
        }
        let restarted = match start_worker(&self.inner).await {
            Ok(worker) => {
                *self.inner.transport.borrow_mut() = Some(Transport::Worker(worker));
                match reload {
                    Some(r) => self.request(r).await.map(|_| ()),
                    None => Ok(()),
                }
            }
            Err(e) => Err(e),
        };
        for (_, tx) in stale {
            let _ = tx.send(Err(why.to_string()));
        }
        if let Err(e) = &restarted {
            self.inner.break_with(format!("the compute worker could not restart ({e}); reload the page"));
        }
        restarted
    }
}

/// A module worker that imports this crate's JavaScript module and calls `workerMain`; resolves
/// when the worker says it is ready, or fails with the reason.
async fn start_worker(inner: &Rc<Inner>) -> Result<web_sys::Worker, String> {
    // The worker imports this module's JavaScript and instantiates the already compiled wasm
    // module it receives as its first message (no second download or compilation).
    let url = SCRIPT_URL.with(String::clone);
    let source = format!(
        "import init, {{ workerMain }} from {url:?};\n\
         self.onmessage = async (event) => {{ self.onmessage = null; await init({{ module_or_path: event.data }}); workerMain(); }};\n"
    );
    let parts = js_sys::Array::of1(&source.into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/javascript");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).map_err(|e| js_message(&e))?;
    let blob_url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| js_message(&e))?;
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    let worker = web_sys::Worker::new_with_options(&blob_url, &options).map_err(|e| format!("no Web Worker: {}", js_message(&e)))?;
    worker.post_message(&wasm_bindgen::module()).map_err(|e| format!("cannot hand the wasm module to the worker: {}", js_message(&e)))?;

    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    let ready_tx = Rc::new(RefCell::new(Some(ready_tx)));
    let settle = {
        let ready_tx = ready_tx.clone();
        move |r: Result<(), String>| {
            if let Some(tx) = ready_tx.borrow_mut().take() {
                let _ = tx.send(r);
            }
        }
    };
    let onmessage = {
        let (inner, settle) = (inner.clone(), settle.clone());
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
            let Some(text) = e.data().as_string() else { return };
            match serde_json::from_str::<WorkerMessage>(&text) {
                Ok(WorkerMessage::Ready) => settle(Ok(())),
                Ok(message) => inner.deliver(message),
                Err(e) => web_sys::console::error_1(&format!("malformed message from the compute worker: {e}").into()),
            }
        })
    };
    worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget(); // lives as long as the worker
    let onerror = {
        let (inner, settle) = (inner.clone(), settle.clone());
        Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            let why = e.dyn_ref::<web_sys::ErrorEvent>().map(|e| e.message()).filter(|m| !m.is_empty()).unwrap_or_else(|| "the worker script failed to load".into());
            settle(Err(why.clone()));
            inner.break_with(format!("the compute worker failed: {why}; reload the page"));
        })
    };
    worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
    onerror.forget();
    let timeout = Closure::<dyn FnMut()>::new(move || settle(Err(format!("the worker did not start within {} s", WORKER_START_TIMEOUT_MS / 1000))));
    if let Some(window) = web_sys::window() {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(timeout.as_ref().unchecked_ref(), WORKER_START_TIMEOUT_MS);
    }
    timeout.forget();
    let ready = ready_rx.await.unwrap_or_else(|_| Err("the worker did not start".into()));
    let _ = web_sys::Url::revoke_object_url(&blob_url);
    match ready {
        Ok(()) => {
            // A worker that fails after start-up fails its requests, not the page.
            *inner.broken.borrow_mut() = None;
            Ok(worker)
        }
        Err(why) => {
            worker.terminate();
            *inner.broken.borrow_mut() = None;
            Err(why)
        }
    }
}
