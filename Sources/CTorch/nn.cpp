// Neural-network functions: convolution, pooling, normalization, resampling, activations, losses.
#include "shim.hpp"

using mt::T;
using mt::ints;
using mt::opt;

extern "C" {

mt_tensor_t mt_convolution(mt_tensor_t x, mt_tensor_t w, mt_tensor_t bias,
                           const int64_t *stride, const int64_t *padding, const int64_t *dilation,
                           int transposed, const int64_t *output_padding, size_t nspatial, int64_t groups) {
    // Through the per-rank ops (conv2d, conv_transpose3d, ...) rather than at::convolution: those are
    // the ones on autocast's lists (libtorch 1.13's CPU autocast does not cast at::convolution).
    MT_TRY(nullptr,
        auto s = ints(stride, nspatial), p = ints(padding, nspatial), d = ints(dilation, nspatial), op = ints(output_padding, nspatial);
        if (!transposed) {
            switch (nspatial) {
            case 1: return mt::wrap(at::conv1d(T(x), T(w), opt(bias), s, p, d, groups));
            case 2: return mt::wrap(at::conv2d(T(x), T(w), opt(bias), s, p, d, groups));
            case 3: return mt::wrap(at::conv3d(T(x), T(w), opt(bias), s, p, d, groups));
            }
        } else {
            switch (nspatial) {
            case 1: return mt::wrap(at::conv_transpose1d(T(x), T(w), opt(bias), s, p, op, groups, d));
            case 2: return mt::wrap(at::conv_transpose2d(T(x), T(w), opt(bias), s, p, op, groups, d));
            case 3: return mt::wrap(at::conv_transpose3d(T(x), T(w), opt(bias), s, p, op, groups, d));
            }
        }
        return mt::wrap(at::convolution(T(x), T(w), opt(bias), s, p, d, transposed != 0, op, groups));
    )
}

mt_tensor_t mt_max_pool(mt_tensor_t x, size_t nspatial, const int64_t *kernel, const int64_t *stride,
                        const int64_t *padding, const int64_t *dilation, int ceil_mode) {
    MT_TRY(nullptr,
        auto k = ints(kernel, nspatial), s = ints(stride, nspatial), p = ints(padding, nspatial), d = ints(dilation, nspatial);
        switch (nspatial) {
        case 1: return mt::wrap(at::max_pool1d(T(x), k, s, p, d, ceil_mode != 0));
        case 2: return mt::wrap(at::max_pool2d(T(x), k, s, p, d, ceil_mode != 0));
        case 3: return mt::wrap(at::max_pool3d(T(x), k, s, p, d, ceil_mode != 0));
        }
        throw std::invalid_argument("max pooling supports 1 to 3 spatial dimensions");
    )
}

mt_tensor_t mt_avg_pool(mt_tensor_t x, size_t nspatial, const int64_t *kernel, const int64_t *stride,
                        const int64_t *padding, int ceil_mode, int count_include_pad) {
    MT_TRY(nullptr,
        auto k = ints(kernel, nspatial), s = ints(stride, nspatial), p = ints(padding, nspatial);
        switch (nspatial) {
        case 1: return mt::wrap(at::avg_pool1d(T(x), k, s, p, ceil_mode != 0, count_include_pad != 0));
        case 2: return mt::wrap(at::avg_pool2d(T(x), k, s, p, ceil_mode != 0, count_include_pad != 0));
        case 3: return mt::wrap(at::avg_pool3d(T(x), k, s, p, ceil_mode != 0, count_include_pad != 0));
        }
        throw std::invalid_argument("average pooling supports 1 to 3 spatial dimensions");
    )
}

mt_tensor_t mt_adaptive_avg_pool(mt_tensor_t x, size_t nspatial, const int64_t *output_size) {
    MT_TRY(nullptr,
        auto o = ints(output_size, nspatial);
        switch (nspatial) {
        case 1: return mt::wrap(at::adaptive_avg_pool1d(T(x), o));
        case 2: return mt::wrap(at::adaptive_avg_pool2d(T(x), o));
        case 3: return mt::wrap(at::adaptive_avg_pool3d(T(x), o));
        }
        throw std::invalid_argument("adaptive pooling supports 1 to 3 spatial dimensions");
    )
}

mt_tensor_t mt_adaptive_max_pool(mt_tensor_t x, size_t nspatial, const int64_t *output_size) {
    MT_TRY(nullptr,
        auto o = ints(output_size, nspatial);
        switch (nspatial) {
        case 1: return mt::wrap(std::get<0>(at::adaptive_max_pool1d(T(x), o)));
        case 2: return mt::wrap(std::get<0>(at::adaptive_max_pool2d(T(x), o)));
        case 3: return mt::wrap(std::get<0>(at::adaptive_max_pool3d(T(x), o)));
        }
        throw std::invalid_argument("adaptive pooling supports 1 to 3 spatial dimensions");
    )
}

mt_tensor_t mt_batch_norm(mt_tensor_t x, mt_tensor_t weight, mt_tensor_t bias, mt_tensor_t running_mean,
                          mt_tensor_t running_var, int training, double momentum, double eps) {
    MT_TENSOR(at::batch_norm(T(x), opt(weight), opt(bias), opt(running_mean), opt(running_var), training != 0,
                             momentum, eps, /*cudnn_enabled=*/true))
}

mt_tensor_t mt_instance_norm(mt_tensor_t x, mt_tensor_t weight, mt_tensor_t bias, mt_tensor_t running_mean,
                             mt_tensor_t running_var, int use_input_stats, double momentum, double eps) {
    MT_TENSOR(at::instance_norm(T(x), opt(weight), opt(bias), opt(running_mean), opt(running_var),
                                use_input_stats != 0, momentum, eps, /*cudnn_enabled=*/true))
}

mt_tensor_t mt_group_norm(mt_tensor_t x, int64_t groups, mt_tensor_t weight, mt_tensor_t bias, double eps) {
    MT_TENSOR(at::group_norm(T(x), groups, opt(weight), opt(bias), eps, /*cudnn_enabled=*/true))
}

mt_tensor_t mt_layer_norm(mt_tensor_t x, const int64_t *normalized_shape, size_t n, mt_tensor_t weight,
                          mt_tensor_t bias, double eps) {
    MT_TENSOR(at::layer_norm(T(x), ints(normalized_shape, n), opt(weight), opt(bias), eps, /*cudnn_enable=*/true))
}

mt_tensor_t mt_interpolate(mt_tensor_t x, const int64_t *output_size, size_t nspatial, int mode, int align_corners) {
    MT_TRY(nullptr,
        auto o = ints(output_size, nspatial);
        const at::Tensor &in = T(x);
        bool ac = align_corners != 0;
        if (in.dim() != (int64_t)nspatial + 2)
            throw std::invalid_argument("interpolate expects an input of " + std::to_string(nspatial + 2) +
                                        " dimensions (N, C, spatial...), got " + std::to_string(in.dim()));
        switch (mode) {
        case MT_NEAREST:
            if (nspatial == 1) return mt::wrap(at::upsample_nearest1d(in, o, c10::nullopt));
            if (nspatial == 2) return mt::wrap(at::upsample_nearest2d(in, o, c10::nullopt, c10::nullopt));
            if (nspatial == 3) return mt::wrap(at::upsample_nearest3d(in, o, c10::nullopt, c10::nullopt, c10::nullopt));
            break;
        case MT_LINEAR:
            if (nspatial == 1) return mt::wrap(at::upsample_linear1d(in, o, ac, c10::nullopt));
            break;
        case MT_BILINEAR:
            if (nspatial == 2) return mt::wrap(at::upsample_bilinear2d(in, o, ac, c10::nullopt, c10::nullopt));
            break;
        case MT_TRILINEAR:
            if (nspatial == 3) return mt::wrap(at::upsample_trilinear3d(in, o, ac, c10::nullopt, c10::nullopt, c10::nullopt));
            break;
        case MT_BICUBIC:
            if (nspatial == 2) return mt::wrap(at::upsample_bicubic2d(in, o, ac, c10::nullopt, c10::nullopt));
            break;
        }
        throw std::invalid_argument("interpolation mode " + std::to_string(mode) + " does not apply to " +
                                    std::to_string(nspatial) + " spatial dimensions");
    )
}

mt_tensor_t mt_leaky_relu(mt_tensor_t x, double slope) { MT_TENSOR(at::leaky_relu(T(x), slope)) }
int mt_relu_(mt_tensor_t x) { MT_STATUS(at::relu_(T(x))) }

// Debian's libtorch 1.13.1 computes a wrong gelu_backward on CPU float32 when the incoming gradient
// is not laid out like the input. The hook hands GeluBackward a contiguous gradient.
mt_tensor_t mt_gelu(mt_tensor_t x, int approximate) {
    MT_TRY(nullptr,
        at::Tensor y = at::gelu(T(x), approximate ? "tanh" : "none");
        if (y.requires_grad()) {
            y.register_hook([](const at::Tensor &g) { return g.contiguous(); });
        }
        return mt::wrap(y);
    )
}

mt_tensor_t mt_gelu_unpatched(mt_tensor_t x) { MT_TENSOR(at::gelu(T(x))) }

mt_tensor_t mt_softplus(mt_tensor_t x, double beta, double threshold) { MT_TENSOR(at::softplus(T(x), beta, threshold)) }
mt_tensor_t mt_elu(mt_tensor_t x, double alpha) { MT_TENSOR(at::elu(T(x), alpha)) }
mt_tensor_t mt_softmax(mt_tensor_t x, int64_t dim) { MT_TENSOR(at::softmax(T(x), dim)) }
mt_tensor_t mt_log_softmax(mt_tensor_t x, int64_t dim) { MT_TENSOR(at::log_softmax(T(x), dim)) }
mt_tensor_t mt_dropout(mt_tensor_t x, double p, int train) { MT_TENSOR(at::dropout(T(x), p, train != 0)) }
mt_tensor_t mt_feature_dropout(mt_tensor_t x, double p, int train) { MT_TENSOR(at::feature_dropout(T(x), p, train != 0)) }

mt_tensor_t mt_bce_with_logits(mt_tensor_t x, mt_tensor_t target, mt_tensor_t weight, mt_tensor_t pos_weight, int reduction) {
    MT_TENSOR(at::binary_cross_entropy_with_logits(T(x), T(target), opt(weight), opt(pos_weight), reduction))
}

mt_tensor_t mt_bce(mt_tensor_t x, mt_tensor_t target, mt_tensor_t weight, int reduction) {
    MT_TENSOR(at::binary_cross_entropy(T(x), T(target), opt(weight), reduction))
}

mt_tensor_t mt_cross_entropy(mt_tensor_t x, mt_tensor_t target, mt_tensor_t weight, int reduction,
                             int64_t ignore_index, double label_smoothing) {
    MT_TENSOR(at::cross_entropy_loss(T(x), T(target), opt(weight), reduction, ignore_index, label_smoothing))
}

mt_tensor_t mt_nll_loss(mt_tensor_t x, mt_tensor_t target, mt_tensor_t weight, int reduction, int64_t ignore_index) {
    MT_TENSOR(at::nll_loss_nd(T(x), T(target), opt(weight), reduction, ignore_index))
}

mt_tensor_t mt_mse_loss(mt_tensor_t x, mt_tensor_t target, int reduction) { MT_TENSOR(at::mse_loss(T(x), T(target), reduction)) }
mt_tensor_t mt_l1_loss(mt_tensor_t x, mt_tensor_t target, int reduction) { MT_TENSOR(at::l1_loss(T(x), T(target), reduction)) }

mt_tensor_t mt_affine_grid(mt_tensor_t theta, const int64_t *size, size_t n, int align_corners) {
    MT_TENSOR(at::affine_grid_generator(T(theta), ints(size, n), align_corners != 0))
}

mt_tensor_t mt_grid_sample(mt_tensor_t x, mt_tensor_t grid, int mode, int padding_mode, int align_corners) {
    MT_TENSOR(at::grid_sampler(T(x), T(grid), mode, padding_mode, align_corners != 0))
}

mt_tensor_t mt_one_hot(mt_tensor_t t, int64_t num_classes) { MT_TENSOR(at::one_hot(T(t), num_classes)) }

} // extern "C"
