/*
 * runtime.cpp — libfp8_cuda_emu's CUDA runtime: one emulated device (or as
 * many as fp8_cuda_emu_configure says), device memory in host memory, streams
 * that run work when it is queued (or record it while capturing a graph), and
 * the scheduler that runs kernels on the calling thread.
 *
 * Scheduler. Blocks run one after another. A block's threads are fibers, each
 * with its own stack, run round robin: a fiber runs until it reaches
 * __syncthreads or a warp collective, or returns; the last thread to arrive
 * releases the others. Switching costs a few instructions (x86-64 assembly
 * below; ucontext elsewhere, much slower), so the kernels' real barriers and
 * shuffles run as written. Every other launch walks blocks and threads in
 * reverse order, so that code which relies on an order without a barrier meets
 * both. A barrier or collective that not every thread of the block or warp
 * reaches is a fault: the launch fails (cudaErrorLaunchFailure), the reason is
 * printed to stderr and kept for fp8_cuda_emu_last_fault().
 */
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <cuda_runtime.h>

#include "fp8_cuda_emu.h"

/* FP8_EMU_UCONTEXT forces the portable (slow) fiber switch on x86-64 too. */
#if defined(__x86_64__) && !defined(FP8_EMU_UCONTEXT)
#define FP8_EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace fp8emu {
namespace {

/* ---- the emulated machine -------------------------------------------------- */

struct Machine {
    int device_count = 1;
    int sm_count = 4;
    int cc_major = 9;
};
Machine &machine() {
    static Machine m = [] {
        Machine m;
        if (const char *s = getenv("FP8_CUDA_EMU_SMS")) {
            const int n = atoi(s);
            if (n >= 1 && n <= 1024) m.sm_count = n;
        }
        return m;
    }();
    return m;
}

thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;
thread_local std::string last_fault;

cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

/* fp8_cuda_emu_fail_call: call name -> calls to let pass, then the error. */
struct Injection {
    int skip;
    int error;
};
std::mutex inject_mutex;
std::map<std::string, Injection> &injections() {
    static std::map<std::string, Injection> m;
    return m;
}

/* ---- fibers --------------------------------------------------------------------- */

constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = 64 << 10;

#if FP8_EMU_ASM_SWITCH
/* fp8emu_switch(&from_sp, to_sp): saves the callee-saved registers, the SSE
 * and x87 control words on the current stack, stores its stack pointer in
 * *from_sp, and restores the same from to_sp. A new fiber's stack is laid out
 * so that the restore "returns" into fp8emu_start with r12 = entry, r13 = arg. */
extern "C" void fp8emu_switch(void **from_sp, void *to_sp);
extern "C" void fp8emu_start();
__asm__(R"(
    .text
    .p2align 4
    .globl fp8emu_switch
    .hidden fp8emu_switch
    .type fp8emu_switch, @function
fp8emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $16, %rsp
    stmxcsr 8(%rsp)
    fnstcw (%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    fldcw (%rsp)
    ldmxcsr 8(%rsp)
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size fp8emu_switch, .-fp8emu_switch

    .p2align 4
    .globl fp8emu_start
    .hidden fp8emu_start
    .type fp8emu_start, @function
fp8emu_start:
    movq %r13, %rdi
    callq *%r12
    ud2
    .size fp8emu_start, .-fp8emu_start
)");

struct Context {
    void *sp = nullptr;
};
void make_context(Context &c, char *stack, size_t bytes, void (*entry)(intptr_t), intptr_t arg) {
    uint16_t fpu_cw;
    uint32_t mxcsr;
    __asm__ volatile("fnstcw %0" : "=m"(fpu_cw));
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    const uintptr_t top = ((uintptr_t)stack + bytes) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 88); /* after the final ret: top - 16, 16-byte aligned */
    sp[0] = fpu_cw;
    sp[1] = mxcsr;
    sp[2] = 0;                 /* r15 */
    sp[3] = 0;                 /* r14 */
    sp[4] = (uint64_t)arg;     /* r13 */
    sp[5] = (uint64_t)entry;   /* r12 */
    sp[6] = 0;                 /* rbx */
    sp[7] = 0;                 /* rbp */
    sp[8] = (uint64_t)&fp8emu_start;
    c.sp = sp;
}
inline void switch_context(Context &from, Context &to) { fp8emu_switch(&from.sp, to.sp); }
#else
struct Context {
    ucontext_t uc;
};
void (*g_entry)(intptr_t);
void uc_trampoline(int hi, int lo) { g_entry((intptr_t)(((uint64_t)(uint32_t)hi << 32) | (uint32_t)lo)); }
void make_context(Context &c, char *stack, size_t bytes, void (*entry)(intptr_t), intptr_t arg) {
    g_entry = entry;
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, (void (*)())uc_trampoline, 2, (int)((uint64_t)arg >> 32), (int)(uint32_t)arg);
}
inline void switch_context(Context &from, Context &to) { swapcontext(&from.uc, &to.uc); }
#endif

