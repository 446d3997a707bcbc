//! Results computed once per key: asking again while a computation runs waits for the same
//! one, and a failure is forgotten so that a later visit tries again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::rc::Rc;

use futures_util::future::{FutureExt, LocalBoxFuture, Shared};

type Pending<T> = Shared<LocalBoxFuture<'static, Result<Rc<T>, String>>>;

/// Results by key, each computed once even when asked for again while it is being computed.
pub struct Memo<K, T> {
    map: RefCell<HashMap<K, Pending<T>>>,
}

impl<K: Eq + Hash + Clone, T: 'static> Memo<K, T> {
    pub fn new() -> Self {
        Memo { map: RefCell::new(HashMap::new()) }
    }

    pub async fn get(&self, key: K, make: impl FnOnce() -> LocalBoxFuture<'static, Result<Rc<T>, String>>) -> Result<Rc<T>, String> {
        let pending = self.map.borrow_mut().entry(key.clone()).or_insert_with(|| make().shared()).clone();
        let result = pending.await;
        if result.is_err() {
            self.map.borrow_mut().remove(&key); // a later visit tries again
        }
        result
    }

    pub fn ready(&self, key: &K) -> Option<Rc<T>> {
        self.map.borrow().get(key).and_then(|p| p.peek().cloned()).and_then(Result::ok)
    }

    pub fn clear(&self) {
        self.map.borrow_mut().clear();
    }
}

/// The memos of different types, cleared together when the model changes.
pub trait Clear {
    fn clear_all(&self);
}

impl<K: Eq + Hash + Clone, T: 'static> Clear for Memo<K, T> {
    fn clear_all(&self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_key_is_computed_once_and_a_failure_is_retried() {
        let memo: Memo<u32, String> = Memo::new();
        let calls = Rc::new(Cell::new(0));
        let make = |ok: bool| {
            let calls = calls.clone();
            move || {
                calls.set(calls.get() + 1);
                async move { if ok { Ok(Rc::new("done".to_string())) } else { Err("failed".to_string()) } }.boxed_local()
            }
        };
        assert_eq!(memo.get(1, make(true)).now_or_never().unwrap().unwrap().as_str(), "done");
        assert_eq!(memo.get(1, make(true)).now_or_never().unwrap().unwrap().as_str(), "done");
        assert_eq!(calls.get(), 1, "the second ask reused the first result");
        assert_eq!(memo.ready(&1).as_deref().map(String::as_str), Some("done"));
        assert!(memo.get(2, make(false)).now_or_never().unwrap().is_err());
        assert!(memo.ready(&2).is_none());
        assert!(memo.get(2, make(true)).now_or_never().unwrap().is_ok(), "a failure is not kept");
        assert_eq!(calls.get(), 3);
        memo.clear_all();
        assert!(memo.ready(&1).is_none());
    }
}
