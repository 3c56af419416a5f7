// Tensor lifetime, metadata, creation, conversion and in-place updates.
#include "shim.hpp"
#include <cstring>
#include <sstream>
#include <sys/mman.h>

using mt::T;
using mt::ints;

extern "C" {

void mt_free(mt_tensor_t t) { delete reinterpret_cast<at::Tensor *>(t); }

mt_tensor_t mt_shallow_copy(mt_tensor_t t) { MT_TENSOR(T(t)) }

int64_t mt_dim(mt_tensor_t t) { return T(t).dim(); }

int mt_sizes(mt_tensor_t t, int64_t *out, size_t capacity) {
    auto s = T(t).sizes();
    if (s.size() > capacity) { mt::set_error("too many dimensions"); return -1; }
    std::copy(s.begin(), s.end(), out);
    return 0;
}

int mt_strides(mt_tensor_t t, int64_t *out, size_t capacity) {
    auto s = T(t).strides();
    if (s.size() > capacity) { mt::set_error("too many dimensions"); return -1; }
    std::copy(s.begin(), s.end(), out);
    return 0;
}

int64_t mt_numel(mt_tensor_t t) { return T(t).numel(); }
int mt_dtype(mt_tensor_t t) { return static_cast<int>(T(t).scalar_type()); }
int mt_device_type(mt_tensor_t t) { return static_cast<int>(T(t).device().type()); }
int mt_device_index(mt_tensor_t t) { return T(t).device().index(); }
int mt_is_contiguous(mt_tensor_t t) { return T(t).is_contiguous() ? 1 : 0; }
int mt_defined(mt_tensor_t t) { return T(t).defined() ? 1 : 0; }

int mt_item_double(mt_tensor_t t, double *out) { MT_STATUS(*out = T(t).item<double>()) }
int mt_item_int64(mt_tensor_t t, int64_t *out) { MT_STATUS(*out = T(t).item<int64_t>()) }

int mt_copy_to_buffer(mt_tensor_t t, void *buffer, size_t nbytes) {
    MT_TRY(-1,
        auto c = T(t).detach().to(at::kCPU).contiguous();
        size_t need = c.numel() * c.element_size();
        if (need != nbytes) {
            mt::set_error("buffer holds " + std::to_string(nbytes) + " bytes, tensor needs " + std::to_string(need));
            return -1;
        }
        if (need) std::memcpy(buffer, c.data_ptr(), need);
        return 0;
    )
}

size_t mt_element_size(int dtype) { return c10::elementSize(static_cast<at::ScalarType>(dtype)); }

const void *mt_data_ptr(mt_tensor_t t) { MT_TRY(nullptr, return T(t).data_ptr();) }

mt_tensor_t mt_from_buffer(const void *data, const int64_t *shape, size_t ndim, int dtype) {
    MT_TENSOR(at::from_blob(const_cast<void *>(data), ints(shape, ndim),
                            at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype))).clone())
}

#define MT_SHAPED(name, fn)                                                                    \
    mt_tensor_t name(const int64_t *shape, size_t ndim, int dtype, int device_type, int device_index) { \
        MT_TENSOR(fn(ints(shape, ndim), mt::options(dtype, device_type, device_index)))        \
    }
MT_SHAPED(mt_empty, at::empty)
MT_SHAPED(mt_zeros, at::zeros)
MT_SHAPED(mt_ones, at::ones)
MT_SHAPED(mt_rand, at::rand)
MT_SHAPED(mt_randn, at::randn)

// Zeros in pages of their own (an anonymous mapping, returned to the system when the tensor
// goes): a buffer of gigabytes that lives for one stage would otherwise grow the heap, which
// MedSeg keeps (see mt_init) and which then stays as large for the rest of the process.
mt_tensor_t mt_zeros_mapped(const int64_t *shape, size_t ndim, int dtype) {
    MT_TENSOR(([&] {
        auto sizes = ints(shape, ndim);
        auto options = at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype));
        size_t bytes = size_t(c10::multiply_integers(sizes)) * c10::elementSize(static_cast<at::ScalarType>(dtype));
        if (bytes == 0) return at::zeros(sizes, options);
        void *memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) throw std::runtime_error("cannot map " + std::to_string(bytes) + " bytes for a tensor: " + std::strerror(errno));
        return at::from_blob(memory, sizes, [bytes](void *p) { munmap(p, bytes); }, options);
    })())
}

mt_tensor_t mt_full(const int64_t *shape, size_t ndim, double value, int dtype, int device_type, int device_index) {
    MT_TENSOR(at::full(ints(shape, ndim), value, mt::options(dtype, device_type, device_index)))
}

mt_tensor_t mt_randint(int64_t low, int64_t high, const int64_t *shape, size_t ndim, int dtype, int device_type, int device_index) {
    MT_TENSOR(at::randint(low, high, ints(shape, ndim), mt::options(dtype, device_type, device_index)))
}

mt_tensor_t mt_randperm(int64_t n, int device_type, int device_index) {
    MT_TENSOR(at::randperm(n, mt::options(MT_INT64, device_type, device_index)))
}

mt_tensor_t mt_arange(double start, double end, double step, int dtype, int device_type, int device_index) {
    MT_TENSOR(at::arange(start, end, step, mt::options(dtype, device_type, device_index)))
}

mt_tensor_t mt_linspace(double start, double end, int64_t steps, int dtype, int device_type, int device_index) {
    MT_TENSOR(at::linspace(start, end, steps, mt::options(dtype, device_type, device_index)))
}

mt_tensor_t mt_eye(int64_t n, int dtype, int device_type, int device_index) {
    MT_TENSOR(at::eye(n, mt::options(dtype, device_type, device_index)))
}