/* ---- the SIMT scheduler ------------------------------------------------------- */

enum class State : uint8_t { Ready, AtBarrier, AtWarp, Done };

struct Fiber {
    Context ctx;
    uint3 tid;
    int lane, warp;
    State state;
    uint32_t gen; /* the barrier / collective generation it waits to see pass */
};

/* One warp's collective in progress: lanes publish into slot[gen & 1]. Two
 * slots, because a released lane may publish its next value before the others
 * have read this one (it cannot get two collectives ahead). */
struct Warp {
    int size, live, arrived;
    uint32_t gen;
    const char *kind;
    uint64_t slot[2][32];
};

struct Block {
    int size, live, arrived;
    uint32_t gen;
};

struct Scheduler {
    char *stacks = nullptr;
    Fiber fiber[kMaxThreads];
    Warp warp[kMaxThreads / 32];
    Block block;
    Context home; /* the launching thread's context */
    int current = -1;
    const std::function<void()> *body = nullptr;
    std::string fault; /* non-empty: the running grid has failed */
    const Site *site = nullptr;
};

Scheduler &sched() {
    static Scheduler *s = [] {
        Scheduler *s = new Scheduler();
        /* one stack per thread of a 1024-thread block, a guard page below each */
        const size_t page = (size_t)sysconf(_SC_PAGESIZE);
        const size_t each = kStackBytes + page;
        void *p = mmap(nullptr, each * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "libfp8_cuda_emu: cannot map fiber stacks\n");
            abort();
        }
        for (int i = 0; i < kMaxThreads; i++) mprotect((char *)p + i * each, page, PROT_NONE);
        s->stacks = (char *)p;
        return s;
    }();
    return *s;
}
char *stack_of(int i) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return sched().stacks + (size_t)i * (kStackBytes + page) + page;
}

std::mutex launch_mutex; /* one grid at a time: the scheduler and threadIdx are global */
int64_t grids_run = 0;

/* Records the first fault of the running grid and leaves the fiber for good. */
[[noreturn]] void fault(const char *fmt, ...) {
    Scheduler &s = sched();
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s.fault.empty()) {
        const Fiber &f = s.fiber[s.current];
        char where[256];
        snprintf(where, sizeof where, " (thread (%u,%u,%u) of block (%u,%u,%u))", f.tid.x, f.tid.y, f.tid.z, blockIdx.x,
                 blockIdx.y, blockIdx.z);
        s.fault = std::string(msg) + where;
    }
    s.fiber[s.current].state = State::Done;
    switch_context(s.fiber[s.current].ctx, s.home);
    abort(); /* never resumed */
}

void yield() {
    Scheduler &s = sched();
    switch_context(s.fiber[s.current].ctx, s.home);
}

void fiber_main(intptr_t) {
    Scheduler &s = sched();
    (*s.body)();
    Fiber &f = s.fiber[s.current];
    Warp &w = s.warp[f.warp];
    f.state = State::Done;
    s.block.live--;
    w.live--;
    if (w.arrived > 0) fault("a thread returned while other lanes of its warp wait in %s", w.kind);
    if (s.block.arrived > 0) fault("a thread returned while others wait at __syncthreads");
    switch_context(f.ctx, s.home);
    abort();
}

