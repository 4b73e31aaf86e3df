/*
 * cub/device/device_radix_sort.cuh (emulated) — cub::DeviceRadixSort::SortPairs
 * with CUB's call shape, on the host: a stable sort of (key, value) pairs on
 * the key bits [begin_bit, end_bit), as a radix sort orders them. The first
 * call (d_temp_storage NULL) asks for the temporary size; the sort then really
 * uses that temporary, so a caller that hands over less memory than it was told
 * gets cudaErrorInvalidValue. Runs in stream order (recorded while capturing).
 */
#ifndef FP8_CUDA_EMU_CUB_DEVICE_RADIX_SORT_CUH
#define FP8_CUDA_EMU_CUB_DEVICE_RADIX_SORT_CUH

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <cuda_runtime.h>

namespace cub {

struct DeviceRadixSort {
    template <class K, class V, class N>
    static cudaError_t SortPairs(void *d_temp_storage, size_t &temp_storage_bytes, const K *d_keys_in, K *d_keys_out,
                                 const V *d_values_in, V *d_values_out, N num_items, int begin_bit = 0,
                                 int end_bit = (int)(sizeof(K) * 8), cudaStream_t stream = 0) {
        static_assert(std::is_unsigned<K>::value, "the emulated SortPairs takes unsigned keys");
        struct Pair {
            K key;
            V value;
        };
        if (const int e = fp8emu::injected_failure("cub::DeviceRadixSort::SortPairs")) return (cudaError_t)e;
        const size_t n = num_items > 0 ? (size_t)num_items : 0;
        const size_t need = n * sizeof(Pair) + alignof(Pair);
        if (!d_temp_storage) {
            temp_storage_bytes = need;
            return cudaSuccess;
        }
        if (temp_storage_bytes < need || begin_bit < 0 || end_bit > (int)(sizeof(K) * 8) || begin_bit > end_bit)
            return cudaErrorInvalidValue;
        if (n == 0) return cudaSuccess;
        return fp8emu::submit_host(stream, [=] {
            const uintptr_t at = ((uintptr_t)d_temp_storage + alignof(Pair) - 1) / alignof(Pair) * alignof(Pair);
            Pair *pairs = (Pair *)at;
            for (size_t i = 0; i < n; i++) pairs[i] = {d_keys_in[i], d_values_in[i]};
            const int bits = end_bit - begin_bit;
            const K mask = bits >= (int)(sizeof(K) * 8) ? (K)~(K)0 : (K)(((K)1 << bits) - 1);
            if (bits > 0)
                std::stable_sort(pairs, pairs + n, [&](const Pair &x, const Pair &y) {
                    return ((x.key >> begin_bit) & mask) < ((y.key >> begin_bit) & mask);
                });
            for (size_t i = 0; i < n; i++) {
                d_keys_out[i] = pairs[i].key;
                d_values_out[i] = pairs[i].value;
            }
        });
    }
};

}  // namespace cub

#endif
