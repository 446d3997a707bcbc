//! Data-parallel runs on libtorch's c10d (Gloo), launched by torchrun.
//!
//! Every rank runs the same command. [`Launch::from_env`] reads torchrun's environment,
//! [`Team::join`] makes the process group, and the training loop uses the team to split each
//! global batch ([`Team::part`]), average gradients ([`Team::average_gradients`]), start from
//! rank 0's weights ([`Team::broadcast_net`]) and agree on errors and on stopping.
//!
//! Failures never hang: a collective waits at most the team's timeout, a dead peer fails the
//! next collective at once (its connections close), and a rank that fails before a collective
//! tells the others through [`Team::agree`].

pub mod c10d;

use std::ops::Range;

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

use crate::attack::BatchPart;
use crate::net::Net;
use crate::optim::Adam;
use c10d::{Group, Reduce, Rendezvous};

/// What torchrun (or a hand-written launcher) tells each rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    pub host: String,
    pub port: u16,
    /// TORCHELASTIC_USE_AGENT_STORE: torchrun's agent hosts the store.
    pub agent_store: bool,
    /// TORCHELASTIC_RESTART_COUNT.
    pub attempt: u32,
    /// GLOO_SOCKET_IFNAME.
    pub interface: String,
}

impl Launch {
    /// Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (and torchrun's agent
    /// variables) through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Launch> {
        let need = |name: &str| {
            var(name).with_context(|| {
                format!("--distributed needs {name} in the environment: launch with `torchrun --nproc-per-node N --no-python advlens train --distributed ...` (see docs/distributed.md)")
            })
        };
        let number = |name: &str, text: String| -> Result<usize> {
            text.trim().parse().with_context(|| format!("{name}={text} is not a non-negative integer"))
        };
        let rank = number("RANK", need("RANK")?)?;
        let world = number("WORLD_SIZE", need("WORLD_SIZE")?)?;
        if world == 0 || rank >= world {
            bail!("RANK={rank} and WORLD_SIZE={world}: the rank must be below the world size");
        }
        let local_rank = var("LOCAL_RANK").map(|t| number("LOCAL_RANK", t)).transpose()?.unwrap_or(rank);
        let host = need("MASTER_ADDR")?;
        let port_text = need("MASTER_PORT")?;
        let port = port_text.trim().parse().with_context(|| format!("MASTER_PORT={port_text} is not a port number"))?;
        let agent_store = var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let attempt = var("TORCHELASTIC_RESTART_COUNT").map(|t| number("TORCHELASTIC_RESTART_COUNT", t)).transpose()?.unwrap_or(0) as u32;
        let interface = var("GLOO_SOCKET_IFNAME").unwrap_or_default();
        Ok(Launch { rank, world, local_rank, host, port, agent_store, attempt, interface })
    }

    pub fn from_env() -> Result<Launch> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

/// This process's place in a data-parallel job.
pub struct Team {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    /// torchrun's restart count (0 on the first attempt).
    pub attempt: u32,
    group: Group,
}

impl Team {
    /// Joins the job's process group; waits at most `timeout_s` for the other ranks, here and
    /// in every later collective.
    pub fn join(launch: &Launch, timeout_s: u64) -> Result<Team> {
        let group = Group::join(&Rendezvous {
            host: &launch.host,
            port: launch.port,
            rank: launch.rank,
            world: launch.world,
            agent_store: launch.agent_store,
            attempt: launch.attempt,
            interface: &launch.interface,
            timeout_ms: timeout_s.saturating_mul(1000),
        })?;
        Ok(Team { rank: launch.rank, world: launch.world, local_rank: launch.local_rank, attempt: launch.attempt, group })
    }

    /// Rank 0 writes checkpoints, metrics and exports.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// Whether this rank handles batch `k` of a pass over images that the ranks take in turn
    /// (`eval`, `attack`, `analyze`): each batch is computed exactly as one process computes it.
    pub fn owns(&self, k: usize) -> bool {
        k % self.world == self.rank
    }