/* Runs one block; false (with s.fault set) when it faulted or deadlocked.
 * Warp by warp: each warp runs as far as it can (until every lane waits at
 * __syncthreads or has returned) before the next one starts, as if it were
 * scheduled far ahead of the others; a block barrier then lets everyone
 * catch up. That is the order most likely to expose a missing barrier
 * between one warp's writes to shared memory and another's reads. */
bool run_block(const dim3 &block, bool reverse) {
    Scheduler &s = sched();
    const int n = (int)(block.x * block.y * block.z);
    for (int t = 0; t < n; t++) {
        Fiber &f = s.fiber[t];
        f.tid = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
        f.lane = t % 32;
        f.warp = t / 32;
        f.state = State::Ready;
        f.gen = 0;
        make_context(f.ctx, stack_of(t), kStackBytes, fiber_main, t);
    }
    for (int w = 0; w * 32 < n; w++) {
        s.warp[w].size = s.warp[w].live = n - 32 * w < 32 ? n - 32 * w : 32;
        s.warp[w].arrived = 0;
        s.warp[w].gen = 0;
        s.warp[w].kind = "";
    }
    s.block = {n, n, 0, 0};
    const int warps = (n + 31) / 32;
    while (s.block.live > 0) {
        bool progressed = false;
        for (int kw = 0; kw < warps; kw++) {
            const int w = reverse ? warps - 1 - kw : kw;
            const int first = 32 * w, lanes = s.warp[w].size;
            for (bool again = true; again;) {
                again = false;
                for (int k = 0; k < lanes; k++) {
                    const int i = first + (reverse ? lanes - 1 - k : k);
                    Fiber &f = s.fiber[i];
                    if (f.state == State::Done) continue;
                    if (f.state == State::AtBarrier && f.gen == s.block.gen) continue;
                    if (f.state == State::AtWarp && f.gen == s.warp[f.warp].gen) continue;
                    f.state = State::Ready;
                    s.current = i;
                    threadIdx = f.tid;
                    switch_context(s.home, f.ctx);
                    progressed = again = true;
                    if (!s.fault.empty()) return false;
                }
            }
        }
        if (!progressed) {
            int at_barrier = 0, at_warp = 0;
            for (int i = 0; i < n; i++) {
                at_barrier += s.fiber[i].state == State::AtBarrier;
                at_warp += s.fiber[i].state == State::AtWarp;
            }
            char msg[256];
            snprintf(msg, sizeof msg,
                     "deadlock in block (%u,%u,%u): %d threads wait at __syncthreads while %d wait in a warp "
                     "collective (divergent barrier)",
                     blockIdx.x, blockIdx.y, blockIdx.z, at_barrier, at_warp);
            s.fault = msg;
            return false;
        }
    }
    return true;
}

/* ---- launch sites --------------------------------------------------------------- */

struct SiteStats {
    const char *file;
    int line;
    const char *kernel;
    int64_t launches;
};
std::mutex sites_mutex;
std::vector<SiteStats> &sites() {
    static std::vector<SiteStats> v;
    return v;
}
void count_site(const Site &site) {
    std::lock_guard<std::mutex> lock(sites_mutex);
    for (auto &s : sites())
        if (s.line == site.line && (s.file == site.file || strcmp(s.file, site.file) == 0)) {
            s.launches++;
            return;
        }
    sites().push_back({site.file, site.line, site.kernel, 1});
}

