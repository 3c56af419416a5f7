/* Pure C interface to libtorch used by the Swift `Torch` target.
 *
 * Conventions:
 *  - Tensors are opaque handles owned by the caller; free each with mt_free.
 *  - Functions returning a handle return NULL on failure; functions returning int return 0 on
 *    success and -1 on failure. The failure message is kept per thread in mt_last_error().
 *  - Shapes and other integer lists are passed as (pointer, count).
 *  - Optional tensor arguments accept NULL.
 */
#ifndef CTORCH_H
#define CTORCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_tensor_s *mt_tensor_t;
typedef struct mt_list_s *mt_list_t;

/* dtype codes (same numbering as c10::ScalarType) */
enum {
    MT_UINT8 = 0, MT_INT8 = 1, MT_INT16 = 2, MT_INT32 = 3, MT_INT64 = 4,
    MT_FLOAT16 = 5, MT_FLOAT32 = 6, MT_FLOAT64 = 7, MT_BOOL = 11, MT_BFLOAT16 = 15
};
/* device type codes (same numbering as c10::DeviceType) */
enum { MT_CPU = 0, MT_CUDA = 1 };
/* loss reductions (same numbering as at::Reduction) */
enum { MT_REDUCTION_NONE = 0, MT_REDUCTION_MEAN = 1, MT_REDUCTION_SUM = 2 };
/* interpolation modes */
enum { MT_NEAREST = 0, MT_LINEAR = 1, MT_BILINEAR = 2, MT_TRILINEAR = 3, MT_BICUBIC = 4 };
/* padding modes for mt_pad */
enum { MT_PAD_CONSTANT = 0, MT_PAD_REFLECT = 1, MT_PAD_REPLICATE = 2, MT_PAD_CIRCULAR = 3 };

/* ---- errors and runtime ---- */
const char *mt_last_error(void);
const char *mt_version(void);
int mt_init(void);
/* Returns the heap's free pages to the system (glibc's malloc_trim): MedSeg keeps large freed
 * blocks on the heap for speed, which a long process should shed between its stages. */
void mt_release_free_memory(void);
int mt_get_num_threads(void);
int mt_set_num_threads(int n);
int mt_manual_seed(uint64_t seed);
int mt_cuda_is_available(void);
int mt_cuda_device_count(void);
int mt_cudnn_is_available(void);
int mt_cuda_device_name(int index, char *buffer, size_t capacity);
/* The device's memory in bytes, from the CUDA driver; -1 where there is no driver or device. */
int64_t mt_cuda_total_memory(int index);
int mt_cuda_synchronize(int index);
int64_t mt_cuda_peak_allocated(int index, int reset);
int mt_has_gloo(void);
int mt_has_nccl(void);
const char *mt_config(void);
int mt_blas_library(char *buffer, size_t capacity);
mt_tensor_t mt_get_rng_state(void);
int mt_set_rng_state(mt_tensor_t state);

/* ---- autograd mode ---- */
int mt_is_grad_enabled(void);
void mt_set_grad_enabled(int enabled);

/* ---- lifetime and metadata ---- */
void mt_free(mt_tensor_t t);
mt_tensor_t mt_shallow_copy(mt_tensor_t t);
int64_t mt_dim(mt_tensor_t t);
int mt_sizes(mt_tensor_t t, int64_t *out, size_t capacity);
int mt_strides(mt_tensor_t t, int64_t *out, size_t capacity);
int64_t mt_numel(mt_tensor_t t);
int mt_dtype(mt_tensor_t t);
int mt_device_type(mt_tensor_t t);
int mt_device_index(mt_tensor_t t);
int mt_is_contiguous(mt_tensor_t t);
int mt_defined(mt_tensor_t t);
int mt_item_double(mt_tensor_t t, double *out);
int mt_item_int64(mt_tensor_t t, int64_t *out);
/* copies the (contiguous, CPU) contents into buffer, which must hold numel * element size bytes */
int mt_copy_to_buffer(mt_tensor_t t, void *buffer, size_t nbytes);
size_t mt_element_size(int dtype);
const void *mt_data_ptr(mt_tensor_t t);

