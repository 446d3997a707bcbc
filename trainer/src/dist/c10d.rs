//! The safe side of the c10d shim (`csrc/c10d_shim.cpp`): a Gloo process group and the two
//! collectives advlens uses (all-reduce, broadcast). Every C++ failure comes back as an error with c10d's message.

use anyhow::{bail, Result};
use tch::Tensor;

/// Where and how to join: what torchrun's environment says (see [`super::Launch`]).
pub struct Rendezvous<'a> {
    pub host: &'a str,
    pub port: u16,
    pub rank: usize,
    pub world: usize,
    /// torchrun's agent hosts the store; every rank connects as a client.
    pub agent_store: bool,
    /// torchrun's restart count: keys of an earlier attempt are never read.
    pub attempt: u32,
    /// The interface Gloo binds (GLOO_SOCKET_IFNAME); empty: the hostname's, or loopback.
    pub interface: &'a str,
    /// How long any collective (and the rendezvous) may wait for the other ranks.
    pub timeout_ms: u64,
}

/// How [`Group::all_reduce`] combines the ranks' values.
#[derive(Clone, Copy, Debug)]
pub enum Reduce {
    Sum = 0,
    Min = 1,
    Max = 2,
}

#[cfg(advlens_c10d)]
mod ffi {
    use std::os::raw::{c_char, c_int, c_void};

    use tch::Tensor;

    // `Tensor::as_ptr` is a `*const C_tensor`, which is `at::Tensor*` on the C++ side.
    pub type TensorPtr = *const torch_sys::C_tensor;

    extern "C" {
        pub fn advlens_c10d_init(
            host: *const c_char,
            port: u16,
            rank: c_int,
            world: c_int,
            agent_store: c_int,
            attempt: c_int,
            iface: *const c_char,
            timeout_ms: i64,
            err: *mut c_char,
            err_len: usize,
        ) -> *mut c_void;
        pub fn advlens_c10d_free(handle: *mut c_void);
        pub fn advlens_c10d_allreduce(
            handle: *mut c_void,
            tensors: *const TensorPtr,
            n: usize,
            op: c_int,
            bucket_bytes: i64,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn advlens_c10d_broadcast(handle: *mut c_void, tensors: *const TensorPtr, n: usize, root: c_int, bucket_bytes: i64, err: *mut c_char, err_len: usize) -> c_int;
    }

    pub fn pointers(tensors: &[&Tensor]) -> Vec<TensorPtr> {
        tensors.iter().map(|t| t.as_ptr()).collect()
    }
}

/// DDP's default bucket: large enough that a small model is one collective per step (each
/// collective costs ~2 ms on loopback, whatever its size up to a few MB).
#[cfg(advlens_c10d)]
const BUCKET_BYTES: i64 = 25 << 20;

/// A joined Gloo process group. Dropping it leaves the group.
pub struct Group {
    #[cfg(advlens_c10d)]
    handle: *mut std::os::raw::c_void,
}

#[cfg(advlens_c10d)]
impl Group {
    pub fn join(r: &Rendezvous) -> Result<Group> {
        let host = std::ffi::CString::new(r.host)?;
        let iface = std::ffi::CString::new(r.interface)?;
        let mut err = ErrorBuffer::new();
        // SAFETY: plain values and NUL-terminated strings that outlive the call; the shim
        // catches every exception.
        let handle = unsafe {
            ffi::advlens_c10d_init(
                host.as_ptr(),
                r.port,
                r.rank as i32,
                r.world as i32,
                i32::from(r.agent_store),
                r.attempt as i32,
                iface.as_ptr(),
                r.timeout_ms as i64,
                err.ptr(),
                err.len(),
            )
        };
        if handle.is_null() {
            bail!("joining the process group at {}:{} as rank {} of {} failed: {}", r.host, r.port, r.rank, r.world, err.text());
        }
        Ok(Group { handle })
    }

    /// Reduces `tensors` in place across the ranks (several per collective, in buckets).
    pub fn all_reduce(&self, tensors: &[&Tensor], op: Reduce) -> Result<()> {
        let ptrs = ffi::pointers(tensors);
        let mut err = ErrorBuffer::new();
        // SAFETY: the pointers are live tensors borrowed for the call.
        let rc = unsafe { ffi::advlens_c10d_allreduce(self.handle, ptrs.as_ptr(), ptrs.len(), op as i32, BUCKET_BYTES, err.ptr(), err.len()) };
        err.check(rc, "all-reduce")
    }

    /// Overwrites `tensors` with rank `root`'s.
    pub fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<()> {
        let ptrs = ffi::pointers(tensors);
        let mut err = ErrorBuffer::new();
        // SAFETY: as in all_reduce.
        let rc = unsafe { ffi::advlens_c10d_broadcast(self.handle, ptrs.as_ptr(), ptrs.len(), root as i32, BUCKET_BYTES, err.ptr(), err.len()) };
        err.check(rc, "broadcast")
    }

}

#[cfg(advlens_c10d)]
impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: made by advlens_c10d_init, freed once.
        unsafe { ffi::advlens_c10d_free(self.handle) }
    }
}

#[cfg(not(advlens_c10d))]
impl Group {
    pub fn join(_: &Rendezvous) -> Result<Group> {
        bail!(
            "this advlens was built without distributed support (gloo's headers were missing at build time): \
             install them (Debian: apt-get install libgloo-dev, or scripts/setup.sh all) and rebuild"
        )
    }
    pub fn all_reduce(&self, _: &[&Tensor], _: Reduce) -> Result<()> {
        unreachable!("no Group exists without c10d")
    }
    pub fn broadcast(&self, _: &[&Tensor], _: usize) -> Result<()> {
        unreachable!("no Group exists without c10d")
    }
}

#[cfg(advlens_c10d)]
struct ErrorBuffer(Vec<u8>);

#[cfg(advlens_c10d)]
impl ErrorBuffer {
    fn new() -> Self {
        Self(vec![0; 4096])
    }
    fn ptr(&mut self) -> *mut std::os::raw::c_char {
        self.0.as_mut_ptr().cast()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn text(&self) -> String {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        String::from_utf8_lossy(&self.0[..end]).trim().to_string()
    }
    fn check(&self, rc: i32, what: &str) -> Result<()> {
        if rc != 0 {
            let text = self.text();
            let why = if text.contains("timed out") || text.contains("Timed out") {
                "another rank stopped answering within --dist-timeout (hung, stopped, or much slower)"
            } else {
                "another rank crashed, was killed or lost its connection; its log says why"
            };
            bail!("{what} across the ranks failed: {why} ({text})");
        }
        Ok(())
    }
}