/* Runs a validated grid; cudaErrorLaunchFailure when it faulted. */
cudaError_t run_grid(const Site &site, dim3 grid, dim3 block, const std::function<void()> &body) {
    std::lock_guard<std::mutex> lock(launch_mutex);
    Scheduler &s = sched();
    count_site(site);
    const bool reverse = (grids_run++ & 1) != 0;
    static const bool trace = [] {
        const char *t = getenv("FP8_CUDA_EMU_TRACE");
        return t && *t && strcmp(t, "0") != 0;
    }();
    if (trace)
        fprintf(stderr, "[emu] %s:%d %s grid (%u,%u,%u) block (%u,%u,%u)%s\n", site.file, site.line, site.kernel, grid.x,
                grid.y, grid.z, block.x, block.y, block.z, reverse ? " reverse" : "");
    gridDim = grid;
    blockDim = block;
    s.body = &body;
    s.site = &site;
    s.fault.clear();
    const uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
    for (uint64_t k = 0; k < blocks; k++) {
        const uint64_t b = reverse ? blocks - 1 - k : k;
        blockIdx = {(unsigned)(b % grid.x), (unsigned)((b / grid.x) % grid.y), (unsigned)(b / ((uint64_t)grid.x * grid.y))};
        if (!run_block(block, reverse)) {
            last_fault = "launch of " + std::string(site.kernel) + " at " + site.file + ":" + std::to_string(site.line) +
                         ": " + s.fault;
            fprintf(stderr, "libfp8_cuda_emu: kernel fault: %s\n", last_fault.c_str());
            s.body = nullptr;
            return cudaErrorLaunchFailure;
        }
    }
    s.body = nullptr;
    return cudaSuccess;
}

/* ---- streams, graphs, events, memory ------------------------------------------- */

std::mutex memory_mutex;
std::unordered_map<void *, size_t> &allocations() {
    static std::unordered_map<void *, size_t> m;
    return m;
}
int64_t live_bytes = 0;

void *device_alloc(size_t bytes) {
    const size_t rounded = (bytes + 255) / 256 * 256;
    void *p = aligned_alloc(256, rounded ? rounded : 256);
    if (!p) return nullptr;
    memset(p, 0xA5, rounded ? rounded : 256); /* like real device memory: not zeroed */
    std::lock_guard<std::mutex> lock(memory_mutex);
    allocations().emplace(p, bytes);
    live_bytes += (int64_t)bytes;
    return p;
}
cudaError_t device_free(void *p) {
    if (!p) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lock(memory_mutex);
        auto it = allocations().find(p);
        if (it == allocations().end()) return cudaErrorInvalidValue;
        live_bytes -= (int64_t)it->second;
        allocations().erase(it);
    }
    free(p);
    return cudaSuccess;
}

/* A captured graph: its operations, and the memory allocated while capturing
 * (it lives as long as the graph and its executables). */
struct GraphData {
    std::vector<std::function<cudaError_t()>> ops;
    std::vector<void *> owned;
    bool invalidated = false; /* a call not allowed during capture broke it (cudaStreamEndCapture fails) */
    ~GraphData() {
        for (void *p : owned) device_free(p);
    }
};

}  // namespace
}  // namespace fp8emu

struct CUstream_st {
    std::shared_ptr<fp8emu::GraphData> capture; /* non-null while capturing */
    bool non_blocking = false; /* cudaStreamNonBlocking: does not wait for the legacy default stream */
};
struct CUgraph_st {
    std::shared_ptr<fp8emu::GraphData> data;
};
struct CUgraphExec_st {
    std::shared_ptr<fp8emu::GraphData> data;
};
struct CUevent_st {
    std::chrono::steady_clock::time_point t;
    bool recorded = false;
    /* recorded into a capture: a node of that graph, not a point in time */
    std::weak_ptr<fp8emu::GraphData> captured;
};
struct CUmemPoolHandle_st {
    uint64_t release_threshold = 0;
    int device = 0;
};