mt_tensor_t mt_zeros_like(mt_tensor_t t) { MT_TENSOR(at::zeros_like(T(t))) }
mt_tensor_t mt_ones_like(mt_tensor_t t) { MT_TENSOR(at::ones_like(T(t))) }

mt_tensor_t mt_to(mt_tensor_t t, int dtype, int device_type, int device_index, int copy, int non_blocking) {
    MT_TENSOR(T(t).to(at::Device(static_cast<at::DeviceType>(device_type), static_cast<c10::DeviceIndex>(device_index)),
                      static_cast<at::ScalarType>(dtype), non_blocking != 0, copy != 0))
}

mt_tensor_t mt_pin_memory(mt_tensor_t t) { MT_TENSOR(T(t).pin_memory()) }
int mt_is_pinned(mt_tensor_t t) {
    try {
        return T(t).is_pinned() ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

mt_tensor_t mt_contiguous(mt_tensor_t t) { MT_TENSOR(T(t).contiguous()) }
mt_tensor_t mt_clone(mt_tensor_t t) { MT_TENSOR(T(t).clone()) }
mt_tensor_t mt_detach(mt_tensor_t t) { MT_TENSOR(T(t).detach()) }

int mt_copy_(mt_tensor_t dst, mt_tensor_t src) { MT_STATUS(T(dst).copy_(T(src))) }
int mt_zero_(mt_tensor_t t) { MT_STATUS(T(t).zero_()) }
int mt_fill_(mt_tensor_t t, double value) { MT_STATUS(T(t).fill_(mt::scalar_for(T(t), value))) }
int mt_add_(mt_tensor_t t, mt_tensor_t other, double alpha) { MT_STATUS(T(t).add_(T(other), alpha)) }
int mt_add_scalar_(mt_tensor_t t, double value) { MT_STATUS(T(t).add_(mt::scalar_for(T(t), value))) }
int mt_mul_(mt_tensor_t t, mt_tensor_t other) { MT_STATUS(T(t).mul_(T(other))) }
int mt_mul_scalar_(mt_tensor_t t, double value) { MT_STATUS(T(t).mul_(mt::scalar_for(T(t), value))) }
int mt_div_(mt_tensor_t t, mt_tensor_t other) { MT_STATUS(T(t).div_(T(other))) }
int mt_addcmul_(mt_tensor_t t, mt_tensor_t a, mt_tensor_t b, double value) { MT_STATUS(T(t).addcmul_(T(a), T(b), value)) }
int mt_addcdiv_(mt_tensor_t t, mt_tensor_t a, mt_tensor_t b, double value) { MT_STATUS(T(t).addcdiv_(T(a), T(b), value)) }
int mt_lerp_(mt_tensor_t t, mt_tensor_t end, double weight) { MT_STATUS(T(t).lerp_(T(end), weight)) }
int mt_clamp_(mt_tensor_t t, double min, double max, int has_min, int has_max) {
    MT_STATUS(T(t).clamp_(has_min ? c10::optional<at::Scalar>(min) : c10::nullopt,
                          has_max ? c10::optional<at::Scalar>(max) : c10::nullopt))
}
int mt_uniform_(mt_tensor_t t, double low, double high) { MT_STATUS(T(t).uniform_(low, high)) }
int mt_normal_(mt_tensor_t t, double mean, double std) { MT_STATUS(T(t).normal_(mean, std)) }
int mt_maximum_(mt_tensor_t t, mt_tensor_t other) { MT_STATUS(at::maximum_out(T(t), T(t), T(other))) }

size_t mt_list_size(mt_list_t l) { return l->items.size(); }
mt_tensor_t mt_list_get(mt_list_t l, size_t i) { MT_TENSOR(l->items.at(i)) }
void mt_list_free(mt_list_t l) { delete l; }

int mt_requires_grad(mt_tensor_t t) { return T(t).requires_grad() ? 1 : 0; }
int mt_set_requires_grad(mt_tensor_t t, int flag) { MT_STATUS(T(t).requires_grad_(flag != 0)) }
mt_tensor_t mt_grad(mt_tensor_t t) {
    MT_TRY(nullptr,
        const at::Tensor &g = T(t).grad();
        if (!g.defined()) { mt::set_error(""); return nullptr; }
        return mt::wrap(g);
    )
}
int mt_set_grad(mt_tensor_t t, mt_tensor_t grad) {
    MT_STATUS(T(t).mutable_grad() = grad ? T(grad) : at::Tensor())
}
int mt_backward(mt_tensor_t t, mt_tensor_t gradient, int retain_graph) {
    MT_STATUS(T(t).backward(gradient ? T(gradient) : at::Tensor(),
                            retain_graph ? c10::optional<bool>(true) : c10::nullopt))
}
int mt_is_leaf(mt_tensor_t t) { return T(t).is_leaf() ? 1 : 0; }
int mt_set_data(mt_tensor_t t, mt_tensor_t src) { MT_STATUS(T(t).set_data(T(src))) }

int mt_allclose(mt_tensor_t a, mt_tensor_t b, double rtol, double atol) {
    MT_TRY(-1, return at::allclose(T(a), T(b), rtol, atol) ? 1 : 0;)
}
int mt_equal(mt_tensor_t a, mt_tensor_t b) { MT_TRY(-1, return at::equal(T(a), T(b)) ? 1 : 0;) }

char *mt_to_string(mt_tensor_t t) {
    MT_TRY(nullptr,
        std::ostringstream s;
        s << T(t);
        return strdup(s.str().c_str());
    )
}
void mt_free_string(char *s) { free(s); }

} // extern "C"