    /// This rank's rows of a batch of `len`: contiguous, sizes differing by at most one.
    pub fn rows(&self, len: usize) -> Range<usize> {
        rows(self.rank, self.world, len)
    }

    /// [`Team::rows`] as a [`BatchPart`] for the attack's random starts.
    pub fn part(&self, len: usize) -> BatchPart {
        let r = self.rows(len);
        BatchPart { offset: r.start as i64, total: len as i64 }
    }

    /// Succeeds only when every rank's `local` succeeded. A rank that failed returns its own
    /// error; the others return one naming the failed ranks. Call it where every rank is.
    pub fn agree<T>(&self, local: Result<T>) -> Result<T> {
        let failed = Tensor::zeros([self.world as i64], (Kind::Int64, tch::Device::Cpu));
        if local.is_err() {
            let _ = failed.get(self.rank as i64).fill_(1);
        }
        self.group.all_reduce(&[&failed], Reduce::Sum)?;
        let bad: Vec<usize> = (0..self.world).filter(|&r| failed.int64_value(&[r as i64]) != 0).collect();
        match local {
            Err(e) => Err(e),
            Ok(_) if !bad.is_empty() => bail!("rank {} failed (its log says why); rank {} stops too", join(&bad), self.rank),
            Ok(v) => Ok(v),
        }
    }

    /// Fails on every rank when `fingerprint` (of the configuration, the data, the model)
    /// differs from rank 0's: ranks that would silently train different things.
    pub fn check_same(&self, what: &str, fingerprint: u64) -> Result<()> {
        let mine = Tensor::from_slice(&[fingerprint as i64]);
        let theirs = mine.copy();
        self.group.broadcast(&[&theirs], 0)?;
        let local = if theirs.int64_value(&[0]) == fingerprint as i64 {
            Ok(())
        } else {
            Err(anyhow::anyhow!("rank {}'s {what} differs from rank 0's: every rank must run the same command on the same data", self.rank))
        };
        self.agree(local)
    }

    /// Rank 0's `text` on every rank (at most `max_len` bytes).
    pub fn broadcast_text(&self, text: &str, max_len: usize) -> Result<String> {
        let mut bytes = vec![0u8; max_len + 8];
        let len = text.len().min(max_len);
        bytes[..8].copy_from_slice(&(len as u64).to_le_bytes());
        bytes[8..8 + len].copy_from_slice(&text.as_bytes()[..len]);
        let t = Tensor::from_slice(&bytes);
        self.group.broadcast(&[&t], 0)?;
        let got = Vec::<u8>::try_from(&t)?;
        let n = u64::from_le_bytes(got[..8].try_into().expect("8 bytes")) as usize;
        Ok(String::from_utf8_lossy(&got[8..8 + n.min(max_len)]).into_owned())
    }

    /// Every tensor of `net` (running statistics included) and `adam`'s moments from rank 0.
    pub fn broadcast_net(&self, net: &Net, adam: &Adam) -> Result<()> {
        let mut names: Vec<&String> = net.tensors().keys().collect();
        names.sort();
        let mut list: Vec<&Tensor> = names.iter().map(|n| &net.tensors()[*n]).collect();
        list.extend(adam.m.values());
        list.extend(adam.v.values());
        tch::no_grad(|| self.group.broadcast(&list, 0))
    }