namespace fp8emu {

int injected_failure(const char *call) {
    std::lock_guard<std::mutex> lock(inject_mutex);
    auto it = injections().find(call);
    if (it == injections().end()) return 0;
    if (it->second.skip > 0) {
        it->second.skip--;
        return 0;
    }
    const int e = it->second.error;
    injections().erase(it);
    return e;
}

/* The legacy default stream (stream 0; cudaMemset and cudaMemcpy run on it).
 * A real GPU may run its work any time before the next call that waits for it;
 * the emulator takes the latest such time: the work is kept here until the
 * legacy stream, or a blocking stream (which waits for it), or the whole
 * device is synchronized or given new work. A non-blocking stream never waits
 * for it, so a kernel on one that relies on an unsynchronized cudaMemset reads
 * the memory as it was before (issue 16). */
std::mutex legacy_mutex;
std::vector<std::function<void()>> &legacy_work() {
    static std::vector<std::function<void()>> v;
    return v;
}
void flush_legacy() {
    std::vector<std::function<void()>> work;
    {
        std::lock_guard<std::mutex> lock(legacy_mutex);
        work.swap(legacy_work());
    }
    for (auto &op : work) op();
}
/* Work submitted to `stream`: the legacy stream and blocking streams first
 * finish what the legacy stream holds. */
void order_after_legacy(cudaStream_t stream) {
    if (!stream || !stream->non_blocking) flush_legacy();
}

void submit_grid(const Site &site, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                 std::function<void()> body) {
    order_after_legacy(stream);
    if (const int e = injected_failure("launch")) {
        set_error((cudaError_t)e);
        return;
    }
    const uint64_t threads = (uint64_t)block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0 ||
        grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535 || block.x > 1024 || block.y > 1024 ||
        block.z > 64 || threads > (uint64_t)kMaxThreads || smem > 48 * 1024) {
        last_fault = "launch of " + std::string(site.kernel) + " at " + site.file + ":" + std::to_string(site.line) +
                     ": invalid configuration grid (" + std::to_string(grid.x) + "," + std::to_string(grid.y) + "," +
                     std::to_string(grid.z) + ") block (" + std::to_string(block.x) + "," + std::to_string(block.y) +
                     "," + std::to_string(block.z) + ")";
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    if (stream && stream->capture) {
        Site s = site;
        stream->capture->ops.push_back(
            [s, grid, block, body = std::move(body)]() { return run_grid(s, grid, block, body); });
        return;
    }
    set_error(run_grid(site, grid, block, body));
}

cudaError_t submit_host(cudaStream_t stream, std::function<void()> op) {
    order_after_legacy(stream);
    if (stream && stream->capture) {
        stream->capture->ops.push_back([op = std::move(op)]() {
            op();
            return cudaSuccess;
        });
        return cudaSuccess;
    }
    op();
    return cudaSuccess;
}

[[noreturn]] void misaligned(const void *p, int bytes) {
    if (sched().current < 0 || !sched().body) {
        fprintf(stderr, "libfp8_cuda_emu: a misaligned %d-byte vector at %p outside a kernel\n", bytes, p);
        abort();
    }
    fault("misaligned %d-byte vector access at %p (the GPU faults on it)", bytes, p);
}

/* Every lane of the warp publishes bits; returns the 32 published values
 * once all lanes have. */
static const uint64_t *warp_collective(unsigned mask, uint64_t bits, const char *kind) {
    Scheduler &s = sched();
    Fiber &f = s.fiber[s.current];
    Warp &w = s.warp[f.warp];
    if (mask != 0xffffffffu) fault("%s with mask 0x%08x: only full-warp masks are emulated", kind, mask);
    if (w.size != 32) fault("%s with a full mask in a warp of %d threads", kind, w.size);
    if (w.live != w.size) fault("%s after %d lanes of the warp returned", kind, w.size - w.live);
    if (w.arrived == 0)
        w.kind = kind;
    else if (strcmp(w.kind, kind) != 0)
        fault("lanes of one warp are in different collectives (%s and %s)", w.kind, kind);
    uint64_t *slot = w.slot[w.gen & 1];
    slot[f.lane] = bits;
    if (++w.arrived == w.size) {
        w.arrived = 0;
        w.gen++;
    } else {
        f.state = State::AtWarp;
        f.gen = w.gen;
        yield();
    }
    return slot;
}

uint64_t warp_shfl_xor(unsigned mask, uint64_t bits, int lane_mask) {
    const uint64_t *slot = warp_collective(mask, bits, "__shfl_xor_sync");
    return slot[(sched().fiber[sched().current].lane ^ lane_mask) & 31];
}

uint32_t warp_reduce_max(unsigned mask, uint32_t v) {
    const uint64_t *slot = warp_collective(mask, v, "__reduce_max_sync");
    uint32_t m = 0;
    for (int i = 0; i < 32; i++) m = (uint32_t)slot[i] > m ? (uint32_t)slot[i] : m;
    return m;
}

void block_barrier() {
    Scheduler &s = sched();
    Fiber &f = s.fiber[s.current];
    Block &b = s.block;
    if (b.live != b.size) fault("__syncthreads after %d of the block's %d threads returned", b.size - b.live, b.size);
    if (++b.arrived == b.size) {
        b.arrived = 0;
        b.gen++;
        return;
    }
    f.state = State::AtBarrier;
    f.gen = b.gen;
    yield();
}

}  // namespace fp8emu

