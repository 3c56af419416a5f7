// Elementwise math, reductions, linear algebra and shape manipulation.
#include "shim.hpp"

using mt::T;
using mt::ints;

namespace {
at::Tensor binary(mt_binary_op op, const at::Tensor &a, const at::Tensor &b) {
    switch (op) {
    case MT_OP_ADD: return at::add(a, b);
    case MT_OP_SUB: return at::sub(a, b);
    case MT_OP_MUL: return at::mul(a, b);
    case MT_OP_DIV: return at::div(a, b);
    case MT_OP_POW: return at::pow(a, b);
    case MT_OP_MAXIMUM: return at::maximum(a, b);
    case MT_OP_MINIMUM: return at::minimum(a, b);
    case MT_OP_EQ: return at::eq(a, b);
    case MT_OP_NE: return at::ne(a, b);
    case MT_OP_LT: return at::lt(a, b);
    case MT_OP_LE: return at::le(a, b);
    case MT_OP_GT: return at::gt(a, b);
    case MT_OP_GE: return at::ge(a, b);
    case MT_OP_LOGICAL_AND: return at::logical_and(a, b);
    case MT_OP_LOGICAL_OR: return at::logical_or(a, b);
    case MT_OP_REMAINDER: return at::remainder(a, b);
    case MT_OP_ATAN2: return at::atan2(a, b);
    case MT_OP_FLOOR_DIVIDE: return at::div(a, b, "floor");
    }
    throw std::invalid_argument("unknown binary op " + std::to_string(op));
}

at::Tensor scalar_tensor_like(double v, const at::Tensor &like) {
    // A CPU "wrapped number" takes part in type promotion exactly as a Python scalar does (it
    // never widens the other operand's dtype) and combines with tensors on any device.
    at::Scalar s = mt::scalar_for(like, v);
    at::Tensor t = at::scalar_tensor(s, at::TensorOptions().dtype(s.isIntegral(false) ? at::kLong : at::kDouble));
    t.unsafeGetTensorImpl()->set_wrapped_number(true);
    return t;
}

at::Tensor unary(mt_unary_op op, const at::Tensor &a) {
    switch (op) {
    case MT_OP_NEG: return at::neg(a);
    case MT_OP_EXP: return at::exp(a);
    case MT_OP_LOG: return at::log(a);
    case MT_OP_SQRT: return at::sqrt(a);
    case MT_OP_RSQRT: return at::rsqrt(a);
    case MT_OP_ABS: return at::abs(a);
    case MT_OP_SIGN: return at::sign(a);
    case MT_OP_FLOOR: return at::floor(a);
    case MT_OP_CEIL: return at::ceil(a);
    case MT_OP_ROUND: return at::round(a);
    case MT_OP_ERF: return at::erf(a);
    case MT_OP_SIN: return at::sin(a);
    case MT_OP_COS: return at::cos(a);
    case MT_OP_RECIPROCAL: return at::reciprocal(a);
    case MT_OP_SQUARE: return at::square(a);
    case MT_OP_RELU: return at::relu(a);
    case MT_OP_SIGMOID: return at::sigmoid(a);
    case MT_OP_TANH: return at::tanh(a);
    case MT_OP_SILU: return at::silu(a);
    case MT_OP_LOGICAL_NOT: return at::logical_not(a);
    case MT_OP_ISNAN: return at::isnan(a);
    case MT_OP_ISFINITE: return at::isfinite(a);
    case MT_OP_LOG1P: return at::log1p(a);
    case MT_OP_EXPM1: return at::expm1(a);
    case MT_OP_TRUNC: return at::trunc(a);
    case MT_OP_LOG2: return at::log2(a);
    case MT_OP_ERFINV: return at::erfinv(a);
    }
    throw std::invalid_argument("unknown unary op " + std::to_string(op));
}

c10::OptionalIntArrayRef opt_dims(const int64_t *dims, size_t n) {
    if (!dims || n == 0) return c10::nullopt;
    return ints(dims, n);
}
} // namespace

