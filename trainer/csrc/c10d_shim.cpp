// The narrow C ABI between advlens (Rust, through tch) and libtorch's c10d: a process group
// made from torchrun's environment, all-reduce and broadcast of a list of tensors in buckets.
// Nothing else of c10d is exposed (Team::agree, an all-reduce, serves as the barrier).
//
// Tensors cross the boundary as `at::Tensor*`, which is what tch's `Tensor::as_ptr` gives
// (torch-sys's C API passes `torch::Tensor*` the same way).
//
// gloo's own headers (needed by ProcessGroupGloo.hpp) come from the system, not from the wheel,
// and may be another snapshot than the gloo compiled into libtorch: this file therefore never
// touches a gloo type itself. It only calls ProcessGroupGloo's exported (non-inline) functions
// and then c10d::Backend's virtual interface, whose layout comes from the wheel's headers.
//
// Every function catches all exceptions and returns them as text: an exception must never
// unwind into Rust.

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  int rank;
  int world;
  std::chrono::milliseconds timeout;
};

void write_error(char* buf, size_t len, const std::string& text) {
  if (buf == nullptr || len == 0) return;
  size_t n = text.size() < len - 1 ? text.size() : len - 1;
  std::memcpy(buf, text.data(), n);
  buf[n] = '\0';
}

// Runs `f`, turning any exception into a message in `err` and a non-zero return.
template <typename F>
int guarded(char* err, size_t err_len, F f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    write_error(err, err_len, e.what_without_backtrace());
  } catch (const std::exception& e) {
    write_error(err, err_len, e.what());
  } catch (...) {
    write_error(err, err_len, "unknown C++ exception in c10d");
  }
  return 1;
}

void wait(Group* g, c10::intrusive_ptr<c10d::Work> work) {
  if (!work->wait(g->timeout)) {
    throw std::runtime_error("a collective operation did not finish within the timeout");
  }
}

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 0: return c10d::ReduceOp::SUM;
    case 1: return c10d::ReduceOp::MIN;
    case 2: return c10d::ReduceOp::MAX;
    default: throw std::invalid_argument("unknown reduce op " + std::to_string(op));
  }
}

// Runs `collective` on `tensors` (in place) with as few calls as possible: tensors of one dtype
// and device are flattened into buckets of at most `bucket_bytes` (a larger tensor is its own
// bucket), and the results copied back. On loopback one Gloo collective costs ~2 ms whatever its
// size up to a few MB, so a model's gradients (or batch-norm statistics) must travel together.
template <typename Collective>
void bucketed(std::vector<at::Tensor>& tensors, int64_t bucket_bytes, Collective collective) {
  size_t i = 0;
  while (i < tensors.size()) {
    std::vector<at::Tensor> bucket{tensors[i]};
    int64_t bytes = tensors[i].numel() * tensors[i].element_size();
    size_t j = i + 1;
    while (j < tensors.size() && tensors[j].scalar_type() == tensors[i].scalar_type() &&
           tensors[j].device() == tensors[i].device() &&
           bytes + tensors[j].numel() * tensors[j].element_size() <= bucket_bytes) {
      bytes += tensors[j].numel() * tensors[j].element_size();
      bucket.push_back(tensors[j]);
      ++j;
    }
    if (bucket.size() == 1 && bucket[0].is_contiguous()) {
      std::vector<at::Tensor> one{bucket[0]};
      collective(one);
    } else {
      std::vector<at::Tensor> flat_parts;
      for (auto& t : bucket) flat_parts.push_back(t.reshape({-1}));
      std::vector<at::Tensor> flat{at::cat(flat_parts)};
      collective(flat);
      int64_t offset = 0;
      for (auto& t : bucket) {
        t.copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
    i = j;
  }
}

std::vector<at::Tensor> borrow(at::Tensor** tensors, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(*tensors[i]);
  return out;
}

}  // namespace

extern "C" {

// Joins the process group. `agent_store`: torchrun's agent already hosts the store at
// host:port (every rank connects as a client, keys under /worker/attempt_<attempt>/);
// otherwise rank 0 hosts it. Returns NULL and a message in `err` on failure.
// `iface`: the network interface Gloo binds (GLOO_SOCKET_IFNAME); empty: this machine's hostname,
// or loopback when that does not resolve.
void* advlens_c10d_init(const char* host, uint16_t port, int rank, int world, int agent_store, int attempt,
                        const char* iface, int64_t timeout_ms, char* err, size_t err_len) {
  Group* group = nullptr;
  guarded(err, err_len, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = !agent_store && rank == 0;
    opts.numWorkers = world;
    opts.waitWorkers = !agent_store;
    opts.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    c10::intrusive_ptr<c10d::Store> store = tcp;
    if (agent_store) {
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(attempt), tcp);
    }
    auto gloo_opts = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo_opts->devices.push_back(std::strlen(iface) > 0
                                     ? c10d::ProcessGroupGloo::createDeviceForInterface(std::string(iface))
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
    gloo_opts->threads = 2;
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("advlens/gloo", store), rank, world, gloo_opts);
    group = new Group{store, pg, rank, world, timeout};
  });
  return group;
}

void advlens_c10d_free(void* handle) {
  delete static_cast<Group*>(handle);
}

// All-reduces `n` tensors in place (op: 0 sum, 1 min, 2 max), in buckets of `bucket_bytes`.
int advlens_c10d_allreduce(void* handle, at::Tensor** tensors, size_t n, int op, int64_t bucket_bytes, char* err,
                           size_t err_len) {
  return guarded(err, err_len, [&] {
    auto g = static_cast<Group*>(handle);
    c10d::AllreduceOptions opts;
    opts.reduceOp = reduce_op(op);
    opts.timeout = g->timeout;
    auto list = borrow(tensors, n);
    bucketed(list, bucket_bytes, [&](std::vector<at::Tensor>& t) { wait(g, g->backend->allreduce(t, opts)); });
  });
}

// Broadcasts `n` tensors in place from rank `root`, in buckets of `bucket_bytes`.
int advlens_c10d_broadcast(void* handle, at::Tensor** tensors, size_t n, int root, int64_t bucket_bytes, char* err,
                           size_t err_len) {
  return guarded(err, err_len, [&] {
    auto g = static_cast<Group*>(handle);
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g->timeout;
    auto list = borrow(tensors, n);
    bucketed(list, bucket_bytes, [&](std::vector<at::Tensor>& t) { wait(g, g->backend->broadcast(t, opts)); });
  });
}

}  // extern "C"