    /// Makes every rank's gradients the gradient of the whole batch's mean loss: each rank's
    /// loss is the mean over its `local` rows of a batch of `total`, so its gradient is weighted
    /// by `local / total` and the weighted gradients summed. Every parameter must have a
    /// gradient (see [`zero_term`]). Also sums `extra` (loss, counts, the stop flag) in the
    /// same collective.
    pub fn average_gradients(&self, net: &Net, local: usize, total: usize, extra: &Tensor) -> Result<()> {
        let weight = local as f64 / total.max(1) as f64;
        let mut grads = Vec::new();
        for (name, p) in net.trainable() {
            let mut g = p.grad();
            if !g.defined() {
                bail!("parameter `{name}` got no gradient: add dist::zero_term to the loss");
            }
            tch::no_grad(|| {
                let _ = g.g_mul_scalar_(weight);
            });
            grads.push(g);
        }
        let mut list: Vec<&Tensor> = grads.iter().collect();
        list.push(extra);
        tch::no_grad(|| self.group.all_reduce(&list, Reduce::Sum))
    }

    /// Rank 0's batch-norm running statistics on every rank (what DDP does before each forward):
    /// the ranks' models stay equal although each normalises its own rows.
    pub fn broadcast_buffers(&self, net: &Net) -> Result<()> {
        let mut buffers: Vec<(&String, &Tensor)> = net.tensors().iter().filter(|(_, t)| !t.requires_grad()).collect();
        if buffers.is_empty() {
            return Ok(());
        }
        buffers.sort_by(|a, b| a.0.cmp(b.0));
        let list: Vec<&Tensor> = buffers.into_iter().map(|(_, t)| t).collect();
        tch::no_grad(|| self.group.broadcast(&list, 0))
    }

    /// Sums `tensors` in place over the ranks.
    pub fn sum_tensors(&self, tensors: &[&Tensor]) -> Result<()> {
        tch::no_grad(|| self.group.all_reduce(tensors, Reduce::Sum))
    }

    /// Sums `values` over the ranks (counts, loss sums).
    pub fn sum(&self, values: &mut [f64]) -> Result<()> {
        let t = Tensor::from_slice(values);
        self.group.all_reduce(&[&t], Reduce::Sum)?;
        values.copy_from_slice(&Vec::<f64>::try_from(&t)?);
        Ok(())
    }
}

/// FNV-1a of `bytes`: equal inputs on every rank give equal numbers.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Zero, with a gradient path to every trainable parameter of `net`: added to a rank's loss so
/// that every parameter gets a (zero) gradient, also on a rank whose share of a batch is empty.
pub fn zero_term(net: &Net) -> Tensor {
    let params = net.trainable();
    let first = params[0].1;
    params.iter().fold(Tensor::zeros([], (first.kind(), first.device())), |acc, (_, p)| acc + p.sum(p.kind()) * 0.0)
}

/// Rows `rank` of `world` handles of a batch of `len`: the first `len % world` ranks take one more.
pub fn rows(rank: usize, world: usize, len: usize) -> Range<usize> {
    let (base, extra) = (len / world, len % world);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

fn join(ranks: &[usize]) -> String {
    ranks.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_partition_every_batch() {
        for world in 1..6 {
            for len in 0..20 {
                let mut next = 0;
                for rank in 0..world {
                    let r = rows(rank, world, len);
                    assert_eq!(r.start, next, "contiguous, in rank order");
                    assert!(r.len() == len / world || r.len() == len / world + 1);
                    next = r.end;
                }
                assert_eq!(next, len, "every row once");
            }
        }
    }

    #[test]
    fn launch_reads_torchruns_environment_and_explains_what_is_missing() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let l = Launch::from_vars(env(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29511"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ]))
        .unwrap();
        assert_eq!((l.rank, l.world, l.port, l.agent_store, l.attempt), (1, 2, 29511, true, 2));
        let e = Launch::from_vars(env(&[("RANK", "0"), ("WORLD_SIZE", "2")])).unwrap_err().to_string();
        assert!(e.contains("MASTER_ADDR") && e.contains("torchrun"), "{e}");
        let e = Launch::from_vars(env(&[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")])).unwrap_err().to_string();
        assert!(e.contains("below the world size"), "{e}");
        let e = Launch::from_vars(env(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "http")])).unwrap_err().to_string();
        assert!(e.contains("not a port"), "{e}");
    }
}