/* ---- creation ---- */
mt_tensor_t mt_from_buffer(const void *data, const int64_t *shape, size_t ndim, int dtype);
mt_tensor_t mt_empty(const int64_t *shape, size_t ndim, int dtype, int device_type, int device_index);
mt_tensor_t mt_zeros(const int64_t *shape, size_t ndim, int dtype, int device_type, int device_index);
/* Zeros on the CPU in an anonymous mapping of their own, unmapped when the tensor is freed. */
mt_tensor_t mt_zeros_mapped(const int64_t *shape, size_t ndim, int dtype);
mt_tensor_t mt_ones(const int64_t *shape, size_t ndim, int dtype, int device_type, int device_index);
mt_tensor_t mt_full(const int64_t *shape, size_t ndim, double value, int dtype, int device_type, int device_index);
mt_tensor_t mt_rand(const int64_t *shape, size_t ndim, int dtype, int device_type, int device_index);
mt_tensor_t mt_randn(const int64_t *shape, size_t ndim, int dtype, int device_type, int device_index);
mt_tensor_t mt_randint(int64_t low, int64_t high, const int64_t *shape, size_t ndim, int dtype, int device_type, int device_index);
mt_tensor_t mt_randperm(int64_t n, int device_type, int device_index);
mt_tensor_t mt_arange(double start, double end, double step, int dtype, int device_type, int device_index);
mt_tensor_t mt_linspace(double start, double end, int64_t steps, int dtype, int device_type, int device_index);
mt_tensor_t mt_eye(int64_t n, int dtype, int device_type, int device_index);
mt_tensor_t mt_zeros_like(mt_tensor_t t);
mt_tensor_t mt_ones_like(mt_tensor_t t);

/* ---- conversion ---- */
/* non_blocking: a copy from pinned host memory to a GPU (or back) is queued on the current stream
 * and returns at once. */
mt_tensor_t mt_to(mt_tensor_t t, int dtype, int device_type, int device_index, int copy, int non_blocking);
/* A copy of a CPU tensor in page-locked memory (fails without CUDA); whether a tensor is in it. */
mt_tensor_t mt_pin_memory(mt_tensor_t t);
int mt_is_pinned(mt_tensor_t t);
mt_tensor_t mt_contiguous(mt_tensor_t t);
mt_tensor_t mt_clone(mt_tensor_t t);
mt_tensor_t mt_detach(mt_tensor_t t);

/* ---- in-place ---- */
int mt_copy_(mt_tensor_t dst, mt_tensor_t src);
int mt_zero_(mt_tensor_t t);
int mt_fill_(mt_tensor_t t, double value);
int mt_add_(mt_tensor_t t, mt_tensor_t other, double alpha);
int mt_add_scalar_(mt_tensor_t t, double value);
int mt_mul_(mt_tensor_t t, mt_tensor_t other);
int mt_mul_scalar_(mt_tensor_t t, double value);
int mt_div_(mt_tensor_t t, mt_tensor_t other);
int mt_addcmul_(mt_tensor_t t, mt_tensor_t a, mt_tensor_t b, double value);
int mt_addcdiv_(mt_tensor_t t, mt_tensor_t a, mt_tensor_t b, double value);
int mt_lerp_(mt_tensor_t t, mt_tensor_t end, double weight);
int mt_clamp_(mt_tensor_t t, double min, double max, int has_min, int has_max);
int mt_uniform_(mt_tensor_t t, double low, double high);
int mt_normal_(mt_tensor_t t, double mean, double std);
int mt_maximum_(mt_tensor_t t, mt_tensor_t other);

/* ---- elementwise (binary) ---- */
/* Operation codes are named types: Swift passes them by name and the compiler checks both sides. */
typedef enum mt_binary_op {
    MT_OP_ADD = 0, MT_OP_SUB, MT_OP_MUL, MT_OP_DIV, MT_OP_POW, MT_OP_MAXIMUM, MT_OP_MINIMUM,
    MT_OP_EQ, MT_OP_NE, MT_OP_LT, MT_OP_LE, MT_OP_GT, MT_OP_GE,
    MT_OP_LOGICAL_AND, MT_OP_LOGICAL_OR, MT_OP_REMAINDER, MT_OP_ATAN2, MT_OP_FLOOR_DIVIDE
} mt_binary_op;
mt_tensor_t mt_binary(mt_binary_op op, mt_tensor_t a, mt_tensor_t b);
mt_tensor_t mt_binary_scalar(mt_binary_op op, mt_tensor_t a, double b);
/* scalar on the left: b (op) a */
mt_tensor_t mt_scalar_binary(mt_binary_op op, double a, mt_tensor_t b);