using namespace fp8emu;

/* An emulated call fails here when a test asked for it (fp8_cuda_emu_fail_call). */
#define FP8_EMU_INJECT(name)                                            \
    do {                                                                \
        if (const int e_ = injected_failure(name)) return set_error((cudaError_t)e_); \
    } while (0)

/* ---- the runtime API ---------------------------------------------------------------- */

cudaError_t cudaGetLastError() {
    const cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError() { return last_error; }

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorCallRequiresNewerDriver: return "cudaErrorCallRequiresNewerDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorStubLibrary: return "cudaErrorStubLibrary";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorUnsupportedPtxVersion: return "cudaErrorUnsupportedPtxVersion";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e) {
    /* The emulator's own account of a failed launch, where it has one. */
    if ((e == cudaErrorLaunchFailure || e == cudaErrorInvalidConfiguration) && !last_fault.empty())
        return last_fault.c_str();
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "emulated CUDA error";
    }
}

cudaError_t cudaRuntimeGetVersion(int *v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v) {
    if (const int e = injected_failure("cudaDriverGetVersion")) {
        *v = 0;
        return set_error((cudaError_t)e);
    }
    *v = CUDART_VERSION;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n) {
    if (const int e = injected_failure("cudaGetDeviceCount")) {
        *n = 0;
        return set_error((cudaError_t)e);
    }
    *n = 0;
    if (machine().device_count == 0) return set_error(cudaErrorNoDevice);
    *n = machine().device_count;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *d) {
    FP8_EMU_INJECT("cudaGetDevice");
    *d = current_device;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
    FP8_EMU_INJECT("cudaSetDevice");
    if (d < 0 || d >= machine().device_count) return set_error(cudaErrorInvalidDevice);
    current_device = d;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    FP8_EMU_INJECT("cudaGetDeviceProperties");
    if (d < 0 || d >= machine().device_count) return set_error(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "float8 emulated GPU (host CPU, %d SMs)", machine().sm_count);
    p->totalGlobalMem = (size_t)16 << 30;
    p->major = machine().cc_major;
    p->minor = 0;
    p->multiProcessorCount = machine().sm_count;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
    flush_legacy();
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    FP8_EMU_INJECT("cudaStreamCreateWithFlags");
    *s = new CUstream_st();
    (*s)->non_blocking = (flags & cudaStreamNonBlocking) != 0;
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    FP8_EMU_INJECT("cudaStreamSynchronize");
    if (s && s->capture) return set_error(cudaErrorStreamCaptureUnsupported);
    order_after_legacy(s);
    return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    FP8_EMU_INJECT("cudaStreamBeginCapture");
    if (!s || s->capture) return set_error(cudaErrorInvalidValue);
    s->capture = std::make_shared<GraphData>();
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    if (!s || !s->capture) return set_error(cudaErrorInvalidValue);
    if (s->capture->invalidated) {
        s->capture.reset();
        *g = nullptr;
        return set_error(cudaErrorStreamCaptureInvalidated);
    }
    *g = new CUgraph_st{std::move(s->capture)};
    s->capture.reset();
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long) {
    FP8_EMU_INJECT("cudaGraphInstantiate");
    *e = new CUgraphExec_st{g->data};
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
    FP8_EMU_INJECT("cudaGraphLaunch");
    if (s && s->capture) return set_error(cudaErrorStreamCaptureUnsupported);
    for (auto &op : e->data->ops) {
        const cudaError_t err = op();
        if (err != cudaSuccess) return set_error(err);
    }
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) {
    FP8_EMU_INJECT("cudaEventCreate");
    *e = new CUevent_st();
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    FP8_EMU_INJECT("cudaEventRecord");
    if (!e) return set_error(cudaErrorInvalidResourceHandle);
    if (s && s->capture) { /* becomes a node of the graph being captured */
        e->captured = s->capture;
        e->recorded = false;
        return cudaSuccess;
    }
    e->captured.reset();
    e->t = std::chrono::steady_clock::now();
    e->recorded = true;
    return cudaSuccess;
}
/* Waiting on an event recorded into a capture is not allowed, and invalidates it. */
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!e) return set_error(cudaErrorInvalidResourceHandle);
    if (auto g = e->captured.lock()) {
        g->invalidated = true;
        return set_error(cudaErrorStreamCaptureUnsupported);
    }
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t stop) {
    if (!start || !stop || !start->recorded || !stop->recorded) return set_error(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(stop->t - start->t).count();
    return cudaSuccess;
}

/* Pinned host memory is plain host memory here (copies are synchronous anyway). */
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int) {
    FP8_EMU_INJECT("cudaHostAlloc");
    *p = malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}
