/*
 * onednn_check.cpp — what oneDNN runs underneath libfp8, for tests and users:
 *
 *  - fp8_cpu_onednn_version: the oneDNN release loaded at run time;
 *  - the reference-implementation record: onednn.hpp's make_primitive() hands
 *    every new primitive's implementation name to note_impl(); names that
 *    start with "ref" (oneDNN's plain C++ loops, often 10-100x slower than its
 *    JIT kernels) are recorded and the first of each op is logged to stderr;
 *  - the fp8 matmul path record (matmul.cpp: native oneDNN fp8 matmul or
 *    decode to bf16, see docs/architecture.md);
 *  - fp8_cpu_onednn_report: all of it as one JSON object.
 */
#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "onednn.hpp"

namespace fp8 {
namespace onednn {

namespace {

struct Record {
    std::mutex mu;
    std::set<std::string> logged_ops;              /* ops already logged to stderr */
    std::vector<std::string> ref;                  /* JSON objects, one per ref primitive */
    std::set<std::string> ref_seen;                /* de-duplication of `ref` */
    std::vector<std::string> fp8_matmul;           /* JSON objects, one per decision */
};

Record &record() {
    static Record *r = new Record(); /* never destroyed: safe from exit-time callers */
    return *r;
}

std::string json_str(const std::string &s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if ((unsigned char)c < 0x20) continue;
        out += c;
    }
    return out + "\"";
}

}  // namespace

bool is_ref_impl(const char *impl) { return impl && std::strncmp(impl, "ref", 3) == 0; }

void note_impl(const char *op, const char *impl, const std::string &what) {
    if (!is_ref_impl(impl)) return;
    Record &r = record();
    std::lock_guard<std::mutex> lock(r.mu);
    const std::string entry = "{\"op\":" + json_str(op) + ",\"impl\":" + json_str(impl) +
                              ",\"problem\":" + json_str(what) + "}";
    if (r.ref_seen.insert(entry).second && r.ref.size() < 256) r.ref.push_back(entry);
    if (r.logged_ops.insert(op).second)
        std::fprintf(stderr,
                     "libfp8: oneDNN runs %s (%s) with its reference implementation '%s', which is "
                     "slow; fp8_cpu_onednn_report lists every such primitive\n",
                     op, what.c_str(), impl);
}

void note_fp8_matmul(const std::string &problem, const std::string &path, const std::string &impl,
                     const std::string &reason) {
    Record &r = record();
    std::lock_guard<std::mutex> lock(r.mu);
    if (r.fp8_matmul.size() >= 256) return;
    r.fp8_matmul.push_back("{\"problem\":" + json_str(problem) + ",\"path\":" + json_str(path) +
                           ",\"native_impl\":" + json_str(impl) + ",\"reason\":" +
                           json_str(reason) + "}");
}

}  // namespace onednn
}  // namespace fp8

extern "C" FP8_API int32_t fp8_cpu_onednn_version(int32_t *major, int32_t *minor, int32_t *patch) {
    static const char *fn = "fp8_cpu_onednn_version";
    FP8_REQUIRE_PTR(major, fn);
    FP8_REQUIRE_PTR(minor, fn);
    FP8_REQUIRE_PTR(patch, fn);
    const dnnl_version_t *v = dnnl_version();
    *major = (int32_t)v->major;
    *minor = (int32_t)v->minor;
    *patch = (int32_t)v->patch;
    return FP8_OK;
}

extern "C" FP8_API int32_t fp8_cpu_onednn_ref_count(int64_t *out) {
    FP8_REQUIRE_PTR(out, "fp8_cpu_onednn_ref_count");
    auto &r = fp8::onednn::record();
    std::lock_guard<std::mutex> lock(r.mu);
    *out = (int64_t)r.ref.size();
    return FP8_OK;
}

extern "C" FP8_API const char *fp8_cpu_onednn_report(void) {
    using namespace fp8::onednn;
    thread_local std::string out;
    const dnnl_version_t *v = dnnl_version();
    auto &r = record();
    std::lock_guard<std::mutex> lock(r.mu);
    out = "{\"version\":\"" + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
          std::to_string(v->patch) + "\",\"api\":" + std::to_string(DNNL_VERSION_MAJOR) +
          ",\"ref\":[";
    for (size_t i = 0; i < r.ref.size(); ++i) out += (i ? "," : "") + r.ref[i];
    out += "],\"fp8_matmul\":[";
    for (size_t i = 0; i < r.fp8_matmul.size(); ++i) out += (i ? "," : "") + r.fp8_matmul[i];
    out += "]}";
    return out.c_str();
}