/* ---- elementwise (unary) ---- */
typedef enum mt_unary_op {
    MT_OP_NEG = 0, MT_OP_EXP, MT_OP_LOG, MT_OP_SQRT, MT_OP_RSQRT, MT_OP_ABS, MT_OP_SIGN,
    MT_OP_FLOOR, MT_OP_CEIL, MT_OP_ROUND, MT_OP_ERF, MT_OP_SIN, MT_OP_COS, MT_OP_RECIPROCAL,
    MT_OP_SQUARE, MT_OP_RELU, MT_OP_SIGMOID, MT_OP_TANH, MT_OP_SILU, MT_OP_LOGICAL_NOT,
    MT_OP_ISNAN, MT_OP_ISFINITE, MT_OP_LOG1P, MT_OP_EXPM1, MT_OP_TRUNC, MT_OP_LOG2, MT_OP_ERFINV
} mt_unary_op;
mt_tensor_t mt_unary(mt_unary_op op, mt_tensor_t a);
mt_tensor_t mt_clamp(mt_tensor_t t, double min, double max, int has_min, int has_max);
mt_tensor_t mt_where(mt_tensor_t cond, mt_tensor_t a, mt_tensor_t b);
mt_tensor_t mt_masked_fill(mt_tensor_t t, mt_tensor_t mask, double value);
mt_tensor_t mt_lerp(mt_tensor_t a, mt_tensor_t b, double weight);

/* ---- reductions ---- */
typedef enum mt_reduction_op {
    MT_RED_SUM = 0, MT_RED_MEAN, MT_RED_AMAX, MT_RED_AMIN, MT_RED_PROD, MT_RED_ANY, MT_RED_ALL, MT_RED_LOGSUMEXP
} mt_reduction_op;
/* dims == NULL / ndims == 0 reduces over every dimension */
mt_tensor_t mt_reduce(mt_reduction_op op, mt_tensor_t t, const int64_t *dims, size_t ndims, int keepdim);
mt_tensor_t mt_var(mt_tensor_t t, const int64_t *dims, size_t ndims, int64_t correction, int keepdim, int take_sqrt);
mt_tensor_t mt_norm(mt_tensor_t t, double p, const int64_t *dims, size_t ndims, int keepdim);
mt_tensor_t mt_argmax(mt_tensor_t t, int64_t dim, int has_dim, int keepdim);
mt_tensor_t mt_argmin(mt_tensor_t t, int64_t dim, int has_dim, int keepdim);
mt_tensor_t mt_cumsum(mt_tensor_t t, int64_t dim);
mt_tensor_t mt_max_dim(mt_tensor_t t, int64_t dim, int keepdim, mt_tensor_t *indices_out);
mt_list_t mt_topk(mt_tensor_t t, int64_t k, int64_t dim, int largest, int sorted);
mt_list_t mt_sort(mt_tensor_t t, int64_t dim, int descending);
mt_tensor_t mt_unique(mt_tensor_t t);
mt_tensor_t mt_bincount(mt_tensor_t t, int64_t minlength);
mt_tensor_t mt_nonzero(mt_tensor_t t);

/* ---- linear algebra ---- */
mt_tensor_t mt_matmul(mt_tensor_t a, mt_tensor_t b);
mt_tensor_t mt_linear(mt_tensor_t x, mt_tensor_t w, mt_tensor_t bias);