/* One address space: a mapped host buffer is its own device pointer. */
cudaError_t cudaHostGetDevicePointer(void **d, void *host, unsigned int) {
    FP8_EMU_INJECT("cudaHostGetDevicePointer");
    *d = host;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t bytes) {
    FP8_EMU_INJECT("cudaMalloc");
    *p = device_alloc(bytes);
    return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void *p) {
    flush_legacy(); /* cudaFree waits for the device */
    return set_error(device_free(p));
}
cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t s) {
    FP8_EMU_INJECT("cudaMallocAsync");
    *p = device_alloc(bytes);
    if (!*p) return set_error(cudaErrorMemoryAllocation);
    if (s && s->capture) s->capture->owned.push_back(*p); /* a graph's allocation lives with the graph */
    return cudaSuccess;
}
cudaError_t cudaFreeAsync(void *p, cudaStream_t s) {
    if (s && s->capture) {
        for (void *q : s->capture->owned)
            if (q == p) return cudaSuccess; /* freed with the graph */
        return set_error(cudaErrorStreamCaptureUnsupported);
    }
    return set_error(device_free(p));
}
cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    FP8_EMU_INJECT("cudaMemset");
    /* on the legacy default stream: asynchronous for device memory */
    std::lock_guard<std::mutex> lock(legacy_mutex);
    legacy_work().push_back([=] { memset(p, value, bytes); });
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s) {
    FP8_EMU_INJECT("cudaMemsetAsync");
    return submit_host(s, [=] { memset(p, value, bytes); });
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind, cudaStream_t s) {
    FP8_EMU_INJECT("cudaMemcpyAsync");
    return submit_host(s, [=] { memmove(dst, src, bytes); });
}
/* The device's default pool (one, whatever the device) and the pools created. */
CUmemPoolHandle_st the_default_pool;
int64_t pools_live = 0;
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *pool, int d) {
    FP8_EMU_INJECT("cudaDeviceGetDefaultMemPool");
    if (d < 0 || d >= machine().device_count) return set_error(cudaErrorInvalidDevice);
    *pool = &the_default_pool;
    return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void *value) {
    FP8_EMU_INJECT("cudaMemPoolSetAttribute");
    if (!pool || !value || attr != cudaMemPoolAttrReleaseThreshold) return set_error(cudaErrorInvalidValue);
    pool->release_threshold = *(const uint64_t *)value;
    return cudaSuccess;
}
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void *value) {
    if (!pool || !value || attr != cudaMemPoolAttrReleaseThreshold) return set_error(cudaErrorInvalidValue);
    *(uint64_t *)value = pool->release_threshold;
    return cudaSuccess;
}
cudaError_t cudaMemPoolCreate(cudaMemPool_t *pool, const cudaMemPoolProps *props) {
    FP8_EMU_INJECT("cudaMemPoolCreate");
    if (!pool || !props || props->allocType != cudaMemAllocationTypePinned ||
        props->location.type != cudaMemLocationTypeDevice)
        return set_error(cudaErrorInvalidValue);
    if (props->location.id < 0 || props->location.id >= machine().device_count) return set_error(cudaErrorInvalidDevice);
    *pool = new CUmemPoolHandle_st();
    (*pool)->device = props->location.id;
    pools_live++;
    return cudaSuccess;
}
cudaError_t cudaMemPoolDestroy(cudaMemPool_t pool) {
    if (!pool || pool == &the_default_pool) return set_error(cudaErrorInvalidValue);
    delete pool;
    pools_live--;
    return cudaSuccess;
}
/* Fails under the name "cudaMallocAsync" too (fp8_cuda_emu_fail_call): both are
 * the stream-ordered allocation. */