extern "C" {

mt_tensor_t mt_binary(mt_binary_op op, mt_tensor_t a, mt_tensor_t b) { MT_TENSOR(binary(op, T(a), T(b))) }

mt_tensor_t mt_binary_scalar(mt_binary_op op, mt_tensor_t a, double b) {
    MT_TENSOR(binary(op, T(a), scalar_tensor_like(b, T(a))))
}

mt_tensor_t mt_scalar_binary(mt_binary_op op, double a, mt_tensor_t b) {
    MT_TENSOR(binary(op, scalar_tensor_like(a, T(b)), T(b)))
}

mt_tensor_t mt_unary(mt_unary_op op, mt_tensor_t a) { MT_TENSOR(unary(op, T(a))) }

mt_tensor_t mt_clamp(mt_tensor_t t, double min, double max, int has_min, int has_max) {
    MT_TENSOR(at::clamp(T(t), has_min ? c10::optional<at::Scalar>(min) : c10::nullopt,
                        has_max ? c10::optional<at::Scalar>(max) : c10::nullopt))
}

mt_tensor_t mt_where(mt_tensor_t cond, mt_tensor_t a, mt_tensor_t b) { MT_TENSOR(at::where(T(cond), T(a), T(b))) }
mt_tensor_t mt_masked_fill(mt_tensor_t t, mt_tensor_t mask, double value) { MT_TENSOR(T(t).masked_fill(T(mask), value)) }
mt_tensor_t mt_lerp(mt_tensor_t a, mt_tensor_t b, double weight) { MT_TENSOR(at::lerp(T(a), T(b), weight)) }

mt_tensor_t mt_reduce(mt_reduction_op op, mt_tensor_t t, const int64_t *dims, size_t ndims, int keepdim) {
    MT_TRY(nullptr,
        const at::Tensor &x = T(t);
        bool all = !dims || ndims == 0;
        at::IntArrayRef d = all ? at::IntArrayRef() : ints(dims, ndims);
        switch (op) {
        case MT_RED_SUM: return mt::wrap(all && !keepdim ? x.sum() : at::sum(x, opt_dims(dims, ndims), keepdim));
        case MT_RED_MEAN: return mt::wrap(all && !keepdim ? x.mean() : at::mean(x, opt_dims(dims, ndims), keepdim));
        case MT_RED_AMAX: return mt::wrap(at::amax(x, d, keepdim));
        case MT_RED_AMIN: return mt::wrap(at::amin(x, d, keepdim));
        case MT_RED_PROD:
            if (all) return mt::wrap(x.prod());
            if (ndims != 1) throw std::invalid_argument("prod reduces over one dimension");
            return mt::wrap(at::prod(x, dims[0], keepdim));
        case MT_RED_ANY:
            if (all) return mt::wrap(x.any());
            if (ndims != 1) throw std::invalid_argument("any reduces over one dimension");
            return mt::wrap(at::any(x, dims[0], keepdim));
        case MT_RED_ALL:
            if (all) return mt::wrap(x.all());
            if (ndims != 1) throw std::invalid_argument("all reduces over one dimension");
            return mt::wrap(at::all(x, dims[0], keepdim));
        case MT_RED_LOGSUMEXP: {
            std::vector<int64_t> every;
            if (all) for (int64_t i = 0; i < x.dim(); ++i) every.push_back(i);
            return mt::wrap(at::logsumexp(x, all ? at::IntArrayRef(every) : d, keepdim));
        }
        }
        throw std::invalid_argument("unknown reduction " + std::to_string(op));
    )
}

mt_tensor_t mt_var(mt_tensor_t t, const int64_t *dims, size_t ndims, int64_t correction, int keepdim, int take_sqrt) {
    MT_TENSOR(take_sqrt ? at::std(T(t), opt_dims(dims, ndims), correction, keepdim)
                        : at::var(T(t), opt_dims(dims, ndims), correction, keepdim))
}

mt_tensor_t mt_norm(mt_tensor_t t, double p, const int64_t *dims, size_t ndims, int keepdim) {
    MT_TRY(nullptr,
        if (!dims || ndims == 0) return mt::wrap(at::norm(T(t), p));
        return mt::wrap(at::norm(T(t), p, ints(dims, ndims), keepdim));
    )
}

mt_tensor_t mt_argmax(mt_tensor_t t, int64_t dim, int has_dim, int keepdim) {
    MT_TENSOR(at::argmax(T(t), has_dim ? c10::optional<int64_t>(dim) : c10::nullopt, keepdim))
}
mt_tensor_t mt_argmin(mt_tensor_t t, int64_t dim, int has_dim, int keepdim) {
    MT_TENSOR(at::argmin(T(t), has_dim ? c10::optional<int64_t>(dim) : c10::nullopt, keepdim))
}
mt_tensor_t mt_cumsum(mt_tensor_t t, int64_t dim) { MT_TENSOR(at::cumsum(T(t), dim)) }

mt_tensor_t mt_max_dim(mt_tensor_t t, int64_t dim, int keepdim, mt_tensor_t *indices_out) {
    MT_TRY(nullptr,
        auto r = at::max(T(t), dim, keepdim);
        if (indices_out) *indices_out = mt::wrap(std::get<1>(r));
        return mt::wrap(std::get<0>(r));
    )
}

mt_list_t mt_topk(mt_tensor_t t, int64_t k, int64_t dim, int largest, int sorted) {
    MT_TRY(nullptr,
        auto r = at::topk(T(t), k, dim, largest != 0, sorted != 0);
        return mt::wrap_list({std::get<0>(r), std::get<1>(r)});
    )
}

mt_list_t mt_sort(mt_tensor_t t, int64_t dim, int descending) {
    MT_TRY(nullptr,
        auto r = at::sort(T(t), dim, descending != 0);
        return mt::wrap_list({std::get<0>(r), std::get<1>(r)});
    )
}

mt_tensor_t mt_unique(mt_tensor_t t) { MT_TENSOR(std::get<0>(at::_unique(T(t), /*sorted=*/true))) }
mt_tensor_t mt_bincount(mt_tensor_t t, int64_t minlength) { MT_TENSOR(at::bincount(T(t), c10::nullopt, minlength)) }
mt_tensor_t mt_nonzero(mt_tensor_t t) { MT_TENSOR(at::nonzero(T(t))) }

mt_tensor_t mt_matmul(mt_tensor_t a, mt_tensor_t b) { MT_TENSOR(at::matmul(T(a), T(b))) }
mt_tensor_t mt_linear(mt_tensor_t x, mt_tensor_t w, mt_tensor_t bias) { MT_TENSOR(at::linear(T(x), T(w), mt::opt(bias))) }

mt_tensor_t mt_reshape(mt_tensor_t t, const int64_t *shape, size_t ndim) { MT_TENSOR(T(t).reshape(ints(shape, ndim))) }
mt_tensor_t mt_view(mt_tensor_t t, const int64_t *shape, size_t ndim) { MT_TENSOR(T(t).view(ints(shape, ndim))) }
mt_tensor_t mt_expand(mt_tensor_t t, const int64_t *shape, size_t ndim) { MT_TENSOR(T(t).expand(ints(shape, ndim))) }
mt_tensor_t mt_repeat(mt_tensor_t t, const int64_t *repeats, size_t ndim) { MT_TENSOR(T(t).repeat(ints(repeats, ndim))) }
mt_tensor_t mt_permute(mt_tensor_t t, const int64_t *dims, size_t ndim) { MT_TENSOR(T(t).permute(ints(dims, ndim))) }
mt_tensor_t mt_transpose(mt_tensor_t t, int64_t d0, int64_t d1) { MT_TENSOR(T(t).transpose(d0, d1)) }
mt_tensor_t mt_flatten(mt_tensor_t t, int64_t start, int64_t end) { MT_TENSOR(T(t).flatten(start, end)) }
mt_tensor_t mt_squeeze(mt_tensor_t t, int64_t dim, int has_dim) { MT_TENSOR(has_dim ? T(t).squeeze(dim) : T(t).squeeze()) }
mt_tensor_t mt_unsqueeze(mt_tensor_t t, int64_t dim) { MT_TENSOR(T(t).unsqueeze(dim)) }
mt_tensor_t mt_flip(mt_tensor_t t, const int64_t *dims, size_t ndim) { MT_TENSOR(T(t).flip(ints(dims, ndim))) }
mt_tensor_t mt_roll(mt_tensor_t t, const int64_t *shifts, const int64_t *dims, size_t n) {
    MT_TENSOR(T(t).roll(ints(shifts, n), ints(dims, n)))
}
mt_tensor_t mt_slice(mt_tensor_t t, int64_t dim, int64_t start, int64_t end, int64_t step) {
    MT_TENSOR(T(t).slice(dim, start, end, step))
}
mt_tensor_t mt_select(mt_tensor_t t, int64_t dim, int64_t index) { MT_TENSOR(T(t).select(dim, index)) }
mt_tensor_t mt_index_select(mt_tensor_t t, int64_t dim, mt_tensor_t index) { MT_TENSOR(T(t).index_select(dim, T(index))) }
mt_tensor_t mt_gather(mt_tensor_t t, int64_t dim, mt_tensor_t index) { MT_TENSOR(T(t).gather(dim, T(index))) }
mt_tensor_t mt_scatter(mt_tensor_t t, int64_t dim, mt_tensor_t index, mt_tensor_t src) {
    MT_TENSOR(T(t).scatter(dim, T(index), T(src)))
}
mt_tensor_t mt_masked_select(mt_tensor_t t, mt_tensor_t mask) { MT_TENSOR(T(t).masked_select(T(mask))) }

static std::vector<at::Tensor> gather_list(const mt_tensor_t *ts, size_t n) {
    std::vector<at::Tensor> v;
    v.reserve(n);
    for (size_t i = 0; i < n; ++i) v.push_back(T(ts[i]));
    return v;
}

mt_tensor_t mt_cat(const mt_tensor_t *ts, size_t n, int64_t dim) { MT_TENSOR(at::cat(gather_list(ts, n), dim)) }
mt_tensor_t mt_stack(const mt_tensor_t *ts, size_t n, int64_t dim) { MT_TENSOR(at::stack(gather_list(ts, n), dim)) }
mt_list_t mt_split(mt_tensor_t t, int64_t split_size, int64_t dim) {
    MT_TRY(nullptr, return mt::wrap_list(T(t).split(split_size, dim));)
}
mt_list_t mt_split_sizes(mt_tensor_t t, const int64_t *sizes, size_t n, int64_t dim) {
    MT_TRY(nullptr, return mt::wrap_list(T(t).split_with_sizes(ints(sizes, n), dim));)
}
mt_list_t mt_chunk(mt_tensor_t t, int64_t chunks, int64_t dim) {
    MT_TRY(nullptr, return mt::wrap_list(T(t).chunk(chunks, dim));)
}

mt_tensor_t mt_pad(mt_tensor_t t, const int64_t *pad, size_t n, int mode, double value) {
    MT_TRY(nullptr,
        const at::Tensor &x = T(t);
        at::IntArrayRef p = ints(pad, n);
        switch (mode) {
        case MT_PAD_CONSTANT: return mt::wrap(at::constant_pad_nd(x, p, value));
        case MT_PAD_CIRCULAR: return mt::wrap(at::_pad_circular(x, p));
        case MT_PAD_REFLECT:
        case MT_PAD_REPLICATE: {
            size_t spatial = n / 2;
            if (mode == MT_PAD_REFLECT) {
                if (spatial == 1) return mt::wrap(at::reflection_pad1d(x, p));
                if (spatial == 2) return mt::wrap(at::reflection_pad2d(x, p));
                if (spatial == 3) return mt::wrap(at::reflection_pad3d(x, p));
            } else {
                if (spatial == 1) return mt::wrap(at::replication_pad1d(x, p));
                if (spatial == 2) return mt::wrap(at::replication_pad2d(x, p));
                if (spatial == 3) return mt::wrap(at::replication_pad3d(x, p));
            }
            throw std::invalid_argument("reflect/replicate padding supports 1 to 3 padded dimensions");
        }
        }
        throw std::invalid_argument("unknown padding mode");
    )
}

} // extern "C"