/* ---- shape ---- */
mt_tensor_t mt_reshape(mt_tensor_t t, const int64_t *shape, size_t ndim);
mt_tensor_t mt_view(mt_tensor_t t, const int64_t *shape, size_t ndim);
mt_tensor_t mt_expand(mt_tensor_t t, const int64_t *shape, size_t ndim);
mt_tensor_t mt_repeat(mt_tensor_t t, const int64_t *repeats, size_t ndim);
mt_tensor_t mt_permute(mt_tensor_t t, const int64_t *dims, size_t ndim);
mt_tensor_t mt_transpose(mt_tensor_t t, int64_t d0, int64_t d1);
mt_tensor_t mt_flatten(mt_tensor_t t, int64_t start, int64_t end);
mt_tensor_t mt_squeeze(mt_tensor_t t, int64_t dim, int has_dim);
mt_tensor_t mt_unsqueeze(mt_tensor_t t, int64_t dim);
mt_tensor_t mt_flip(mt_tensor_t t, const int64_t *dims, size_t ndim);
mt_tensor_t mt_roll(mt_tensor_t t, const int64_t *shifts, const int64_t *dims, size_t n);
mt_tensor_t mt_slice(mt_tensor_t t, int64_t dim, int64_t start, int64_t end, int64_t step);
mt_tensor_t mt_select(mt_tensor_t t, int64_t dim, int64_t index);
mt_tensor_t mt_index_select(mt_tensor_t t, int64_t dim, mt_tensor_t index);
mt_tensor_t mt_gather(mt_tensor_t t, int64_t dim, mt_tensor_t index);
mt_tensor_t mt_scatter(mt_tensor_t t, int64_t dim, mt_tensor_t index, mt_tensor_t src);
mt_tensor_t mt_masked_select(mt_tensor_t t, mt_tensor_t mask);
mt_tensor_t mt_cat(const mt_tensor_t *ts, size_t n, int64_t dim);
mt_tensor_t mt_stack(const mt_tensor_t *ts, size_t n, int64_t dim);
mt_list_t mt_split(mt_tensor_t t, int64_t split_size, int64_t dim);
mt_list_t mt_split_sizes(mt_tensor_t t, const int64_t *sizes, size_t n, int64_t dim);
mt_list_t mt_chunk(mt_tensor_t t, int64_t chunks, int64_t dim);
/* pad: (left, right) pairs starting from the last dimension, as torch.nn.functional.pad */
mt_tensor_t mt_pad(mt_tensor_t t, const int64_t *pad, size_t n, int mode, double value);

/* ---- lists ---- */
size_t mt_list_size(mt_list_t l);
mt_tensor_t mt_list_get(mt_list_t l, size_t i);
void mt_list_free(mt_list_t l);

/* ---- neural network functions ---- */
mt_tensor_t mt_convolution(mt_tensor_t x, mt_tensor_t w, mt_tensor_t bias,
                           const int64_t *stride, const int64_t *padding, const int64_t *dilation,
                           int transposed, const int64_t *output_padding, size_t nspatial, int64_t groups);
mt_tensor_t mt_max_pool(mt_tensor_t x, size_t nspatial, const int64_t *kernel, const int64_t *stride,
                        const int64_t *padding, const int64_t *dilation, int ceil_mode);
mt_tensor_t mt_avg_pool(mt_tensor_t x, size_t nspatial, const int64_t *kernel, const int64_t *stride,
                        const int64_t *padding, int ceil_mode, int count_include_pad);
mt_tensor_t mt_adaptive_avg_pool(mt_tensor_t x, size_t nspatial, const int64_t *output_size);
mt_tensor_t mt_adaptive_max_pool(mt_tensor_t x, size_t nspatial, const int64_t *output_size);
mt_tensor_t mt_batch_norm(mt_tensor_t x, mt_tensor_t weight, mt_tensor_t bias, mt_tensor_t running_mean,
                          mt_tensor_t running_var, int training, double momentum, double eps);
mt_tensor_t mt_instance_norm(mt_tensor_t x, mt_tensor_t weight, mt_tensor_t bias, mt_tensor_t running_mean,
                             mt_tensor_t running_var, int use_input_stats, double momentum, double eps);
mt_tensor_t mt_group_norm(mt_tensor_t x, int64_t groups, mt_tensor_t weight, mt_tensor_t bias, double eps);
mt_tensor_t mt_layer_norm(mt_tensor_t x, const int64_t *normalized_shape, size_t n, mt_tensor_t weight,
                          mt_tensor_t bias, double eps);
/* output_size has one entry per spatial dimension */
mt_tensor_t mt_interpolate(mt_tensor_t x, const int64_t *output_size, size_t nspatial, int mode, int align_corners);
mt_tensor_t mt_leaky_relu(mt_tensor_t x, double slope);
int mt_relu_(mt_tensor_t x);
/* approximate: 0 = exact erf form, 1 = tanh */
mt_tensor_t mt_gelu(mt_tensor_t x, int approximate);
mt_tensor_t mt_gelu_unpatched(mt_tensor_t x);
mt_tensor_t mt_softplus(mt_tensor_t x, double beta, double threshold);
mt_tensor_t mt_elu(mt_tensor_t x, double alpha);
mt_tensor_t mt_softmax(mt_tensor_t x, int64_t dim);
mt_tensor_t mt_log_softmax(mt_tensor_t x, int64_t dim);
mt_tensor_t mt_dropout(mt_tensor_t x, double p, int train);
mt_tensor_t mt_feature_dropout(mt_tensor_t x, double p, int train);
mt_tensor_t mt_bce_with_logits(mt_tensor_t x, mt_tensor_t target, mt_tensor_t weight, mt_tensor_t pos_weight, int reduction);
mt_tensor_t mt_bce(mt_tensor_t x, mt_tensor_t target, mt_tensor_t weight, int reduction);
mt_tensor_t mt_cross_entropy(mt_tensor_t x, mt_tensor_t target, mt_tensor_t weight, int reduction,
                             int64_t ignore_index, double label_smoothing);
