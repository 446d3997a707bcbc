//! One optimisation step: this process's rows of a batch, their loss, and in a distributed job
//! the exchange that makes every rank take the same step.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::attack::BatchPart;
use crate::data::batches::Batch;
use crate::dist::{self, Team};
use crate::mode::{step_loss_part, Mode};
use crate::net::Net;
use crate::optim::Adam;

/// What a step saw over the whole batch (summed over the ranks).
pub(super) struct StepTotals {
    /// The loss summed over the batch's images.
    pub loss_sum: f64,
    /// Images classified right (adversarial ones in `pgd` mode).
    pub correct: f64,
    /// Ranks whose Ctrl-C flag was up (0 without a team).
    pub stop_votes: f64,
}

/// Trains `net` on `batch` under `mode`: on its rows for this rank with a `team`, where the
/// gradients are then averaged (weighted by rows) so that every rank takes the step that one
/// process would take on the whole batch.
#[allow(clippy::too_many_arguments)]
pub(super) fn take_step(
    net: &Net,
    adam: &mut Adam,
    mode: &Mode,
    batch: &Batch,
    [c, h, w]: [usize; 3],
    device: Device,
    team: Option<&Team>,
    stop: &AtomicBool,
    batch_size: usize,
) -> Result<StepTotals> {
    let rows = team.map_or(0..batch.len, |t| t.rows(batch.len));
    let local = rows.len();
    let image_len = c * h * w;
    let x = Tensor::from_slice(&batch.images[rows.start * image_len..rows.end * image_len]).view([local as i64, c as i64, h as i64, w as i64]).to_device(device);
    let y = Tensor::from_slice(&batch.labels[rows]).to_device(device);
    // Attack starts are drawn for the whole batch and cut to these rows.
    let part = team.map_or(BatchPart { offset: 0, total: local as i64 }, |t| t.part(batch.len));
    if let Some(t) = team {
        t.broadcast_buffers(net)?;
    }
    guard_oom(batch_size, device, || -> Result<StepTotals> {
        let (loss, correct) = if local == 0 {
            (Tensor::zeros([], (Kind::Float, device)), 0)
        } else {
            let out = step_loss_part(net, mode, &x, &y, part);
            let logits = out.adversarial_logits.filter(|_| matches!(mode, Mode::Pgd { .. })).or(out.clean_logits);
            let correct = logits.map_or(0, |l| l.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]));
            (out.loss, correct)
        };
        let Some(t) = team else {
            adam.backward_step(net, &loss);
            return Ok(StepTotals { loss_sum: loss.double_value(&[]) * local as f64, correct: correct as f64, stop_votes: 0.0 });
        };
        // The zero term gives every parameter a gradient, also on a rank with no rows.
        Adam::backward(net, &(&loss + dist::zero_term(net)));
        let stop_vote = f32::from(u8::from(stop.load(Ordering::Relaxed)));
        // f32 like the gradients, so that it travels in their bucket: one collective per step.
        let extra = Tensor::from_slice(&[(loss.double_value(&[]) * local as f64) as f32, correct as f32, stop_vote]).to_device(device);
        t.average_gradients(net, local, batch.len, &extra)?;
        adam.step(net);
        let e = Vec::<f32>::try_from(&extra.to_device(Device::Cpu))?;
        Ok(StepTotals { loss_sum: f64::from(e[0]), correct: f64::from(e[1]), stop_votes: f64::from(e[2]) })
    })?
}

/// Runs `f`, turning libtorch's out-of-memory failure into an error that says what to do.
fn guard_oom<T>(batch_size: usize, device: Device, f: impl FnOnce() -> T) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Ok(v),
        Err(payload) => {
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if text.contains("out of memory") || text.contains("OutOfMemory") {
                bail!(
                    "out of memory on {device:?} at batch size {batch_size}: try --batch-size {} (or --device cpu)",
                    (batch_size / 2).max(1)
                );
            }
            resume_unwind(payload)
        }
    }
}

