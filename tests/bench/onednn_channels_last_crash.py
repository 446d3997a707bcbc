"""libtorch 2.11's oneDNN writes outside its buffers in the weight gradient of a small strided
1x1 convolution in channels_last when it runs two threads and the batch is odd (why the trainer
uses channels-last with one CPU thread only: trainer/src/net.rs, MemoryFormat::check).

    LD_PRELOAD=/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 MALLOC_CHECK_=3 timeout 60 \
        python3 tests/bench/onednn_channels_last_crash.py [THREADS] [BATCH] [contiguous]

With glibc's heap checks on, a run that corrupted the heap aborts ("corrupted size vs. prev_size",
"double free or corruption"), segfaults (also after its last line, at exit) or hangs; without
them the corruption may go unnoticed. The exit status says which: 0 is a clean run. Seen on an
AVX-512 CPU (the kernel is jit_avx512_common_1x1_convolution_bwd_weights) with torch 2.11.0:
2 threads, batch 3: hung (10 minutes at 200% CPU); batch 5: segfault; 1 thread or contiguous: 0.
"""
import sys

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 3
channels_last = not (len(sys.argv) > 3 and sys.argv[3] == "contiguous")
torch.set_num_threads(threads)
torch.manual_seed(0)
# The shortcut of a narrow residual network: 4 -> 8 channels, 1x1, stride 2.
conv = torch.nn.Conv2d(4, 8, 1, stride=2)
x = torch.rand(batch, 4, 32, 32)
if channels_last:
    conv = conv.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
x.requires_grad_(True)
for _ in range(20):
    conv(x).square().sum().backward()
print(f"20 steps done (the exit status tells whether the heap survived): {threads} thread(s), batch {batch}, {'channels_last' if channels_last else 'contiguous'}, torch {torch.__version__}")