mt_tensor_t mt_nll_loss(mt_tensor_t x, mt_tensor_t target, mt_tensor_t weight, int reduction, int64_t ignore_index);
mt_tensor_t mt_mse_loss(mt_tensor_t x, mt_tensor_t target, int reduction);
mt_tensor_t mt_l1_loss(mt_tensor_t x, mt_tensor_t target, int reduction);
mt_tensor_t mt_affine_grid(mt_tensor_t theta, const int64_t *size, size_t n, int align_corners);
/* mode: 0 bilinear, 1 nearest, 2 bicubic; padding: 0 zeros, 1 border, 2 reflection */
mt_tensor_t mt_grid_sample(mt_tensor_t x, mt_tensor_t grid, int mode, int padding_mode, int align_corners);
mt_tensor_t mt_one_hot(mt_tensor_t t, int64_t num_classes);

/* ---- autograd ---- */
int mt_requires_grad(mt_tensor_t t);
int mt_set_requires_grad(mt_tensor_t t, int flag);
/* NULL (without an error) when the gradient is undefined */
mt_tensor_t mt_grad(mt_tensor_t t);
int mt_set_grad(mt_tensor_t t, mt_tensor_t grad);
int mt_backward(mt_tensor_t t, mt_tensor_t gradient, int retain_graph);
int mt_is_leaf(mt_tensor_t t);
/* replaces t's data with src's, keeping t's autograd identity (used to move parameters) */
int mt_set_data(mt_tensor_t t, mt_tensor_t src);

/* ---- distributed (c10d: TCPStore + Gloo, DDP Reducer) ---- */
typedef struct mt_pg_s *mt_pg_t;
typedef struct mt_reducer_s *mt_reducer_t;
/* rank 0 hosts the TCPStore at master_addr:master_port; every call waits at most timeout_ms */
/* use_nccl: CUDA tensors through NCCL (builds against a CUDA libtorch only), CPU tensors through Gloo. */
int mt_end_with_parent(int parent);
/// `host_store`: this process serves the TCPStore (rank 0 of MedSeg's launcher; nobody under
/// torchrun, whose agent serves it). `key_prefix` (may be empty) keeps this group's keys apart.
mt_pg_t mt_pg_create(const char *master_addr, int master_port, int rank, int world_size, int timeout_ms, int use_nccl,
                     int host_store, const char *key_prefix);
void mt_pg_free(mt_pg_t pg);
/* sums in place across ranks */
int mt_pg_allreduce(mt_pg_t pg, mt_tensor_t t);
int mt_pg_broadcast(mt_pg_t pg, mt_tensor_t t, int root);
mt_list_t mt_pg_allgather(mt_pg_t pg, mt_tensor_t t);
int mt_pg_barrier(mt_pg_t pg);
/* a differentiable sum across ranks (out of place): its backward all-reduces the gradient */
mt_tensor_t mt_pg_allreduce_differentiable(mt_pg_t pg, mt_tensor_t t);
mt_reducer_t mt_reducer_create(mt_pg_t pg, const mt_tensor_t *params, size_t n, int64_t bucket_bytes,
                               int64_t first_bucket_bytes, int find_unused);
/* call after the forward pass, before backward, with the outputs the loss depends on */
int mt_reducer_prepare_for_backward(mt_reducer_t r, const mt_tensor_t *outputs, size_t n);
int mt_reducer_bucket_count(mt_reducer_t r);
void mt_reducer_free(mt_reducer_t r);

