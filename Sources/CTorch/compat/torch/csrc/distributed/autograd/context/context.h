// Debian's libtorch-dev ships c10d/reducer.hpp but not the distributed-autograd header it includes.
// The Reducer only holds a shared_ptr to the context and names its callback type, so this
// declaration keeps the Reducer's layout identical. This folder is searched after libtorch's own headers, which win when
// they have the real file.
#pragma once
#include <functional>
#include <memory>

namespace at {
class Tensor;
}

namespace torch {
namespace distributed {
namespace autograd {
class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor &)>;
};
using ContextPtr = std::shared_ptr<DistAutogradContext>;
} // namespace autograd
} // namespace distributed
} // namespace torch