cudaError_t cudaMallocFromPoolAsync(void **p, size_t bytes, cudaMemPool_t pool, cudaStream_t s) {
    if (!pool) return set_error(cudaErrorInvalidValue);
    return cudaMallocAsync(p, bytes, s);
}

/* ---- fp8_cuda_emu.h ---------------------------------------------------------------- */

extern "C" {

FP8_API int32_t fp8_cuda_emu_configure(int32_t device_count, int32_t sm_count, int32_t cc_major) {
    if (device_count < 0 || device_count > 16 || sm_count < 1 || sm_count > 1024 || cc_major < 1)
        return FP8_ERR_INVALID_ARG;
    machine().device_count = device_count;
    machine().sm_count = sm_count;
    machine().cc_major = cc_major;
    return FP8_OK;
}

FP8_API int32_t fp8_cuda_emu_pools(int64_t *live_pools, uint64_t *default_release_threshold) {
    if (live_pools) *live_pools = pools_live;
    if (default_release_threshold) *default_release_threshold = the_default_pool.release_threshold;
    return FP8_OK;
}

FP8_API int32_t fp8_cuda_emu_memory(int64_t *bytes, int64_t *allocs) {
    std::lock_guard<std::mutex> lock(memory_mutex);
    if (bytes) *bytes = live_bytes;
    if (allocs) *allocs = (int64_t)allocations().size();
    return FP8_OK;
}

FP8_API int32_t fp8_cuda_emu_site(int64_t i, const char **file, int32_t *line, const char **kernel,
                                  int64_t *launches) {
    std::lock_guard<std::mutex> lock(sites_mutex);
    if (i < 0 || i >= (int64_t)sites().size()) return FP8_ERR_INVALID_ARG;
    const SiteStats &s = sites()[(size_t)i];
    if (file) *file = s.file;
    if (line) *line = s.line;
    if (kernel) *kernel = s.kernel;
    if (launches) *launches = s.launches;
    return FP8_OK;
}

FP8_API const char *fp8_cuda_emu_last_fault(void) { return last_fault.c_str(); }

FP8_API int32_t fp8_cuda_emu_take_pending_failures(int64_t *count) {
    std::lock_guard<std::mutex> lock(inject_mutex);
    if (count) *count = (int64_t)injections().size();
    injections().clear();
    return FP8_OK;
}

FP8_API int32_t fp8_cuda_emu_fail_call(const char *call, int32_t skip, int32_t error) {
    if (!call || skip < 0) return FP8_ERR_INVALID_ARG;
    std::lock_guard<std::mutex> lock(inject_mutex);
    if (error == 0)
        injections().erase(call);
    else
        injections()[call] = {skip, error};
    return FP8_OK;
}

}  // extern "C"