/* ---- mixed precision and memory layout ---- */
/* memory formats (same numbering as c10::MemoryFormat) */
enum { MT_FORMAT_CONTIGUOUS = 0, MT_FORMAT_PRESERVE = 1, MT_FORMAT_CHANNELS_LAST = 2, MT_FORMAT_CHANNELS_LAST_3D = 3 };
/* autocast state of this thread for a device type (MT_CPU or MT_CUDA) */
int mt_autocast_is_enabled(int device_type);
int mt_autocast_get_dtype(int device_type);
int mt_autocast_set(int device_type, int enabled, int dtype);
/* nesting depth after the change; leaving the outermost scope (0) should clear the cast cache */
int mt_autocast_increment_nesting(void);
int mt_autocast_decrement_nesting(void);
int mt_autocast_clear_cache(void);
/* multiplies every gradient by inv_scale in place; *found_inf = 1 when any held inf or NaN */
int mt_amp_unscale_(const mt_tensor_t *grads, size_t n, double inv_scale, int *found_inf);
mt_tensor_t mt_contiguous_format(mt_tensor_t t, int memory_format);
int mt_is_contiguous_format(mt_tensor_t t, int memory_format);
int mt_cudnn_benchmark(void);
void mt_set_cudnn_benchmark(int enabled);
/* deterministic algorithms only (and deterministic cuDNN without benchmark mode, cuBLAS's fixed workspace) */
int mt_set_deterministic(int enabled);
int mt_deterministic(void);
/* libtorch's (Kineto) profiler: CPU ops, and CUDA kernels with `cuda`; stop writes a Chrome trace */
int mt_profiler_start(int cuda);
int mt_profiler_stop(const char *trace_path);

/* ---- selective scan (Mamba) ---- */
/* Mamba's selective_scan_fn (float32, time-invariant A); fused kernel on the CPU, NVRTC kernels or
 * ATen fallback on CUDA (see mt_selective_scan_backend):
 * u, delta, z [B, E, L]; A [E, N]; B, C [B, N, L]; D, delta_bias [E]; returns y [B, E, L] with
 * y_t = sum_n C_t[n] h_t[n] + D u_t (times silu(z_t) when z is given),
 * h_t[n] = exp(dt_t A[n]) h_{t-1}[n] + dt_t B_t[n] u_t, dt_t = softplus(delta_t + delta_bias)
 * (without softplus when delta_softplus is 0). D, z and delta_bias may be NULL. The result is
 * differentiable (a libtorch autograd function) with respect to every tensor argument. */
mt_tensor_t mt_selective_scan(mt_tensor_t u, mt_tensor_t delta, mt_tensor_t A, mt_tensor_t B, mt_tensor_t C,
                              mt_tensor_t D, mt_tensor_t z, mt_tensor_t delta_bias, int delta_softplus);
/* The explicit backward for an output gradient, without autograd: a list of 8 tensors
 * (du, ddelta, dA, dB, dC, dD, dz, ddelta_bias); the entries of absent optional inputs are zeros. */
mt_list_t mt_selective_scan_backward(mt_tensor_t grad_out, mt_tensor_t u, mt_tensor_t delta, mt_tensor_t A,
                                     mt_tensor_t B, mt_tensor_t C, mt_tensor_t D, mt_tensor_t z,
                                     mt_tensor_t delta_bias, int delta_softplus);
/* Which implementation mt_selective_scan takes for inputs like u: "fused CPU kernel", "NVRTC CUDA
 * kernels", "CUDA kernels emulated on the CPU" (MEDSEG_SCAN=emulated, CPU tensors) or "ATen
 * fallback" (CUDA without a loadable NVRTC/driver, other devices, or MEDSEG_SCAN=fallback); a
 * static string. */
const char *mt_selective_scan_backend(mt_tensor_t u);
/* The PTX NVRTC makes of the scan's CUDA kernels for a virtual architecture ("compute_80"), with
 * the NVRTC library at nvrtc_library (NULL: the one the CUDA path finds); needs no GPU. Free with
 * mt_free_string; NULL with mt_last_error (NVRTC's log) on failure. */
char *mt_selective_scan_kernels_ptx(const char *nvrtc_library, const char *architecture);

/* ---- misc ---- */
int mt_allclose(mt_tensor_t a, mt_tensor_t b, double rtol, double atol);
int mt_equal(mt_tensor_t a, mt_tensor_t b);
/* a human-readable rendering, as printed by libtorch; caller frees with mt_free_string */
char *mt_to_string(mt_tensor_t t);
void mt_free_string(char *s);

#ifdef __cplusplus
}
#endif
#endif
